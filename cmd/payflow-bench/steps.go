package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// step is one part of a load: Rate payments per second for Duration.
type step struct {
	Rate     float64
	Duration time.Duration
}

// schedule is when each payment is due, from the load's start: payment i
// of a step at rate r that began at t0 is due at t0 + i/r.
func schedule(steps []step) []time.Duration {
	var dues []time.Duration
	var t0 time.Duration
	for _, s := range steps {
		n := max(1, int(s.Rate*s.Duration.Seconds()+0.5))
		for i := range n {
			dues = append(dues, t0+time.Duration(float64(i)/s.Rate*float64(time.Second)))
		}
		t0 += s.Duration
	}
	return dues
}

func stepsString(steps []step) string {
	var parts []string
	for _, s := range steps {
		parts = append(parts, fmt.Sprintf("%.0f/s×%s", s.Rate, s.Duration))
	}
	return strings.Join(parts, ", ")
}

// stepRates are the rates of a step load from lo to hi (both included)
// in increments of inc.
func stepRates(lo, hi, inc float64, d time.Duration) []step {
	var out []step
	for r := lo; r <= hi+1e-9; r += inc {
		out = append(out, step{Rate: r, Duration: d})
	}
	return out
}

// backlogAfter reports whether, at the end of a step at the given rate, more payments of sent are still not PAID than the step's rate
// produces in a second: the queue grows. It reads the PAID rows once.
func backlogAfter(ctx context.Context, o loadOptions, sent []*benchPayment, rate float64) (bool, error) {
	if o.StopBehind <= 0 {
		return false, nil
	}
	var paid int
	err := o.DB.QueryRow(ctx, `SELECT count(DISTINCT out_trade_no) FROM order_logs WHERE to_status = 'PAID' AND out_trade_no LIKE $1`,
		o.Prefix+"%").Scan(&paid)
	if err != nil {
		return false, fmt.Errorf("count PAID: %w", err)
	}
	return float64(len(sent)-paid) > rate*o.StopBehind.Seconds(), nil
}

// stepResult is what one step of a load measured.
type stepResult struct {
	Rate     float64
	Duration time.Duration
	Sent     int // payments whose notification was sent in the step
	Acked    int // of those, acknowledged (at once or after resends)
	// Paid counts PAID rows written during the step's window, whichever
	// step's payments they are: the rate at which payments complete.
	Paid       int
	TimeToPaid latencies // of the step's own payments
	NotPaid    int       // the step's payments not PAID when the run ended
	// Backlog is how many payments sent up to the end of the step were
	// not PAID yet at that moment.
	Backlog int

	From, To time.Time // the step's window, for its CPU (cpuSampler)
}

// PaidRate is the step's completions per second.
func (s stepResult) PaidRate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Paid) / s.Duration.Seconds()
}

// KeptUp is the saturation criterion: completions keep up with the
// offered rate (at least 95 % of it within the step) and the step's own
// payments reach PAID within a second at p99.
func (s stepResult) KeptUp() bool {
	return s.Sent > 0 && s.NotPaid == 0 && s.PaidRate() >= 0.95*s.Rate && s.TimeToPaid.P99 > 0 && s.TimeToPaid.P99 < time.Second
}

// stepResults judges each step that was sent.
func stepResults(steps []step, dues []time.Duration, pays []*benchPayment, start time.Time) []stepResult {
	var out []stepResult
	var t0 time.Duration
	i := 0
	for _, s := range steps {
		from, to := start.Add(t0), start.Add(t0+s.Duration)
		r := stepResult{Rate: s.Rate, Duration: s.Duration, From: from, To: to}
		var lat []time.Duration
		for ; i < len(dues) && dues[i] < t0+s.Duration; i++ {
			p := pays[i]
			if !p.sent {
				continue
			}
			r.Sent++
			if p.acked {
				r.Acked++
			}
			if p.paidAt.IsZero() {
				r.NotPaid++
				continue
			}
			lat = append(lat, p.paidAt.Sub(p.firstAt))
		}
		for j, p := range pays {
			if !p.sent {
				continue
			}
			if !p.paidAt.IsZero() && !p.paidAt.Before(from) && p.paidAt.Before(to) {
				r.Paid++
			}
			if dues[j] < t0+s.Duration && (p.paidAt.IsZero() || !p.paidAt.Before(to)) {
				r.Backlog++
			}
		}
		r.TimeToPaid = summarize(lat)
		t0 += s.Duration
		if r.Sent == 0 {
			break
		}
		out = append(out, r)
	}
	return out
}

// saturation is the highest step that kept up, or nil.
func saturation(steps []stepResult) *stepResult {
	var best *stepResult
	for i := range steps {
		if steps[i].KeptUp() && (best == nil || steps[i].Rate > best.Rate) {
			best = &steps[i]
		}
	}
	return best
}
