package api

import (
	"testing"
	"time"
)

// Each limit leaves room for the work around the one inside it: the update
// wait ends before the request's deadline, which ends before the server's
// WriteTimeout; a notification's handoff ends well inside it too.
func TestTimeoutsNest(t *testing.T) {
	for _, c := range []struct {
		inner, outer time.Duration
		what         string
	}{
		{UpdateTimeout, RequestTimeout, "UpdateTimeout < RequestTimeout"},
		{RequestTimeout, WriteTimeout, "RequestTimeout < WriteTimeout"},
		{handoffTimeout, WriteTimeout, "handoffTimeout < WriteTimeout"},
	} {
		if c.outer-c.inner < time.Second {
			t.Errorf("%s: %s vs %s, want at least 1 s between them", c.what, c.inner, c.outer)
		}
	}
}
