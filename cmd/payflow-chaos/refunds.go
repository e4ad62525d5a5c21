package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/payflow/payflow/payment"
)

// refundKind says what the sandbox does with a refund (its switches, set
// with POST /sim/refunds/{out_refund_no}/options before the refund is
// asked for), and so how the refund must end.
type refundKind string

const (
	refundPlain          refundKind = "plain"           // PROCESSING, then SUCCESS
	refundDropped        refundKind = "dropped"         // SUCCESS, never notified: the workflow's own query finds it
	refundAbnormal       refundKind = "abnormal"        // ABNORMAL for a while, then SUCCESS
	refundSystemError    refundKind = "system_error"    // executed, but answered 500 SYSTEM_ERROR (the ambiguous case)
	refundNotEnough      refundKind = "not_enough"      // NOT_ENOUGH (the merchant's balance) first, then executed
	refundPortal         refundKind = "portal"          // made in the merchant portal (POST /sim/refunds), notified in v2
	refundClosed         refundKind = "closed"          // CLOSED by WeChat: the money stays
	refundAbnormalClosed refundKind = "abnormal_closed" // ABNORMAL for a while, then CLOSED
	refundRefused        refundKind = "refused"         // refused USER_ACCOUNT_ABNORMAL: FAILED, never executed
)

// refundKinds is every kind, in the report's order.
var refundKinds = []refundKind{refundPlain, refundDropped, refundAbnormal, refundSystemError, refundNotEnough,
	refundPortal, refundClosed, refundAbnormalClosed, refundRefused}

// want is the status the refund must end in.
func (k refundKind) want() payment.RefundStatus {
	switch k {
	case refundClosed, refundAbnormalClosed:
		return payment.RefundClosed
	case refundRefused:
		return payment.RefundFailed
	}
	return payment.RefundSuccess
}

// refundStep is one refund of an order.
type refundStep struct {
	No        string
	AmountFen int64
	Kind      refundKind
	NotEnough int // refundNotEnough: applies answered NOT_ENOUGH first
	// Repeat: asked again with the same out_refund_no and amount (200, the
	// same refund) and with another amount (409).
	Repeat bool
}

// options are the sandbox's switches for the step's refund (nil: none).
func (st refundStep) options() map[string]any {
	switch st.Kind {
	case refundDropped:
		return map[string]any{"drop": true}
	case refundAbnormal:
		// PROCESSING, then ABNORMAL, each 300 s scaled by SIM_TIME_SCALE.
		return map[string]any{"outcome": "ABNORMAL", "then": "SUCCESS", "processing": "300s"}
	case refundAbnormalClosed:
		return map[string]any{"outcome": "ABNORMAL", "then": "CLOSED", "processing": "300s"}
	case refundSystemError:
		return map[string]any{"system_error_after_accept": true}
	case refundNotEnough:
		return map[string]any{"not_enough": st.NotEnough}
	case refundClosed:
		return map[string]any{"outcome": "CLOSED"}
	case refundRefused:
		return map[string]any{"refuse": "USER_ACCOUNT_ABNORMAL"}
	}
	return nil
}

// refundScript is what the run does to one paid order: its refunds in
// order, then perhaps one asked for more than is left.
type refundScript struct {
	PaidFen int64 // what WeChat took: the refunds never add up to more
	Steps   []refundStep
	// Full: the refunds that end SUCCESS add up to PaidFen, so the order
	// must end REFUNDED; else it stays PAID (or REVIEW).
	Full bool
	// ExceedNo, when set, is asked for one fen more than can be left: 409,
	// recorded nowhere, never sent to WeChat.
	ExceedNo string
}

// refundConfig says how many refunds of which kinds a run plans.
type refundConfig struct {
	frac      float64 // paid orders refunded
	portal    float64 // of those, with a refund made in the merchant portal
	repeat    float64 // API refunds asked again (same amount: 200; another: 409)
	exceed    float64 // refunded orders also asked for more than is left (409)
	extra     float64 // partly refunded orders with one more refund that ends CLOSED or FAILED
	dropped   float64 // API refunds whose notifications the sandbox drops
	abnormal  float64 // ABNORMAL, then SUCCESS
	sysErr    float64 // SYSTEM_ERROR after accepting
	notEnough float64 // NOT_ENOUGH first
	// notEnoughTimes is how many applies of a refundNotEnough refund are
	// answered NOT_ENOUGH.
	notEnoughTimes int
}

// pick draws the kind of an API refund that must end SUCCESS.
func (rc refundConfig) pick(rng *rand.Rand) refundKind {
	x := rng.Float64()
	for _, k := range []struct {
		kind refundKind
		frac float64
	}{{refundDropped, rc.dropped}, {refundAbnormal, rc.abnormal}, {refundSystemError, rc.sysErr}, {refundNotEnough, rc.notEnough}} {
		if x < k.frac {
			return k.kind
		}
		x -= k.frac
	}
	return refundPlain
}

