package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/payment"
)

// plan is one payment to make, decided up front from the seed.
type plan struct {
	OutTradeNo string
	AmountFen  int64
	Native     bool // prepaid with trade_type NATIVE (its notifications come in v3)
	Drop       bool // the sim sends no notification: only the workflow's own query finds it
	// Review is a REVIEW the run arranges on purpose ("" for none): the
	// payment must go to REVIEW, and nowhere else.
	Review string
	// PaidFen is what the user pays at WeChat: AmountFen, except for an
	// arranged amount mismatch.
	PaidFen int64
	// Refunds are asked once the order is paid here (nil: none).
	Refunds *refundScript
}

// The REVIEWs a run arranges.
const (
	reviewMismatch = "amount mismatch"  // a plain order paid at WeChat with another amount
	reviewLate     = "paid after close" // a NATIVE order that expired and was closed, then paid
)

// lateTimeout is the timeout_seconds of an order to be paid after close.
const lateTimeout = 2

// outcome is what happened to a plan on the client side.
type outcome struct {
	plan
	Created       bool   // POST /orders answered 201 or (after a retry) 409
	Prepaid       bool   // the answer carried a code_url
	CreateTries   int    // POST /orders attempts
	TransactionID string // from /sim/pay: WeChat's id of the payment; "" if the user never paid
	Err           string // why it was not created or not paid
}

// makePlans decides n payments, reviews of them arranged to go to REVIEW
// (alternately an amount mismatch and a payment after close).
func makePlans(rng *rand.Rand, n int, runID string, nativeFrac, dropFrac float64, reviews int) []plan {
	ps := make([]plan, n)
	for i := range ps {
		ps[i] = plan{
			OutTradeNo: fmt.Sprintf("CHAOS%s%05d", runID, i),
			AmountFen:  1 + rng.Int64N(99_999),
			Native:     rng.Float64() < nativeFrac,
			Drop:       rng.Float64() < dropFrac,
		}
		ps[i].PaidFen = ps[i].AmountFen
	}
	for j, i := range rng.Perm(n)[:min(reviews, n)] {
		p := &ps[i]
		p.Drop = false
		if j%2 == 0 {
			p.Review, p.Native = reviewMismatch, false
			p.PaidFen = p.AmountFen + 1 + rng.Int64N(1000)
		} else {
			p.Review, p.Native = reviewLate, true
		}
	}
	return ps
}

// payer creates each order through a running api and pays it at the sim.
type payer struct {
	d          *stack.Deployment
	hc         *http.Client
	duplicates int
	// payUnprepaid pays a NATIVE order at once even when the client never
	// got its code_url (POST /orders failed mid-way); WeChat only takes
	// such a payment after the prepay, so by default the payer first
	// waits for the workflow's prepay to reach the sim.
	payUnprepaid bool
	next         atomic.Uint64
}

