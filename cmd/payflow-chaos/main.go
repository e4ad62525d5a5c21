// Command payflow-chaos pays many orders through the whole local stack
// while it SIGKILLs and restarts workers, apis, the Temporal dev server and
// PostgreSQL, then checks every payment: PAID exactly once, by the
// sim's transaction, with one PENDING→PAID log row. It exits 1 if any
// payment was lost, doubled, stuck or badly logged.
//
// The stack (internal/stack) runs on free loopback ports in a temporary
// directory: two workers and two apis by default, behind a small round-robin
// proxy that WeChat's notifications (the sim's) reach; a dead api makes the
// proxy answer 502, and the sim retries on WeChat's schedule.
//
//	go run ./cmd/payflow-chaos -payments 200 -duplicates 3 -seed 1
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/store"
)

type config struct {
	payments, duplicates, concurrency int
	workers, apis                     int
	rate                              float64
	seed                              uint64
	duration, wait                    time.Duration
	nativeFrac, dropFrac              float64
	gap, outage                       [2]time.Duration
	apiVersion                        string
	keep, payUnprepaid                bool
}

func main() {
	var c config
	flag.IntVar(&c.payments, "payments", 200, "orders to create and pay")
	flag.IntVar(&c.duplicates, "duplicates", 3, "extra copies of each notification, sent concurrently")
	flag.IntVar(&c.concurrency, "concurrency", 8, "payments in flight at once")
	flag.Float64Var(&c.rate, "rate", 4, "payments started per second")
	flag.Uint64Var(&c.seed, "seed", 0, "random seed for the payments and the faults (0: from the clock; printed)")
	flag.DurationVar(&c.duration, "duration", 15*time.Minute, "cap on the whole run")
	flag.DurationVar(&c.wait, "wait", 3*time.Minute, "cap on the wait for quiescence after the last fault")
	flag.IntVar(&c.workers, "workers", 2, "bin/worker processes")
	flag.IntVar(&c.apis, "apis", 2, "bin/api processes")
	flag.Float64Var(&c.nativeFrac, "native", 0.3, "fraction of orders prepaid as NATIVE")
	flag.Float64Var(&c.dropFrac, "drop", 0.15, "fraction of payments whose notifications are dropped")
	flag.DurationVar(&c.gap[0], "gap-min", time.Second, "least time between two faults")
	flag.DurationVar(&c.gap[1], "gap-max", 4*time.Second, "most time between two faults")
	flag.DurationVar(&c.outage[0], "outage-min", time.Second, "shortest outage")
	flag.DurationVar(&c.outage[1], "outage-max", 3*time.Second, "longest outage")
	flag.StringVar(&c.apiVersion, "api-version", "v3", "WECHATPAY_API_VERSION of api and worker")
	flag.BoolVar(&c.keep, "keep", false, "keep the stack's directory (logs, temporal.db) even when every check passes")
	flag.BoolVar(&c.payUnprepaid, "pay-unprepaid", false, "pay a NATIVE order whose POST /orders failed without waiting for its prepay to reach WeChat")
	flag.Parse()
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	ok, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "payflow-chaos:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// run returns false when a check failed, and an error when the run itself
// could not be made.
func run(c config) (ok bool, err error) {
	began := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	progress := func(msg string) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(began).Seconds(), msg)
	}
	progress(fmt.Sprintf("seed %d: %d payments, %d duplicates each, %d workers, %d apis", c.seed, c.payments, c.duplicates, c.workers, c.apis))

	dir, err := os.MkdirTemp("", "payflow-chaos-")
	if err != nil {
		return false, err
	}
	defer func() {
		if ok && !c.keep {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintf(os.Stderr, "stack directory kept: %s (logs/ has every process's log)\n", dir)
		}
	}()

	// The notifications' load balancer listens before the stack starts, so
	// that the sim and the workers' prepays can name it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	st, err := stack.Start(ctx, stack.Options{
		Dir: dir,
		// A SIGKILLed postmaster must not take back commits it confirmed.
		DurableCommits: true,
		Deployments: []stack.DeploymentOptions{{
			Workers: c.workers, APIs: c.apis, APIVersion: c.apiVersion,
			NotifyBaseURL:   "http://" + ln.Addr().String(),
			SimTimeScale:    0.01,            // WeChat's 15 s, 15 s, 30 s, 3 m… retries become 0.15 s, 0.15 s, 0.3 s, 1.8 s…
			OrderQueryAfter: 2 * time.Second, // dropped notifications are found by the workflow's own query
			// Orders whose workflow could not start (Temporal down during
			// POST /orders) are picked up by reconciliation within the run.
			ReconcileInterval: 5 * time.Second,
			ReconcileGrace:    2 * time.Second,
		}},
		Logf: func(format string, args ...any) { progress(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		ln.Close()
		return false, err
	}
	defer st.Close()
	d := st.Deployments[0]
	px := newProxy(d.APIs)
	srv := &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	db, err := pgxpool.New(ctx, d.DatabaseURL)
	if err != nil {
		return false, err
	}
	defer db.Close()
	orders, err := store.Open(ctx, d.DatabaseURL)
	if err != nil {
		return false, err
	}
	defer orders.Close()
	var syncCommit string
	if err := db.QueryRow(ctx, "SHOW synchronous_commit").Scan(&syncCommit); err != nil {
		return false, err
	}
	progress("stack up; synchronous_commit = " + syncCommit)

	rng := rand.New(rand.NewPCG(c.seed, 1))
	plans := makePlans(rng, c.payments, strconv.FormatUint(c.seed%1_000_000, 36), c.nativeFrac, c.dropFrac)
	p := &payer{d: d, hc: &http.Client{Timeout: 30 * time.Second}, duplicates: c.duplicates, payUnprepaid: c.payUnprepaid}
	fi := &faults{st: st, d: d, rng: rand.New(rand.NewPCG(c.seed, 2)), gap: c.gap, outage: c.outage, started: began, progress: progress}

	stopFaults := make(chan struct{})
	faultsDone := make(chan []fault, 1)
	go func() { faultsDone <- fi.run(ctx, stopFaults) }()
	payStart := time.Now()
	outs := p.runAll(ctx, plans, c.rate, c.concurrency)
	payTime := time.Since(payStart)
	progress(fmt.Sprintf("all payments submitted in %s; finishing the faults", payTime.Round(time.Millisecond)))
	close(stopFaults)
	done := <-faultsDone

	chk := &checker{db: db, store: orders, tc: st.Client}
	waitStart := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, c.wait)
	quiet := quiesce(wctx, chk, p, outs, progress)
	wcancel()
	waitTime := time.Since(waitStart)

	// The checks run even when the run's cap has passed.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer ccancel()
	trades, ds, err := p.simTrades(cctx, outs)
	if err != nil {
		return false, err
	}
	var verdicts []verdict
	for _, o := range outs {
		if o.TransactionID == "" {
			continue
		}
		txid := o.TransactionID
		if tr := trades[o.OutTradeNo]; tr.TransactionID != txid || tr.TradeState != "SUCCESS" {
			verdicts = append(verdicts, verdict{OutTradeNo: o.OutTradeNo, Class: classLost,
				Detail: fmt.Sprintf("the sim shows %s/%s, /sim/pay said %s", tr.TradeState, tr.TransactionID, txid)})
			continue
		}
		v, err := chk.judge(cctx, o.OutTradeNo, txid)
		if err != nil {
			return false, err
		}
		verdicts = append(verdicts, v)
	}
	ok = report(os.Stdout, c, outs, verdicts, done, ds, px, quiet, time.Since(began), payTime, waitTime)
	return ok, nil
}

