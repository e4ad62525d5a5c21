package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/payflow/payflow/internal/httpserve"
)

// Server is the simulator: WeChat's API paths, the operator endpoints and
// the notification deliveries.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      nowFunc
	trades   *trades
	refunds  *refundBook
	notifier *notifier
	formats  map[string]notificationFormat // by API version
	v3       *v3Keys                       // nil: no SIM_KEYS_DIR, v3 unavailable
	faults   *faults
	mux      *http.ServeMux
	bills    *billBook // trade bills: switches and download links
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
	if cfg.NotifyVersion == "" {
		cfg.NotifyVersion = DefaultNotifyVersion
	}
	if cfg.NotifyURLV3 == "" {
		cfg.NotifyURLV3 = DefaultNotifyURLV3
	}
	if cfg.RefundNotifyURL == "" {
		cfg.RefundNotifyURL = cfg.NotifyURL
	}
	var v3 *v3Keys
	if cfg.KeysDir != "" {
		kd, err := loadKeyDir(cfg.KeysDir, cfg.APIv3Key, cfg.PlatformKey)
		if err != nil {
			return nil, err
		}
		v3 = kd.v3
		if cfg.APIKey == "" {
			cfg.APIKey = kd.apiKey
		}
		if cfg.APIKey == "" {
			return nil, errors.New("WECHATPAY_API_KEY is required: SIM_KEYS_DIR has no api_key")
		}
	} else if cfg.PlatformKey != "" || cfg.NotifyVersion == "v3" {
		return nil, errors.New("SIM_PLATFORM_KEY and SIM_NOTIFY_VERSION=v3 need SIM_KEYS_DIR")
	}
	ctx, cancel := context.WithCancel(context.Background())
	store := newTrades()
	s := &Server{
		cfg:      cfg,
		log:      log,
		now:      time.Now,
		trades:   store,
		refunds:  newRefundBook(store),
		notifier: newNotifier(ctx, cfg.NotifyURL, cfg.TimeScale, store, log),
		formats: map[string]notificationFormat{
			"v2": v2Format{appID: cfg.AppID, mchID: cfg.MchID, apiKey: cfg.APIKey},
		},
		v3:     v3,
		bills:  newBillBook(),
		cancel: cancel,
	}
	if v3 != nil {
		s.formats["v3"] = v3Format{appID: cfg.AppID, mchID: cfg.MchID, keys: v3, now: func() time.Time { return s.now() }}
	}
	if cfg.FaultSeed == 0 {
		cfg.FaultSeed = time.Now().UnixNano()
		s.cfg.FaultSeed = cfg.FaultSeed
	}
	s.faults = newFaults(cfg.FaultRate, cfg.FaultSeed, cfg.FaultCalls, cfg.FaultKinds)
	s.notifier.refused = func() { s.faults.behaved("reply_refused") }
	s.mux = s.routes()
	for _, c := range cfg.FaultCalls {
		if !knownCall(c) {
			cancel()
			return nil, fmt.Errorf("SIM_FAULT_CALLS: %q is none of %s", c, strings.Join(registeredCalls(), ", "))
		}
	}
	return s, nil
}