// makeRefundScripts decides, from rng, which paid orders are refunded and
// how. An order arranged to go to REVIEW is always refunded in full: that
// is how such a payment is settled.
func makeRefundScripts(rng *rand.Rand, plans []plan, runID string, rc refundConfig) {
	for i := range plans {
		p := &plans[i]
		no := func(prefix string, j int) string { return fmt.Sprintf("%s%s%05d-%d", prefix, runID, i, j) }
		if p.Review != "" {
			p.Refunds = &refundScript{PaidFen: p.PaidFen, Full: true,
				Steps: []refundStep{{No: no("R", 1), AmountFen: p.PaidFen, Kind: refundPlain}}}
			continue
		}
		if rng.Float64() >= rc.frac {
			continue
		}
		paid := p.PaidFen
		s := &refundScript{PaidFen: paid, Full: rng.Float64() < 0.5 || paid < 4}
		total := paid
		if !s.Full {
			total = max(1, paid*(20+rng.Int64N(61))/100)
		}
		n := 1 + rng.IntN(3)
		portal := rng.Float64() < rc.portal
		if portal {
			n++
		}
		n = int(min(int64(n), total))
		portalAt := -1
		if portal {
			portalAt = rng.IntN(n)
		}
		for j, amount := range split(rng, total, n) {
			st := refundStep{No: no("R", j+1), AmountFen: amount}
			if j == portalAt {
				st.No, st.Kind = no("P", j+1), refundPortal
			} else {
				st.Kind = rc.pick(rng)
				st.Repeat = rng.Float64() < rc.repeat
				if st.Kind == refundNotEnough {
					st.NotEnough = rc.notEnoughTimes
				}
			}
			s.Steps = append(s.Steps, st)
		}
		if left := paid - total; left >= 1 && rng.Float64() < rc.extra {
			kinds := []refundKind{refundClosed, refundAbnormalClosed, refundRefused}
			st := refundStep{No: no("R", len(s.Steps)+1), AmountFen: 1 + rng.Int64N(left), Kind: kinds[rng.IntN(len(kinds))]}
			s.Steps = slices.Insert(s.Steps, rng.IntN(len(s.Steps)+1), st)
		}
		if rng.Float64() < rc.exceed {
			s.ExceedNo = no("X", 0)
		}
		p.Refunds = s
	}
}

// split cuts total into n positive parts (n <= total) at random.
func split(rng *rand.Rand, total int64, n int) []int64 {
	cuts := map[int64]bool{}
	for len(cuts) < n-1 {
		cuts[1+rng.Int64N(total-1)] = true
	}
	points := []int64{0, total}
	for c := range cuts {
		points = append(points, c)
	}
	slices.Sort(points)
	parts := make([]int64, n)
	for i := range parts {
		parts[i] = points[i+1] - points[i]
	}
	return parts
}

// issue is something the client side of the run saw that it must not.
type issue struct {
	OutTradeNo, OutRefundNo, What string
}

// refundStats count what the refunder did.
type refundStats struct {
	Orders      int // orders whose refunds were asked for
	NotReady    int // paid at the sim but not paid here in time: no refund asked
	Asked       int // API refunds accepted here (201, or 200 after a lost answer)
	ByKind      map[refundKind]int
	Portal      int // refunds made in the merchant portal (the sandbox)
	Repeats     int // the same out_refund_no and amount again: 200
	OtherAmount int // the same out_refund_no with another amount: 409
	Exceeding   int // more than is left: 409
	Retries     int // requests sent again after a 5xx or no answer
}

// refunder asks for the refunds of the orders handed to it, through the
// running apis, as a merchant's back office would: retrying a request that
// got no answer with the same out_refund_no.
type refunder struct {
	p *payer

	mu     sync.Mutex
	stats  refundStats
	issues []issue
}

func newRefunder(p *payer) *refunder {
	return &refunder{p: p, stats: refundStats{ByKind: map[refundKind]int{}}}
}

// run works through the orders (indexes of plans) with concurrency
// scripts at a time, until jobs is closed and done.
func (r *refunder) run(ctx context.Context, plans []plan, jobs <-chan int, concurrency int) {
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for i := range jobs {
				r.script(ctx, plans[i])
			}
		})
	}
	wg.Wait()
}

func (r *refunder) note(f func(s *refundStats)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.stats)
}

func (r *refunder) problem(no, refundNo, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issues = append(r.issues, issue{OutTradeNo: no, OutRefundNo: refundNo, What: fmt.Sprintf(format, args...)})
}

