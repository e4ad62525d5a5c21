package main

import (
	"net/http"
	"testing"

	"github.com/payflow/payflow/api"
)

// The api's own waits end before its server's WriteTimeout: an order
// request is always answered by the handler, never cut off.
func TestWriteTimeoutOutlastsRequests(t *testing.T) {
	hs := httpServer("127.0.0.1:0", http.NotFoundHandler())
	if hs.WriteTimeout != api.WriteTimeout {
		t.Fatalf("WriteTimeout %s, want api.WriteTimeout %s", hs.WriteTimeout, api.WriteTimeout)
	}
	if !(api.UpdateTimeout < api.RequestTimeout && api.RequestTimeout < hs.WriteTimeout) {
		t.Fatalf("want UpdateTimeout %s < RequestTimeout %s < WriteTimeout %s",
			api.UpdateTimeout, api.RequestTimeout, hs.WriteTimeout)
	}
	if hs.ReadHeaderTimeout == 0 || hs.ReadTimeout == 0 || hs.IdleTimeout == 0 {
		t.Fatalf("the shared timeouts are lost: %+v", hs)
	}
}