// Handler routes WeChat's paths and the operator endpoints:
//
//	POST /pay/orderquery                    API v2 order query (XML)
//	POST /pay/unifiedorder                  API v2 prepay (XML)
//	POST /pay/closeorder                    API v2 close (XML)
//	GET  /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…   API v3 order query
//	GET  /v3/pay/transactions/id/{transaction_id}?mchid=…           API v3 order query
//	POST /v3/pay/transactions/jsapi         API v3 JSAPI prepay
//	POST /v3/pay/transactions/native        API v3 Native prepay
//	POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close     API v3 close
//	POST /v3/refund/domestic/refunds        API v3 refund apply
//	GET  /v3/refund/domestic/refunds/{out_refund_no}                API v3 refund query
//	POST /sim/refunds                       a refund made in the merchant portal (PortalRefundRequest)
//	GET  /sim/refunds                       every refund's executions and each trade's refunded total (RefundSummary)
//	GET  /sim/refunds/{out_refund_no}       the refund and its deliveries (RefundView)
//	POST /sim/refunds/{out_refund_no}/options   switches for a refund not asked for yet (RefundOptions)
//	POST /sim/refunds/{out_refund_no}/notify    send the refund's last notification again
//	GET  /v3/bill/tradebill?bill_date=…&bill_type=ALL&tar_type=GZIP   API v3 trade bill: hash and download link
//	GET  /v3/billdownload/file?token=…      API v3 bill download (signed request, unsigned answer)
//	POST /pay/downloadbill                  API v2 trade bill (XML request; the file, or XML FAIL)
//	POST /sim/bills/{date}                  the day's bill switches (JSON BillSwitches)
//	GET  /sim/bills/{date}                  the day's bill switches and row count (BillView)
//	POST /sim/pay                           the user paid (JSON PayRequest)
//	POST /sim/trades/{out_trade_no}/notify  send the last notification again
//	GET  /sim/trades/{out_trade_no}         the trade and its deliveries (TradeView)
//	POST /sim/faults                        add fault rules (FaultRule, or {"rules":[…]})
//	GET  /sim/faults                        the fault model and what it injected (FaultsView)
//	DELETE /sim/faults                      drop the pending rules
//	GET  /healthz                           200
//
// Every WeChat API path goes through Server.call under a call name
// (v2.orderquery, v3.query, …), so the fault model reaches it; paths added
// later register the same way.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pay/orderquery", s.call("v2.orderquery", s.handleV2OrderQuery))
	mux.HandleFunc("POST /pay/unifiedorder", s.call("v2.unifiedorder", s.handleV2UnifiedOrder))
	mux.HandleFunc("POST /pay/closeorder", s.call("v2.closeorder", s.handleV2CloseOrder))
	mux.HandleFunc("GET /v3/pay/transactions/out-trade-no/{out_trade_no}", s.call("v3.query", s.delayed(s.v3Handler("query", s.handleV3Query(false)))))
	mux.HandleFunc("GET /v3/pay/transactions/id/{transaction_id}", s.call("v3.query", s.delayed(s.v3Handler("query", s.handleV3Query(true)))))
	mux.HandleFunc("POST /v3/pay/transactions/jsapi", s.call("v3.prepay", s.v3Handler("jsapi", s.handleV3Prepay("JSAPI"))))
	mux.HandleFunc("POST /v3/pay/transactions/native", s.call("v3.prepay", s.v3Handler("native", s.handleV3Prepay("NATIVE"))))
	mux.HandleFunc("POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close", s.call("v3.close", s.v3Handler("close", s.handleV3Close)))
	mux.HandleFunc("POST /sim/faults", s.handleAddFaults)
	mux.HandleFunc("GET /sim/faults", s.handleFaults)
	mux.HandleFunc("DELETE /sim/faults", s.handleClearFaults)
	mux.HandleFunc("GET /v3/bill/tradebill", s.call("v3.tradebill", s.v3Handler("tradebill", s.handleV3TradeBill)))
	mux.HandleFunc("GET /v3/billdownload/file", s.call("v3.billdownload", s.handleV3BillDownload))
	mux.HandleFunc("POST /pay/downloadbill", s.call("v2.downloadbill", s.handleV2DownloadBill))
	mux.HandleFunc("POST /sim/bills/{date}", s.handleBillSwitches)
	mux.HandleFunc("GET /sim/bills/{date}", s.handleBillView)
	mux.HandleFunc("POST /sim/pay", s.handlePay)
	mux.HandleFunc("POST /sim/trades/{out_trade_no}/notify", s.handleRenotify)
	mux.HandleFunc("GET /sim/trades/{out_trade_no}", s.handleTrade)
	s.registerRefunds(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// delayed pauses SIM_QUERY_DELAY (WeChat's latency) before h answers,
// whatever the answer.
func (s *Server) delayed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !sleep(r.Context(), s.cfg.QueryDelay) {
			return // the caller went away
		}
		h(w, r)
	}
}

// Close abandons the deliveries in flight and waits for their goroutines.
func (s *Server) Close() {
	s.cancel()
	s.notifier.wait()
	s.bills.close()
}

// Run serves the simulator on cfg.Addr until ctx ends, then shuts the HTTP
// server down gracefully and abandons the deliveries in flight.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	s, err := New(cfg, log)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer s.Close()
	s.log.Info("wechatpay simulator starting", "config", cfg)
	// The seed, so that a run with random faults can be replayed.
	s.log.Info("fault model", "rate", s.cfg.FaultRate, "seed", s.cfg.FaultSeed,
		"replay", fmt.Sprintf("SIM_FAULTS=%g SIM_FAULT_SEED=%d", s.cfg.FaultRate, s.cfg.FaultSeed))
	srv := httpserve.New(cfg.Addr, s.Handler())
	if err := httpserve.Serve(ctx, srv, s.log); err != nil {
		return err
	}
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
