package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// The performance goals (issue #12) and how each run measures them.
const (
	goalOrders     = 0.9                  // POST /orders per second ÷ StartWorkflow calls per second
	goalSaturation = 0.9                  // saturation rate ÷ empty-workflow completions per second
	goalAckDelta   = 5 * time.Millisecond // ack p99 − raw SignalWithStart p99 at the same rate (dev server)
	goalOverload   = 0.9                  // PAID/s under overload ÷ PAID/s at the saturation point
)

// perfMarkdown renders the goals' table and the sections behind it.
func (r *report) perfMarkdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	if len(r.Targets) == 0 {
		return ""
	}
	p("Goals (issue #12), each measured against the same Temporal server in the same run:\n\n")
	p("| goal | %s |\n", strings.Join(targetNames(r.Targets), " | "))
	p("| --- |%s\n", strings.Repeat(" --- |", len(r.Targets)))
	row := func(goal string, f func(t targetResult) string) {
		var cells []string
		for _, t := range r.Targets {
			cells = append(cells, f(t))
		}
		p("| %s | %s |\n", goal, strings.Join(cells, " | "))
	}
	row(fmt.Sprintf("POST /orders ≥ %.1f × StartWorkflow ceiling", goalOrders), func(t targetResult) string {
		st := find(t.Ceilings, ceilStart)
		if t.Orders == nil || st == nil || st.rate() == 0 {
			return "not measured"
		}
		ratio := t.Orders.rate() / st.rate()
		return fmt.Sprintf("%.1f/s ÷ %.1f/s = %.2f %s", t.Orders.rate(), st.rate(), ratio, mark(ratio >= goalOrders))
	})
	row(fmt.Sprintf("saturation ≥ %.1f × empty-workflow ceiling", goalSaturation), func(t targetResult) string {
		em := find(t.Ceilings, ceilEmpty)
		if t.Steps == nil || em == nil || em.rate() == 0 {
			return "not measured"
		}
		sat := saturation(t.Steps.Steps)
		if sat == nil {
			return fmt.Sprintf("no step kept up (empty workflow %.1f/s) %s", em.rate(), mark(false))
		}
		ratio := sat.Rate / em.rate()
		return fmt.Sprintf("%.0f/s (PAID %.1f/s, p99 %s) ÷ %.1f/s = %.2f %s", sat.Rate, sat.PaidRate(), ms(sat.TimeToPaid.P99), em.rate(), ratio, mark(ratio >= goalSaturation))
	})
	row(fmt.Sprintf("ack p99 ≤ raw SignalWithStart p99 + %s (dev server)", goalAckDelta), func(t targetResult) string {
		sw := find(t.Ceilings, ceilSignalRate)
		if sw == nil || t.Payflow.AckLatency.N == 0 {
			return "not measured"
		}
		d := t.Payflow.AckLatency.P99 - sw.Latency.P99
		s := fmt.Sprintf("%s − %s = %+.1f ms", ms(t.Payflow.AckLatency.P99), ms(sw.Latency.P99), float64(d)/float64(time.Millisecond))
		if t.Name == "dev" {
			s += " " + mark(d <= goalAckDelta)
		}
		return s
	})
	row(fmt.Sprintf("overload (%.0f × saturation): PAID/s ≥ %.1f × saturation PAID/s, backlog drains", r.Opts.overload, goalOverload), func(t targetResult) string {
		sat := (*stepResult)(nil)
		if t.Steps != nil {
			sat = saturation(t.Steps.Steps)
		}
		if sat == nil || len(t.Overload) == 0 {
			return "not measured"
		}
		var parts []string
		for _, o := range t.Overload {
			rate := o.loadPaidRate()
			ratio := rate / sat.PaidRate()
			ok := ratio >= goalOverload && o.Lost == 0 && !o.DrainTimedOut
			parts = append(parts, fmt.Sprintf("%.1f/s ÷ %.1f/s = %.2f, %d lost %s", rate, sat.PaidRate(), ratio, o.Lost, mark(ok)))
		}
		return strings.Join(parts, "; ")
	})
	p("\n")

	for _, t := range r.Targets {
		if t.Orders != nil {
			st := find(t.Ceilings, ceilStart)
			p("- %s: POST /orders %s orders/s (p50 %s, p99 %s, %d errors)", t.Name, strings.TrimSuffix(perSec(t.Orders.Ops, t.Orders.Elapsed), "/s"),
				ms(t.Orders.Latency.P50), ms(t.Orders.Latency.P99), t.Orders.Errors)
			if st != nil {
				p("; StartWorkflow alone %.1f calls/s (p50 %s, p99 %s)", st.rate(), ms(st.Latency.P50), ms(st.Latency.P99))
			}
			p("; %d callers for %s each.\n", r.Opts.ceilingConc, r.Opts.ceilingDur)
		}
	}

	for _, t := range r.Targets {
		if t.Steps == nil {
			continue
		}
		p("\nStep load on %s (%s per step; a step keeps up when PAID/s within it is at least 95 %% of the offered rate, "+
			"its own payments are all PAID and their time to PAID p99 is under 1 s; the load stops after a step that leaves more than a second's worth of backlog):\n\n", t.Name, r.Opts.stepDur)
		p("| offered | sent | acked | PAID/s in the step | to PAID p50 | to PAID p99 | backlog at its end | kept up |\n")
		p("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, s := range t.Steps.Steps {
			p("| %.0f/s | %d | %d | %.1f/s | %s | %s | %d | %s |\n", s.Rate, s.Sent, s.Acked, s.PaidRate(),
				ms(s.TimeToPaid.P50), ms(s.TimeToPaid.P99), s.Backlog, yesNo(s.KeptUp()))
		}
		l := t.Steps
		p("\n%d payments, lost %d, doubled %d", l.Payments, l.Lost, l.Doubled)
		if l.Stopped > 0 {
			p("; %d higher steps not sent", l.Stopped)
		}
		p("; orders set up at %.0f/s.\n", l.SetupRate)
	}

	for _, t := range r.Targets {
		p("%s", cpuTable(t))
	}

	for _, t := range r.Targets {
		if len(t.Overload) == 0 {
			continue
		}
		p("\nOverload on %s:\n\n", t.Name)
		p("| run | offered | PAID/s during the load | ack p50 | ack p99 | answered not SUCCESS | resends | all PAID after the load | to PAID p99 | lost | doubled | never acked |\n")
		p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for i, o := range t.Overload {
			drained := "no"
			if !o.DrainTimedOut && o.PaidWindow > 0 {
				drained = fmt.Sprintf("%.1f s", (o.PaidWindow - o.SendWindow).Seconds())
			}
			p("| %d | %.0f/s × %s (%d payments) | %.1f/s | %s | %s | %d | %d | %s | %s | %d | %d | %d |\n", i+1, o.OfferedRate, r.Opts.overloadDur,
				o.Payments, o.loadPaidRate(), ms(o.AckLatency.P50), ms(o.AckLatency.P99), o.Failed, o.Retries, drained,
				ms(o.TimeToPaid.P99), o.Lost, o.Doubled, o.NotPaidNoAck)
		}
	}
	p("\n")
	return b.String()
}

