// Package httpserve is how every listener of ours is served: bin/api,
// bin/worker and bin/wechatpay-sim set their HTTP servers up with New and
// run them with Serve. It depends on nothing of payflow, so the sim uses it
// without taking in the services' configuration.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ShutdownTimeout is how long Serve lets in-flight requests finish once its
// context ends.
const ShutdownTimeout = 10 * time.Second

// New returns a server for h on addr with the timeouts every listener of
// ours uses. A caller whose requests wait longer (the api) raises
// WriteTimeout.
func New(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

// Serve listens on srv.Addr and serves until ctx ends, then shuts srv down,
// letting in-flight requests finish for up to ShutdownTimeout. The server's
// own errors (a TLS handshake, a panic in a handler) go to logger as
// warnings unless srv.ErrorLog is set. It logs "listening" with the
// address actually bound (":0" picks a port).
func Serve(ctx context.Context, srv *http.Server, logger *slog.Logger) error {
	if srv.ErrorLog == nil {
		srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", srv.Addr, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}
