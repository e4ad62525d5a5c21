package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusOK)
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := probe(ctx, srv.URL+"/readyz", time.Second); err != nil {
		t.Errorf("ready server: %v", err)
	}
	if err := probe(ctx, srv.URL+"/down", time.Second); err == nil {
		t.Error("503 counted as healthy")
	}
	if err := probe(ctx, srv.URL+"/slow", 50*time.Millisecond); err == nil {
		t.Error("a timeout counted as healthy")
	}
	if err := probe(ctx, "http://127.0.0.1:1/", time.Second); err == nil {
		t.Error("a closed port counted as healthy")
	}
}