// script asks for one order's refunds, once it is paid here.
func (r *refunder) script(ctx context.Context, pl plan) {
	s := pl.Refunds
	o, err := r.p.waitOrder(ctx, pl.OutTradeNo, 3*time.Minute, func(o payment.Order) bool {
		if pl.Review != "" {
			return o.Status == payment.StatusReview && o.TransactionID != ""
		}
		return o.Status == payment.StatusPaid
	})
	if err != nil {
		// The payment's own checks say what happened to it.
		r.note(func(s *refundStats) { s.NotReady++ })
		return
	}
	if o.PaidFen != s.PaidFen {
		r.problem(pl.OutTradeNo, "", "paid_fen is %d, WeChat took %d", o.PaidFen, s.PaidFen)
	}
	r.note(func(s *refundStats) { s.Orders++ })
	var succeeding int64 // API refunds accepted that must end SUCCESS
	for _, st := range s.Steps {
		if ctx.Err() != nil {
			return
		}
		if st.Kind == refundPortal {
			r.portal(ctx, pl.OutTradeNo, st)
			continue
		}
		if opts := st.options(); opts != nil {
			status, body, err := r.p.do(ctx, http.MethodPost, r.p.d.SimURL+"/sim/refunds/"+st.No+"/options", opts, nil)
			if err != nil || status != http.StatusOK {
				r.problem(pl.OutTradeNo, st.No, "the sandbox refused the refund's switches %v: %v %d %s", opts, err, status, body)
				continue
			}
		}
		status, ref, body, tries := r.post(ctx, pl.OutTradeNo, st.No, st.AmountFen)
		switch {
		case status == http.StatusOK && tries == 1:
			// 200 says the refund existed before this request: a new refund
			// must be 201, even when the workflow task that accepted it ran
			// twice (the store records which run and update accepted it).
			r.problem(pl.OutTradeNo, st.No, "a new refund answered 200, not 201, at the first try (created_at %s)", ref.CreatedAt.Format(time.RFC3339Nano))
		case status != http.StatusCreated && status != http.StatusOK:
			r.problem(pl.OutTradeNo, st.No, "a refund of %d fen within what is left answered %d %s", st.AmountFen, status, body)
			continue
		}
		if ref.OutRefundNo != st.No || ref.AmountFen != st.AmountFen || ref.OutTradeNo != pl.OutTradeNo {
			r.problem(pl.OutTradeNo, st.No, "accepted as %s of %s for %d fen, asked %d fen", ref.OutRefundNo, ref.OutTradeNo, ref.AmountFen, st.AmountFen)
		}
		r.note(func(s *refundStats) { s.Asked++; s.ByKind[st.Kind]++ })
		if st.Kind.want() == payment.RefundSuccess {
			succeeding += st.AmountFen
		}
		if !st.Repeat {
			continue
		}
		status, ref, body, _ = r.post(ctx, pl.OutTradeNo, st.No, st.AmountFen)
		if status != http.StatusOK || ref.OutRefundNo != st.No || ref.AmountFen != st.AmountFen {
			r.problem(pl.OutTradeNo, st.No, "the same refund asked again answered %d %s, want 200 with the refund", status, body)
		} else {
			r.note(func(s *refundStats) { s.Repeats++ })
		}
		status, _, body, _ = r.post(ctx, pl.OutTradeNo, st.No, st.AmountFen+1)
		if status != http.StatusConflict {
			r.problem(pl.OutTradeNo, st.No, "the same out_refund_no with another amount answered %d %s, want 409", status, body)
		} else {
			r.note(func(s *refundStats) { s.OtherAmount++ })
		}
	}
	if s.ExceedNo != "" && ctx.Err() == nil {
		// More than can be left, whatever else is known here by now (a
		// portal refund, a CLOSED one giving its amount back).
		amount := s.PaidFen - succeeding + 1
		status, _, body, _ := r.post(ctx, pl.OutTradeNo, s.ExceedNo, amount)
		if status != http.StatusConflict {
			r.problem(pl.OutTradeNo, s.ExceedNo, "a refund of %d fen, more than is left, answered %d %s, want 409", amount, status, body)
		} else {
			r.note(func(s *refundStats) { s.Exceeding++ })
		}
	}
}

// portal makes a refund in the merchant portal: at the sandbox, which
// notifies it in v2 XML.
func (r *refunder) portal(ctx context.Context, no string, st refundStep) {
	status, body, err := r.p.do(ctx, http.MethodPost, r.p.d.SimURL+"/sim/refunds",
		map[string]any{"out_trade_no": no, "amount_fen": st.AmountFen, "out_refund_no": st.No}, nil)
	if err != nil || status != http.StatusCreated {
		r.problem(no, st.No, "the portal refund of %d fen was refused by the sandbox: %v %d %s", st.AmountFen, err, status, body)
		return
	}
	r.note(func(s *refundStats) { s.Portal++; s.ByKind[refundPortal]++ })
}

// post sends POST /orders/{no}/refunds to the running apis in turn until
// one answers other than 5xx, for at most two minutes, and returns that
// answer (0 if none came) and how many tries it took.
func (r *refunder) post(ctx context.Context, no, refundNo string, amount int64) (int, payment.Refund, string, int) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	body := map[string]any{"out_refund_no": refundNo, "amount_fen": amount, "reason": "chaos"}
	for tries := 1; ; tries++ {
		var ref payment.Refund
		status, b, err := r.p.do(ctx, http.MethodPost, r.p.api()+"/orders/"+no+"/refunds", body, &ref, r.p.d.Authorize)
		if err == nil && status < 500 {
			return status, ref, b, tries
		}
		r.note(func(s *refundStats) { s.Retries++ })
		select {
		case <-ctx.Done():
			return 0, ref, fmt.Sprintf("no answer after %d tries: %v %d %s", tries, err, status, b), tries
		case <-time.After(300 * time.Millisecond):
		}
	}
}