// runAll makes the payments at rate per second with at most concurrency
// in flight; paid(i) is called once plans[i] was paid at the sim.
func (p *payer) runAll(ctx context.Context, plans []plan, rate float64, concurrency int, paid func(i int)) []outcome {
	out := make([]outcome, len(plans))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for i := range jobs {
				out[i] = p.pay(ctx, plans[i])
				if out[i].TransactionID != "" {
					paid(i)
				}
			}
		})
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
feed:
	for i := range plans {
		select {
		case <-ctx.Done():
			for j := i; j < len(plans); j++ {
				out[j] = outcome{plan: plans[j], Err: "not attempted: " + ctx.Err().Error()}
			}
			break feed
		case <-tick.C:
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

func (p *payer) pay(ctx context.Context, pl plan) outcome {
	o := outcome{plan: pl}
	if err := p.create(ctx, &o); err != nil {
		o.Err = "create: " + err.Error()
		return o
	}
	if o.Native && !o.Prepaid && (!p.payUnprepaid || pl.Review == reviewLate) {
		if err := p.waitPrepay(ctx, pl.OutTradeNo); err != nil {
			o.Err = err.Error()
			return o
		}
	}
	pay := map[string]any{
		"out_trade_no": pl.OutTradeNo, "amount_fen": pl.PaidFen,
		"duplicates": p.duplicates, "concurrent": true, "drop": pl.Drop,
	}
	if pl.Review == reviewLate {
		// Paid once the order expired and was closed, here and at WeChat.
		if _, err := p.waitOrder(ctx, pl.OutTradeNo, 3*time.Minute, func(o payment.Order) bool { return o.Status == payment.StatusClosed }); err != nil {
			o.Err = "never CLOSED, so not paid after close: " + err.Error()
			return o
		}
		pay["force"] = true
	}
	var resp struct {
		TransactionID string `json:"transaction_id"`
	}
	status, body, err := p.do(ctx, http.MethodPost, p.d.SimURL+"/sim/pay", pay, &resp)
	switch {
	case err != nil:
		o.Err = "sim pay: " + err.Error()
	case status != http.StatusOK:
		o.Err = fmt.Sprintf("sim pay: %d %s", status, body)
	default:
		o.TransactionID = resp.TransactionID
	}
	return o
}

// waitPrepay waits until WeChat (the sim) has the order's prepay, which
// the order's workflow makes when POST /orders could not: for at most
// three minutes, since the workflow of an order whose POST /orders failed
// is started by the safety net, which needs Temporal, PostgreSQL and a
// worker up at once (under kills every few seconds that took 93 s).
func (p *payer) waitPrepay(ctx context.Context, no string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		var tr simTrade
		status, _, err := p.do(ctx, http.MethodGet, p.d.SimURL+"/sim/trades/"+no, nil, &tr)
		if err == nil && status == http.StatusOK && tr.Prepays > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("never prepaid at WeChat, so not paid")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// create sends POST /orders to the running apis in turn until one says
// 201, or 409 (an earlier try created it but its answer was lost), for at
// most two minutes. A NATIVE order created while Temporal was down answers
// 503 without its prepay; the retry then finds it (409) and it is paid as a
// plain order.
func (p *payer) create(ctx context.Context, o *outcome) error {
	body := map[string]any{"out_trade_no": o.OutTradeNo, "amount_fen": o.AmountFen, "description": "chaos"}
	if o.Native {
		body["trade_type"] = "NATIVE"
	}
	if o.Review == reviewLate {
		body["timeout_seconds"] = lateTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	for {
		api := p.api()
		o.CreateTries++
		var resp struct {
			CodeURL string `json:"code_url"`
		}
		status, b, err := p.do(ctx, http.MethodPost, api+"/orders", body, &resp, p.d.Authorize)
		switch {
		case err == nil && status == http.StatusCreated:
			o.Created, o.Prepaid = true, resp.CodeURL != ""
			return nil
		case err == nil && status == http.StatusConflict && o.CreateTries > 1:
			o.Created = true
			return nil
		case err == nil && status < 500:
			return fmt.Errorf("%d %s", status, b)
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%d %s", status, b)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %d tries: %s", o.CreateTries, last)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// api is the next api's base URL, round robin.
func (p *payer) api() string {
	return p.d.APIURLs[p.next.Add(1)%uint64(len(p.d.APIURLs))]
}

// getOrder reads GET /orders/{no} from the running apis in turn until one
// answers 200 (an api may be down), for at most 30 s.
func (p *payer) getOrder(ctx context.Context, no string) (payment.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var o payment.Order
		status, body, err := p.do(ctx, http.MethodGet, p.api()+"/orders/"+no, nil, &o, p.d.Authorize)
		switch {
		case err == nil && status == http.StatusOK:
			return o, nil
		case err == nil && status < 500:
			return o, fmt.Errorf("GET /orders/%s: %d %s", no, status, body)
		}
		select {
		case <-ctx.Done():
			return o, fmt.Errorf("GET /orders/%s: no api answered: %v %d %s", no, err, status, body)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// waitOrder polls the order until ok says so, for at most limit, and
// returns it as last read.
func (p *payer) waitOrder(ctx context.Context, no string, limit time.Duration, ok func(payment.Order) bool) (payment.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last payment.Order
	for {
		o, err := p.getOrder(ctx, no)
		if err == nil {
			if ok(o) {
				return o, nil
			}
			last = o
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("still %s after %s", last.Status, limit)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// do sends a JSON request and decodes a 2xx JSON answer into out; each of
// prepare (Deployment.Authorize for the order API) is applied to the request.
func (p *payer) do(ctx context.Context, method, url string, in, out any, prepare ...func(*http.Request)) (int, string, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, f := range prepare {
		f(req)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, "", err
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, string(b), fmt.Errorf("decode %s: %w", url, err)
		}
	}
	return resp.StatusCode, string(bytes.TrimSpace(b)), nil
}
