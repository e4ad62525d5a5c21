package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is the simulator: WeChat's API paths, the operator endpoints and
// the notification deliveries.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      nowFunc
	trades   *trades
	notifier *notifier
	formats  map[string]notificationFormat // by API version
	cancel   context.CancelFunc
}

// New returns a simulator for cfg. Its deliveries run until Close.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	store := newTrades()
	return &Server{
		cfg:      cfg,
		log:      log,
		now:      time.Now,
		trades:   store,
		notifier: newNotifier(ctx, cfg.NotifyURL, cfg.TimeScale, store, log),
		formats: map[string]notificationFormat{
			"v2": v2Format{appID: cfg.AppID, mchID: cfg.MchID, apiKey: cfg.APIKey},
		},
		cancel: cancel,
	}, nil
}

// Handler routes WeChat's paths and the operator endpoints:
//
//	POST /pay/orderquery                    API v2 order query (XML)
//	POST /sim/pay                           the user paid (JSON PayRequest)
//	POST /sim/trades/{out_trade_no}/notify  send the last notification again
//	GET  /sim/trades/{out_trade_no}         the trade and its deliveries (TradeView)
//	GET  /healthz                           200
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pay/orderquery", s.handleV2OrderQuery)
	mux.HandleFunc("POST /sim/pay", s.handlePay)
	mux.HandleFunc("POST /sim/trades/{out_trade_no}/notify", s.handleRenotify)
	mux.HandleFunc("GET /sim/trades/{out_trade_no}", s.handleTrade)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// Close abandons the deliveries in flight and waits for their goroutines.
func (s *Server) Close() {
	s.cancel()
	s.notifier.wait()
}

// Run serves the simulator on cfg.Addr until ctx ends, then shuts the HTTP
// server down gracefully and abandons the deliveries in flight.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	s, err := New(cfg, log)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("wechatpay simulator listening", "addr", ln.Addr().String(), "config", cfg)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.Close()
	s.log.Info("stopped")
	return nil
}

// readBody reads at most limit bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// newNonce returns 32 random hex characters.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
