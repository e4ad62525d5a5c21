package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payflow/payflow/internal/invariant"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// loadOptions describes one open-loop run of notifications.
type loadOptions struct {
	Label     string // what is measured, for the report
	NotifyURL string // where the signed v2 notifications go
	SimURL    string // the sim: the trades are paid there first
	Rate      float64
	Duration  time.Duration
	// Steps, when set, replace Rate and Duration: the offered rate is
	// raised step by step (a step load). With StopBehind > 0 the load stops
	// at the end of the first step after which more than StopBehind's worth
	// of that step's rate is acknowledged or sent but not PAID (the backlog
	// grows): the steps above it would only measure a queue.
	Steps      []step
	StopBehind time.Duration
	// DupEvery: every DupEvery-th payment's notification is sent twice at
	// the same instant (WeChat's servers racing); 0 sends no duplicates.
	DupEvery   int
	Retries    int           // a notification not answered SUCCESS is sent again after RetryDelay, this many times
	RetryDelay time.Duration // WeChat waits 15 s; we wait less so the run stays short
	Drain      time.Duration // after the last send, how long to wait for payments to reach PAID
	Setup      int           // concurrency of the setup phase

	// CreateOrder makes the order the notification pays (POST /orders, or
	// an INSERT for the peer).
	CreateOrder func(ctx context.Context, no string, amountFen int64) error
	DB          *pgxpool.Pool // the payments database, to read PAID log rows
	// Settle, when set, waits after the setup until the n runs it started
	// (out_trade_no prefix) are idle and visible.
	Settle func(ctx context.Context, prefix string, n int)
	// BeforeLoad, when set, runs after the setup, right before the load.
	BeforeLoad func(ctx context.Context)
	Prefix     string // out_trade_no prefix of this run, unique
	AppID      string
	MchID      string
	APIKey     string
}

// loadResult is what one run measured.
type loadResult struct {
	Label          string
	OfferedRate    float64
	Payments       int
	Notifications  int // sent, including duplicates and retries
	Duplicates     int
	Retries        int
	Acked          int // SUCCESS answers
	Failed         int // non-SUCCESS answers and transport errors
	AckWindow      time.Duration
	AckLatency     latencies
	PaymentsAcked  int
	Paid           int
	PaidWindow     time.Duration // from the first send to the last PAID row
	TimeToPaid     latencies
	Lost           int // acknowledged, not PAID at the end
	Doubled        int // invariant.Doubled: more than one PAID log row, or another transaction
	BadRecord      int // invariant.BadRecord: paid, but not recorded exactly once from PENDING
	FirstBadRecord string
	NotPaidNoAck   int // never acknowledged and not PAID (WeChat would keep retrying)
	SetupRate      float64
	DrainTimedOut  bool
	SendWindow     time.Duration
	FirstFailure   string
	generatorLagMs int64

	Steps   []stepResult // per step of a step load (one step for a constant rate)
	Stopped int          // steps not sent because the backlog grew
	start   time.Time    // the first send
	pays    []*benchPayment
}

// benchPayment is one order being paid during the run.
type benchPayment struct {
	no      string
	txid    string // the sim's transaction, which must have paid it
	body    []byte
	copies  int
	mu      sync.Mutex
	firstAt time.Time
	acked   bool
	ackedAt time.Time
	sent    bool      // the load reached it (a step load may stop early)
	paidAt  time.Time // its PAID log row's created_at
}

// maxRetryDelay caps the doubling wait between resends: WeChat's first
// resend comes after 15 s.
const maxRetryDelay = 15 * time.Second

var loadHTTP = &http.Client{
	Timeout: 15 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second,
	},
}