// report prints the summary table and the orders that need a look; it
// returns false when a payment was lost, doubled, stuck or badly logged.
func report(w io.Writer, c config, outs []outcome, vs []verdict, fs []fault, ds deliveryStats, px *proxy,
	quiet bool, total, payTime, waitTime time.Duration) bool {
	var created, prepaid, native, dropped, paid, createRetries int
	var notPaid []outcome
	for _, o := range outs {
		if o.Native {
			native++
		}
		if o.Created {
			created++
		}
		if o.Prepaid {
			prepaid++
		}
		createRetries += max(0, o.CreateTries-1)
		if o.TransactionID != "" {
			paid++
			if o.Drop {
				dropped++
			}
		} else {
			notPaid = append(notPaid, o)
		}
	}
	count := map[string]int{}
	for _, v := range vs {
		count[v.Class]++
	}
	kinds := map[string]int{}
	for _, f := range fs {
		kinds[f.Kind]++
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\t\n", k, v) }
	fmt.Fprintln(w)
	row("seed", c.seed)
	row("orders planned", len(outs))
	row("  created (POST /orders 201/409)", created)
	row("  POST /orders retries", createRetries)
	row("  NATIVE planned / prepaid", fmt.Sprintf("%d / %d", native, prepaid))
	row("paid at the sim", paid)
	row("  notifications dropped", dropped)
	row("  copies per notification", 1+c.duplicates)
	row("notification deliveries", ds.Deliveries)
	row("  attempts / refused (5xx, 502, errors)", fmt.Sprintf("%d / %d", ds.Attempts, ds.Refused))
	row("  still retrying at the end", ds.Undone)
	row("  proxy: forwarded / 502", fmt.Sprintf("%d / %d", px.sent.Load(), px.fails.Load()))
	row("order queries answered by the sim", ds.Queries)
	row("faults (SIGKILL + restart)", len(fs))
	for _, k := range faultKinds {
		row("  "+k, kinds[k])
	}
	row("PAID exactly once", count[classOK])
	row("REVIEW", count[classReview])
	row("LOST", count[classLost])
	row("DOUBLED", count[classDoubled])
	row("STUCK", count[classStuck])
	row("BAD LOG", count[classBadLog])
	row("quiescent before the wait cap", quiet)
	row("payments phase", payTime.Round(time.Second))
	row("wait for quiescence", waitTime.Round(time.Second))
	row("total", total.Round(time.Second))
	tw.Flush()

	if len(fs) > 0 {
		fmt.Fprintln(w, "\nfaults:")
		for _, f := range fs {
			status := "ok"
			if f.Err != nil {
				status = "ERROR: " + f.Err.Error()
			}
			fmt.Fprintf(w, "  %6.1fs  %-8s %-10s down %4.1fs  ready after %4.1fs  %s\n",
				f.At.Seconds(), f.Kind, f.Target, f.Down.Seconds(), f.Recover.Seconds(), status)
		}
	}
	var odd []verdict
	for _, v := range vs {
		if v.Class != classOK {
			odd = append(odd, v)
		}
	}
	slices.SortFunc(odd, func(a, b verdict) int {
		if a.Class != b.Class {
			if a.Class < b.Class {
				return -1
			}
			return 1
		}
		if a.OutTradeNo < b.OutTradeNo {
			return -1
		}
		return 1
	})
	if len(odd) > 0 {
		fmt.Fprintln(w, "\norders that need a look:")
		for _, v := range odd {
			fmt.Fprintf(w, "  %-8s %-22s %-8s %s\n", v.Class, v.OutTradeNo, v.Status, v.Detail)
		}
	}
	if len(notPaid) > 0 {
		fmt.Fprintln(w, "\norders never paid at the sim (not checked):")
		for _, o := range notPaid {
			fmt.Fprintf(w, "  %-22s %s\n", o.OutTradeNo, o.Err)
		}
	}
	bad := count[classLost] + count[classDoubled] + count[classStuck] + count[classBadLog]
	if bad > 0 {
		fmt.Fprintf(w, "\nFAIL: %d payments lost, doubled, stuck or badly logged\n", bad)
		return false
	}
	if paid == 0 {
		fmt.Fprintln(w, "\nFAIL: nothing was paid")
		return false
	}
	fmt.Fprintln(w, "\nOK: every payment is PAID exactly once or in REVIEW")
	return true
}