// cpuTable is where the CPU went on target t, per operation: the
// empty-workflow ceiling's per completed workflow, each step's per payment
// made PAID within it ("" without samples).
func cpuTable(t targetResult) string {
	if len(t.CPU) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	parts := t.CPU[0].Use.Parts
	p("\nCPU per operation on %s, ms (user + system, each process with its children, from /proc; machine busy = all of them ÷ the window, of %d CPUs):\n\n", t.Name, runtime.NumCPU())
	p("| measurement | done/s | %s | all | machine busy |\n", strings.Join(parts, " | "))
	p("|%s\n", strings.Repeat(" --- |", len(parts)+4))
	for _, row := range t.CPU {
		p("| %s | %.1f |", row.Label, row.Rate())
		for i := range parts {
			p(" %.1f |", row.PerOp(i))
		}
		p(" %.1f | %.2f |\n", row.perOp(row.Use.Total()), row.Use.Total()/row.Use.Window.Seconds())
	}
	return b.String()
}

// loadPaidRate is the rate of PAID rows written while the load was sent.
func (l loadResult) loadPaidRate() float64 {
	if l.SendWindow <= 0 {
		return 0
	}
	return float64(l.paidDuringLoad()) / l.SendWindow.Seconds()
}

// paidDuringLoad counts the PAID rows written while the load was sent.
func (l loadResult) paidDuringLoad() int {
	n := 0
	end := l.start.Add(l.SendWindow)
	for _, p := range l.pays {
		if p.sent && !p.paidAt.IsZero() && p.paidAt.Before(end) {
			n++
		}
	}
	return n
}

func targetNames(ts []targetResult) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func mark(ok bool) string {
	if ok {
		return "(met)"
	}
	return "(**not met**)"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