// runLoad prepares rate×duration paid trades, sends their notifications at
// the target rate whatever the answers (open loop), then waits for PAID.
func runLoad(ctx context.Context, o loadOptions, logger *slog.Logger) (loadResult, error) {
	steps := o.Steps
	if len(steps) == 0 {
		steps = []step{{Rate: o.Rate, Duration: o.Duration}}
	}
	dues := schedule(steps)
	n := len(dues)
	res := loadResult{Label: o.Label, OfferedRate: o.Rate, Payments: n}
	pays := make([]*benchPayment, n)

	// Setup: orders and paid trades, notifications signed in advance.
	logger.Info("setup: creating orders and paying them at the sim", "label", o.Label, "payments", n)
	setupStart := time.Now()
	var setupErr error
	var errOnce sync.Once
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(o.Setup, 1) {
		wg.Go(func() {
			for i := range work {
				p, err := preparePayment(ctx, o, i)
				if err != nil {
					errOnce.Do(func() { setupErr = err })
					continue
				}
				pays[i] = p
			}
		})
	}
	for i := range n {
		if setupErr != nil || ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if setupErr != nil {
		return res, fmt.Errorf("setup: %w", setupErr)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.SetupRate = float64(n) / time.Since(setupStart).Seconds()
	// Let the first workflow task of each order's run finish, so the
	// measurement starts on a quiet server.
	if o.Settle != nil {
		o.Settle(ctx, o.Prefix, n)
	}
	if o.BeforeLoad != nil {
		o.BeforeLoad(ctx)
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return res, err
	}

	// Drive: payment i is due at its place in the schedule (start + i/rate
	// for a constant rate), late or not.
	logger.Info("load: sending notifications", "label", o.Label, "steps", stepsString(steps))
	var (
		mu       sync.Mutex
		ackLat   []time.Duration
		lastAck  time.Time
		sends    sync.WaitGroup
		maxLagMs int64
	)
	record := func(p *benchPayment, lat time.Duration, ok bool, failure string) {
		mu.Lock()
		defer mu.Unlock()
		res.Notifications++
		if ok {
			res.Acked++
			ackLat = append(ackLat, lat)
			lastAck = time.Now()
		} else {
			res.Failed++
			if res.FirstFailure == "" {
				res.FirstFailure = failure
			}
		}
	}
	start := time.Now()
	res.start = start
	stepEnd, stepIdx := steps[0].Duration, 0
	for i, p := range pays {
		if dues[i] >= stepEnd {
			// A step is over: stop raising the rate once the backlog grows.
			behind, err := backlogAfter(ctx, o, pays[:i], steps[stepIdx].Rate)
			if err != nil {
				return res, err
			}
			if behind {
				res.Stopped = len(steps) - stepIdx - 1
				logger.Info("load: the backlog grows; no higher step", "label", o.Label, "rate", steps[stepIdx].Rate)
				break
			}
			stepIdx++
			stepEnd += steps[stepIdx].Duration
		}
		due := start.Add(dues[i])
		if err := sleepCtx(ctx, time.Until(due)); err != nil {
			break
		}
		p.sent = true
		if lag := time.Since(due).Milliseconds(); lag > maxLagMs {
			maxLagMs = lag
		}
		p.copies = 1
		if o.DupEvery > 0 && i%o.DupEvery == 0 {
			p.copies = 2
			res.Duplicates++
		}
		p.firstAt = time.Now()
		for range p.copies {
			sends.Go(func() { sendWithRetries(ctx, o, p, record, &mu, &res) })
		}
	}
	res.SendWindow = time.Since(start)
	res.generatorLagMs = maxLagMs
	sends.Wait()
	res.AckLatency = summarize(ackLat)
	if !lastAck.IsZero() {
		res.AckWindow = lastAck.Sub(start)
	}
	sent := 0
	for _, p := range pays {
		if p.sent {
			sent++
		}
		if p.acked {
			res.PaymentsAcked++
		}
	}

	// Drain: wait for PAID rows, stop early once every payment is PAID or
	// nothing moved for a while.
	logger.Info("drain: waiting for PAID", "label", o.Label, "acked", res.PaymentsAcked)
	deadline := time.Now().Add(o.Drain)
	lastCount, lastMove := -1, time.Now()
	for {
		var count int
		err := o.DB.QueryRow(ctx, `SELECT count(DISTINCT out_trade_no) FROM order_logs WHERE to_status = 'PAID' AND out_trade_no LIKE $1`,
			o.Prefix+"%").Scan(&count)
		if err != nil {
			return res, fmt.Errorf("count PAID: %w", err)
		}
		if count >= sent {
			break
		}
		if count != lastCount {
			lastCount, lastMove = count, time.Now()
		}
		if time.Now().After(deadline) || (count >= res.PaymentsAcked && time.Since(lastMove) > 10*time.Second) {
			res.DrainTimedOut = count < res.PaymentsAcked
			break
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return res, err
		}
	}

	// Judge every payment with the shared paid-once check, on the orders
	// and log rows as they are in the database.
	orders, err := readOrders(ctx, o.DB, o.Prefix)
	if err != nil {
		return res, err
	}
	var toPaid []time.Duration
	var lastPaid time.Time
	for _, p := range pays {
		if !p.sent {
			continue
		}
		ord := orders[p.no]
		err := invariant.PaidOnce(ord, p.txid)
		var bad *invariant.Violation
		if err != nil && !errors.As(err, &bad) {
			return res, err
		}
		switch {
		case err == nil, bad.Kind == invariant.Doubled, bad.Kind == invariant.BadRecord:
			res.Paid++
			if err != nil && bad.Kind == invariant.Doubled {
				res.Doubled++
			} else if err != nil {
				res.BadRecord++
				if res.FirstBadRecord == "" {
					res.FirstBadRecord = p.no + ": " + err.Error()
				}
			}
			if rows := invariant.PaidLogs(ord); len(rows) > 0 {
				at := rows[0].CreatedAt
				p.paidAt = at
				toPaid = append(toPaid, at.Sub(p.firstAt))
				if at.After(lastPaid) {
					lastPaid = at
				}
			}
		case p.acked:
			res.Lost++
		default:
			res.NotPaidNoAck++
		}
	}
	res.TimeToPaid = summarize(toPaid)
	if !lastPaid.IsZero() {
		res.PaidWindow = lastPaid.Sub(start)
	}
	res.Payments = sent
	res.pays = pays
	res.Steps = stepResults(steps, dues, pays, start)
	return res, nil
}

// sendWithRetries posts one copy of p's notification until it is answered
// SUCCESS or the retries run out.
func sendWithRetries(ctx context.Context, o loadOptions, p *benchPayment,
	record func(*benchPayment, time.Duration, bool, string), mu *sync.Mutex, res *loadResult) {
	delay := o.RetryDelay
	for attempt := 0; attempt <= o.Retries; attempt++ {
		if attempt > 0 {
			mu.Lock()
			res.Retries++
			mu.Unlock()
			if sleepCtx(ctx, delay) != nil {
				return
			}
			delay = min(2*delay, maxRetryDelay)
		}
		t := time.Now()
		ok, failure := postNotification(ctx, o.NotifyURL, p.body)
		lat := time.Since(t)
		record(p, lat, ok, failure)
		if ok {
			p.mu.Lock()
			if !p.acked {
				p.acked, p.ackedAt = true, time.Now()
			}
			p.mu.Unlock()
			return
		}
	}
}

// postNotification sends one v2 notification and reports whether the answer
// was WeChat's idea of success: HTTP 200 with return_code SUCCESS.
func postNotification(ctx context.Context, url string, body []byte) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := loadHTTP.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	params, err := apiv2.DecodeXML(b)
	if resp.StatusCode != http.StatusOK || err != nil || params["return_code"] != "SUCCESS" {
		return false, fmt.Sprintf("HTTP %d %s", resp.StatusCode, clip(string(b), 200))
	}
	return true, ""
}

// preparePayment creates order i, pays it at the sim without a
// notification (the tool sends it) and signs the notification.
func preparePayment(ctx context.Context, o loadOptions, i int) (*benchPayment, error) {
	no := fmt.Sprintf("%s%06d", o.Prefix, i)
	amount := int64(100 + i%900)
	if err := o.CreateOrder(ctx, no, amount); err != nil {
		return nil, err
	}
	var pay struct {
		TransactionID string `json:"transaction_id"`
	}
	if err := postJSON(ctx, o.SimURL+"/sim/pay", map[string]any{"out_trade_no": no, "amount_fen": amount, "drop": true}, http.StatusOK, &pay); err != nil {
		return nil, fmt.Errorf("sim pay %s: %w", no, err)
	}
	p := map[string]string{
		"return_code":    "SUCCESS",
		"appid":          o.AppID,
		"mch_id":         o.MchID,
		"nonce_str":      nonce(),
		"result_code":    "SUCCESS",
		"openid":         "oBenchUser0000000000000000",
		"is_subscribe":   "N",
		"trade_type":     payment.TradeTypeNative,
		"bank_type":      "OTHERS",
		"total_fee":      strconv.FormatInt(amount, 10),
		"fee_type":       payment.DefaultCurrency,
		"cash_fee":       strconv.FormatInt(amount, 10),
		"out_trade_no":   no,
		"transaction_id": pay.TransactionID,
		"time_end":       apiv2.FormatTime(time.Now()),
	}
	sign, err := apiv2.Sign(p, o.APIKey, apiv2.SignTypeMD5)
	if err != nil {
		return nil, err
	}
	p["sign"] = sign
	return &benchPayment{no: no, txid: pay.TransactionID, body: apiv2.EncodeXML(p)}, nil
}

// postJSON posts v as JSON and decodes the answer into out when the status
// is want; each of prepare (Deployment.Authorize for the order API) is applied
// to the request.
func postJSON(ctx context.Context, url string, v any, want int, out any, prepare ...func(*http.Request)) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, f := range prepare {
		f(req)
	}
	resp, err := loadHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: HTTP %d: %s", url, resp.StatusCode, clip(string(body), 300))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// readOrders reads the run's orders (out_trade_no LIKE prefix%) with their
// log rows, oldest first, as GET /orders/{no} shows them: two set-based
// queries rather than one per order.
func readOrders(ctx context.Context, db *pgxpool.Pool, prefix string) (map[string]payment.Order, error) {
	orders := map[string]payment.Order{}
	rows, err := db.Query(ctx, `SELECT out_trade_no, status, coalesce(transaction_id, ''), paid_at
		FROM orders WHERE out_trade_no LIKE $1`, prefix+"%")
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	for rows.Next() {
		var o payment.Order
		if err := rows.Scan(&o.OutTradeNo, &o.Status, &o.TransactionID, &o.PaidAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read orders: %w", err)
		}
		orders[o.OutTradeNo] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT out_trade_no, from_status, to_status, remarks, created_at
		FROM order_logs WHERE out_trade_no LIKE $1 ORDER BY created_at, id`, prefix+"%")
	if err != nil {
		return nil, fmt.Errorf("read order logs: %w", err)
	}
	for rows.Next() {
		var no string
		var l payment.Log
		if err := rows.Scan(&no, &l.FromStatus, &l.ToStatus, &l.Remarks, &l.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read order logs: %w", err)
		}
		o := orders[no]
		o.Logs = append(o.Logs, l)
		orders[no] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read order logs: %w", err)
	}
	return orders, nil
}

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
