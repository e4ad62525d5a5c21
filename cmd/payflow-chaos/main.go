// Command payflow-chaos pays and refunds many orders through the whole
// local stack while it SIGKILLs and restarts workers, apis, the Temporal
// dev server and PostgreSQL, and while the sandbox (wechatpay-sim) injects
// WeChat's faults at random (SIM_FAULTS, seeded with the run's seed), then
// checks every payment and every refund:
//   - each payment PAID exactly once, by the sim's transaction, with one
//     PENDING→PAID log row; a REVIEW counts as a failure unless the run
//     arranged it (-reviews: an amount mismatch, a payment after close),
//     and then exactly those went to REVIEW;
//   - each refund executed once at WeChat (the sandbox's own counts), under
//     the number it was asked under, never beyond what was paid, final (or
//     ABNORMAL while WeChat says so), as its sandbox switches say it must
//     end, with one log row per outcome; every acknowledged notification
//     examined; REFUNDED exactly when the SUCCESS refunds add up.
//
// It exits 1 if a check failed, if fewer than -min-completed of the
// payments completed, or if no fault was injected or an injection failed.
//
// The stack (internal/stack) runs on free loopback ports in a temporary
// directory: two workers and two apis by default, behind a small round-robin
// proxy that WeChat's notifications (the sim's) reach; a dead api makes the
// proxy answer 502, and the sim retries on WeChat's schedule.
//
//	go run ./cmd/payflow-chaos -payments 200 -duplicates 3 -seed 1
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/sim"
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

	kills                       bool    // SIGKILL and restart processes
	simFaults                   float64 // SIM_FAULTS: the sandbox's random fault rate
	simFaultCalls, simFaultKind string  // SIM_FAULT_CALLS, SIM_FAULT_KINDS ("" all)
	reviews                     int     // payments sent to REVIEW on purpose
	minCompleted                float64 // least fraction of the payments that must complete

	refunds           refundConfig
	refundConcurrency int
	refundQueryAfter  time.Duration
}

func main() {
	var c config
	flag.IntVar(&c.payments, "payments", 200, "orders to create and pay")
	flag.IntVar(&c.duplicates, "duplicates", 3, "extra copies of each notification, sent concurrently")
	flag.IntVar(&c.concurrency, "concurrency", 8, "payments in flight at once")
	flag.Float64Var(&c.rate, "rate", 4, "payments started per second")
	flag.Uint64Var(&c.seed, "seed", 0, "random seed for the plans, the process kills and the sandbox's faults (0: from the clock; printed)")
	flag.DurationVar(&c.duration, "duration", 15*time.Minute, "cap on the whole run")
	flag.DurationVar(&c.wait, "wait", 3*time.Minute, "cap on the wait for quiescence after the last fault")
	flag.IntVar(&c.workers, "workers", 2, "bin/worker processes")
	flag.IntVar(&c.apis, "apis", 2, "bin/api processes")
	flag.Float64Var(&c.nativeFrac, "native", 0.3, "fraction of orders prepaid as NATIVE")
	flag.Float64Var(&c.dropFrac, "drop", 0.15, "fraction of payments whose notifications are dropped")
	flag.BoolVar(&c.kills, "kills", true, "SIGKILL and restart workers, apis, the Temporal dev server and PostgreSQL")
	flag.DurationVar(&c.gap[0], "gap-min", time.Second, "least time between two kills")
	flag.DurationVar(&c.gap[1], "gap-max", 4*time.Second, "most time between two kills")
	flag.DurationVar(&c.outage[0], "outage-min", time.Second, "shortest outage")
	flag.DurationVar(&c.outage[1], "outage-max", 3*time.Second, "longest outage")
	flag.Float64Var(&c.simFaults, "sim-faults", 0.1, "the sandbox's random fault rate (SIM_FAULTS) on every WeChat call and notification; 0 turns it off")
	flag.StringVar(&c.simFaultCalls, "sim-fault-calls", "", "SIM_FAULT_CALLS: the calls random faults go to (comma-separated; all when empty)")
	flag.StringVar(&c.simFaultKind, "sim-fault-kinds", "", "SIM_FAULT_KINDS: the kinds random faults are drawn from (comma-separated; all when empty)")
	flag.IntVar(&c.reviews, "reviews", 2, "payments sent to REVIEW on purpose, alternately an amount mismatch and a payment after close (each then refunded in full)")
	flag.Float64Var(&c.minCompleted, "min-completed", 0.9, "fail when fewer than this fraction of the payments completed")
	flag.StringVar(&c.apiVersion, "api-version", "v3", "WECHATPAY_API_VERSION of api and worker")
	flag.BoolVar(&c.keep, "keep", false, "keep the stack's directory (logs, temporal.db) even when every check passes")
	flag.BoolVar(&c.payUnprepaid, "pay-unprepaid", false, "pay a NATIVE order whose POST /orders failed without waiting for its prepay to reach WeChat")
	flag.Float64Var(&c.refunds.frac, "refund", 0.6, "fraction of the paid orders refunded (1 to 3 refunds each, in part or in full)")
	flag.Float64Var(&c.refunds.portal, "refund-portal", 0.15, "of the refunded orders, fraction with a refund made in the merchant portal (the sandbox)")
	flag.Float64Var(&c.refunds.repeat, "refund-repeat", 0.3, "fraction of the refunds asked again: same out_refund_no and amount (200), another amount (409)")
	flag.Float64Var(&c.refunds.exceed, "refund-exceed", 0.3, "fraction of the refunded orders also asked for more than is left (409)")
	flag.Float64Var(&c.refunds.extra, "refund-extra", 0.4, "fraction of the partly refunded orders with one more refund that WeChat closes or refuses")
	flag.Float64Var(&c.refunds.dropped, "refund-dropped", 0.1, "fraction of the refunds never notified (found by the workflow's query)")
	flag.Float64Var(&c.refunds.abnormal, "refund-abnormal", 0.1, "fraction of the refunds ABNORMAL, then SUCCESS")
	flag.Float64Var(&c.refunds.sysErr, "refund-system-error", 0.1, "fraction of the refunds executed but answered SYSTEM_ERROR")
	flag.Float64Var(&c.refunds.notEnough, "refund-not-enough", 0, "fraction of the refunds first answered NOT_ENOUGH (the workflow asks again 10 minutes later)")
	flag.IntVar(&c.refunds.notEnoughTimes, "refund-not-enough-times", 1, "NOT_ENOUGH answers before such a refund is executed")
	flag.IntVar(&c.refundConcurrency, "refund-concurrency", 8, "orders whose refunds are asked for at once")
	flag.DurationVar(&c.refundQueryAfter, "refund-query-after", 3*time.Second, "REFUND_QUERY_AFTER of the workers")
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

// simSeed is SIM_FAULT_SEED: the run's seed, as the sandbox reads it.
func (c config) simSeed() int64 { return int64(c.seed & math.MaxInt64) }

// replay is the command that repeats the run: the arguments given, with
// the seed.
func (c config) replay() string {
	args := []string{"go run ./cmd/payflow-chaos"}
	for i := 1; i < len(os.Args); i++ {
		switch a := os.Args[i]; {
		case a == "-seed" || a == "--seed":
			i++ // and its value
		case strings.HasPrefix(a, "-seed=") || strings.HasPrefix(a, "--seed="):
		default:
			args = append(args, a)
		}
	}
	return strings.Join(append(args, "-seed", strconv.FormatUint(c.seed, 10)), " ")
}

// results is everything the run saw, for the report.
type results struct {
	outs     []outcome
	verdicts []verdict
	kills    []fault
	faults   sim.FaultsView
	ds       deliveryStats
	probes   int // signature probes the api took for real notifications
	rs       refundStats
	rissues  []issue
	rf       refundFindings
	quiet    bool

	total, payTime, waitTime time.Duration
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
	progress(fmt.Sprintf("seed %d: %d payments, %d duplicates each, %d workers, %d apis, kills %v, sandbox faults at %g (SIM_FAULT_SEED=%d)",
		c.seed, c.payments, c.duplicates, c.workers, c.apis, c.kills, c.simFaults, c.simSeed()))

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
	simEnv := []string{
		"SIM_FAULTS=" + strconv.FormatFloat(c.simFaults, 'f', -1, 64),
		"SIM_FAULT_SEED=" + strconv.FormatInt(c.simSeed(), 10),
		"SIM_FAULT_CALLS=" + c.simFaultCalls,
		"SIM_FAULT_KINDS=" + c.simFaultKind,
	}
	st, err := stack.Start(ctx, stack.Options{
		Dir: dir,
		// A SIGKILLed postmaster must not take back commits it confirmed.
		DurableCommits: true,
		Deployments: []stack.DeploymentOptions{{
			Workers: c.workers, APIs: c.apis, APIVersion: c.apiVersion,
			NotifyBaseURL:   "http://" + ln.Addr().String(),
			SimTimeScale:    0.01,            // WeChat's 15 s, 15 s, 30 s, 3 m… retries become 0.15 s, 0.15 s, 0.3 s, 1.8 s…; a refund is PROCESSING 0.1 s
			OrderQueryAfter: 2 * time.Second, // dropped notifications are found by the workflow's own query
			// Orders whose workflow could not start (Temporal down during
			// POST /orders) are picked up by reconciliation within the run.
			ReconcileInterval: 5 * time.Second,
			ReconcileGrace:    2 * time.Second,
			WorkerEnv:         []string{"REFUND_QUERY_AFTER=" + c.refundQueryAfter.String()},
			SimEnv:            simEnv,
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
	runID := strconv.FormatUint(c.seed%1_000_000, 36)
	plans := makePlans(rng, c.payments, runID, c.nativeFrac, c.dropFrac, c.reviews)
	makeRefundScripts(rand.New(rand.NewPCG(c.seed, 3)), plans, runID, c.refunds)
	p := &payer{d: d, hc: &http.Client{Timeout: 30 * time.Second}, duplicates: c.duplicates, payUnprepaid: c.payUnprepaid}
	fi := &faults{st: st, d: d, rng: rand.New(rand.NewPCG(c.seed, 2)), gap: c.gap, outage: c.outage, started: began, progress: progress}

	stopFaults := make(chan struct{})
	faultsDone := make(chan []fault, 1)
	if c.kills {
		go func() { faultsDone <- fi.run(ctx, stopFaults) }()
	} else {
		faultsDone <- nil
	}
	// Each order paid at the sim is handed to the refunder, which asks for
	// its refunds once it is paid here, while the payments go on.
	rf := newRefunder(p)
	refundJobs := make(chan int, len(plans))
	refundsDone := make(chan struct{})
	go func() { rf.run(ctx, plans, refundJobs, c.refundConcurrency); close(refundsDone) }()
	payStart := time.Now()
	res := results{}
	res.outs = p.runAll(ctx, plans, c.rate, c.concurrency, func(i int) {
		if plans[i].Refunds != nil {
			refundJobs <- i
		}
	})
	close(refundJobs)
	progress(fmt.Sprintf("all payments submitted in %s; finishing the refunds", time.Since(payStart).Round(time.Millisecond)))
	<-refundsDone
	res.payTime = time.Since(payStart)
	progress(fmt.Sprintf("payments and refunds done in %s; finishing the faults", res.payTime.Round(time.Millisecond)))
	close(stopFaults)
	res.kills = <-faultsDone

	chk := &checker{db: db, store: orders, tc: st.Client}
	waitStart := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, c.wait)
	res.quiet = quiesce(wctx, chk, p, res.outs, progress)
	wcancel()
	res.waitTime = time.Since(waitStart)

	// The checks run even when the run's cap has passed.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer ccancel()
	trades, ds, err := p.simTrades(cctx, res.outs)
	if err != nil {
		return false, err
	}
	res.ds = ds
	for i, o := range res.outs {
		if o.TransactionID == "" {
			continue
		}
		txid := o.TransactionID
		tr := trades[o.OutTradeNo]
		for _, pr := range tr.Probes {
			if pr.Accepted {
				res.probes++
			}
		}
		if tr.TransactionID != txid || (tr.TradeState != "SUCCESS" && tr.TradeState != "REFUND") {
			res.verdicts = append(res.verdicts, verdict{OutTradeNo: o.OutTradeNo, Class: classLost,
				Detail: fmt.Sprintf("the sim shows %s/%s, /sim/pay said %s", tr.TradeState, tr.TransactionID, txid)})
			continue
		}
		v, err := chk.judge(cctx, plans[i], txid)
		if err != nil {
			return false, err
		}
		res.verdicts = append(res.verdicts, v)
	}
	if res.rf, err = checkRefunds(cctx, chk, p, plans, res.outs); err != nil {
		return false, err
	}
	res.rs, res.rissues = rf.stats, rf.issues
	if res.faults, err = p.simFaults(cctx); err != nil {
		return false, err
	}
	res.total = time.Since(began)
	ok = report(os.Stdout, c, res, px)
	return ok, nil
}

// report prints the summary table and whatever needs a look; it returns
// false when a check failed: a payment lost, doubled, stuck, badly logged,
// in REVIEW the run did not arrange (or not in the REVIEW it arranged),
// fewer payments completed than -min-completed, no fault injected or an
// injection failed, a refund that broke an invariant, or an answer of the
// api the client must never get.
func report(w io.Writer, c config, r results, px *proxy) bool {
	var created, prepaid, native, dropped, paid, createRetries, reviews int
	var notPaid []outcome
	for _, o := range r.outs {
		if o.Native {
			native++
		}
		if o.Created {
			created++
		}
		if o.Prepaid {
			prepaid++
		}
		if o.Review != "" {
			reviews++
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
	for _, v := range r.verdicts {
		count[v.Class]++
	}
	kinds := map[string]int{}
	killFailed := 0
	for _, f := range r.kills {
		kinds[f.Kind]++
		if f.Err != nil {
			killFailed++
		}
	}
	completed := count[classOK] + count[classArranged]

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	fmt.Fprintln(w)
	row("seed (plans, kills, SIM_FAULT_SEED)", c.seed)
	row("orders planned", len(r.outs))
	row("  created (POST /orders 201/409)", created)
	row("  POST /orders retries", createRetries)
	row("  NATIVE planned / prepaid", fmt.Sprintf("%d / %d", native, prepaid))
	row("  REVIEW arranged (amount mismatch, paid after close)", reviews)
	row("paid at the sim", paid)
	row("  notifications dropped", dropped)
	row("  copies per notification", 1+c.duplicates)
	row("payment notification deliveries", r.ds.Deliveries)
	row("  attempts / refused (5xx, 502, errors)", fmt.Sprintf("%d / %d", r.ds.Attempts, r.ds.Refused))
	row("  still retrying at the end", r.ds.Undone)
	row("  signature probes taken for real", r.probes)
	row("  proxy: forwarded / 502", fmt.Sprintf("%d / %d", px.sent.Load(), px.fails.Load()))
	row("order queries answered by the sim", r.ds.Queries)
	row("process kills (SIGKILL + restart)", len(r.kills))
	for _, k := range faultKinds {
		row("  "+k, kinds[k])
	}
	row("  failed to inject or recover", killFailed)
	row(fmt.Sprintf("sandbox faults (SIM_FAULTS=%g, SIM_FAULT_SEED=%d)", r.faults.Rate, r.faults.Seed), r.faults.Total)
	byKind := map[string]int{}
	for _, call := range sortedKeys(r.faults.Injected) {
		n := 0
		for k, m := range r.faults.Injected[call] {
			n += m
			byKind[k] += m
		}
		row("  on "+call, n)
	}
	for _, k := range sortedKeys(byKind) {
		row("  "+k, byKind[k])
	}
	for _, b := range sortedKeys(r.faults.Behaviours) {
		row("  WeChat's own behaviour: "+b, r.faults.Behaviours[b])
	}
	row("PAID exactly once", count[classOK])
	row("REVIEW as arranged", count[classArranged])
	row("REVIEW not arranged", count[classReview])
	row("arranged REVIEW missed", count[classUnreviewed])
	row("LOST", count[classLost])
	row("DOUBLED", count[classDoubled])
	row("STUCK", count[classStuck])
	row("BAD LOG", count[classBadLog])
	row("payments completed", fmt.Sprintf("%d of %d (%.1f %%)", completed, len(r.outs), 100*float64(completed)/float64(max(1, len(r.outs)))))

	rs, rf := r.rs, r.rf
	row("orders refunded (refunds asked)", rs.Orders)
	row("  paid at the sim, not here in time", rs.NotReady)
	row("  API refunds accepted", rs.Asked)
	var switches []string
	for _, k := range refundKinds {
		if rs.ByKind[k] > 0 {
			switches = append(switches, fmt.Sprintf("%s %d", k, rs.ByKind[k]))
		}
	}
	row("  by sandbox switch", strings.Join(switches, ", "))
	row("  portal refunds made at the sandbox", rs.Portal)
	row("  same number and amount again: 200", rs.Repeats)
	row("  same number, another amount: 409", rs.OtherAmount)
	row("  more than is left: 409", rs.Exceeding)
	row("  requests retried (5xx, no answer)", rs.Retries)
	row("refunds recorded here", fmt.Sprintf("%d across %d orders", rf.Refunds, rf.Orders))
	var byStatus []string
	for _, s := range []payment.RefundStatus{payment.RefundSuccess, payment.RefundClosed, payment.RefundFailed, payment.RefundAbnormal, payment.RefundProcessing} {
		byStatus = append(byStatus, fmt.Sprintf("%s %d", s, rf.ByStatus[s]))
	}
	row("  by status", strings.Join(byStatus, ", "))
	row("  from the merchant portal", rf.Portal)
	row("  orders REFUNDED", rf.Refunded)
	row("  outcome log rows", rf.LogRows)
	row("refunds at WeChat (executed once each)", rf.AtWeChat)
	if len(rf.Delays) > 0 {
		ds := slices.Clone(rf.Delays)
		slices.Sort(ds)
		row("  accepted here → executed at WeChat", fmt.Sprintf("median %s, 99th %s, max %s (API refunds, NOT_ENOUGH aside)",
			ds[len(ds)/2].Round(10*time.Millisecond), ds[len(ds)*99/100].Round(10*time.Millisecond), ds[len(ds)-1].Round(10*time.Millisecond)))
		row(fmt.Sprintf("  executed more than %s after acceptance", lateRefund), len(rf.Late))
	}
	row("  refund requests WeChat got", rf.Applies)
	row("  refund notifications / attempts", fmt.Sprintf("%d / %d", rf.Deliveries, rf.Attempts))
	row("notifications in the audit trails", fmt.Sprintf("%d payment, %d refund", rf.PaymentNotifications, rf.RefundNotifications))
	row("  acknowledged, never examined", rf.Unexamined)
	row("refund violations", len(rf.Violations))
	row("unexpected api answers", len(r.rissues))
	row("quiescent before the wait cap", r.quiet)
	row("payments and refunds phase", r.payTime.Round(time.Second))
	row("wait for quiescence", r.waitTime.Round(time.Second))
	row("total", r.total.Round(time.Second))
	tw.Flush()
	fmt.Fprintf(w, "\nreplay: %s\n", c.replay())

	if len(r.kills) > 0 {
		fmt.Fprintln(w, "\nprocess kills:")
		for _, f := range r.kills {
			status := "ok"
			if f.Err != nil {
				status = "ERROR: " + f.Err.Error()
			}
			fmt.Fprintf(w, "  %6.1fs  %-8s %-10s down %4.1fs  ready after %4.1fs  %s\n",
				f.At.Seconds(), f.Kind, f.Target, f.Down.Seconds(), f.Recover.Seconds(), status)
		}
	}
	var odd, arranged []verdict
	for _, v := range r.verdicts {
		switch v.Class {
		case classOK:
		case classArranged:
			arranged = append(arranged, v)
		default:
			odd = append(odd, v)
		}
	}
	byOrder := func(a, b verdict) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.OutTradeNo, b.OutTradeNo))
	}
	slices.SortFunc(odd, byOrder)
	slices.SortFunc(arranged, byOrder)
	if len(arranged) > 0 {
		fmt.Fprintln(w, "\nREVIEW arranged on purpose (then refunded in full, which settles it):")
		for _, v := range arranged {
			fmt.Fprintf(w, "  %-22s %-8s %s\n", v.OutTradeNo, v.Status, v.Detail)
		}
	}
	if len(odd) > 0 {
		fmt.Fprintln(w, "\norders that need a look:")
		for _, v := range odd {
			fmt.Fprintf(w, "  %-10s %-22s %-8s %s\n", v.Class, v.OutTradeNo, v.Status, v.Detail)
		}
	}
	printIssues(w, "refund violations", rf.Violations)
	printIssues(w, "unexpected api answers", r.rissues)
	printIssues(w, fmt.Sprintf("refunds executed at WeChat more than %s after their acceptance here (no invariant broken; a refund whose "+
		"update was lost with a crashed Temporal server is followed when the client repeats it or the order's run ends, docs/chaos.md)", lateRefund), rf.Late)
	if len(notPaid) > 0 {
		fmt.Fprintln(w, "\norders never paid at the sim (not checked):")
		for _, o := range notPaid {
			fmt.Fprintf(w, "  %-22s %s\n", o.OutTradeNo, o.Err)
		}
	}

	var fails []string
	failIf := func(cond bool, format string, args ...any) {
		if cond {
			fails = append(fails, fmt.Sprintf(format, args...))
		}
	}
	bad := count[classLost] + count[classDoubled] + count[classStuck] + count[classBadLog] + count[classReview] + count[classUnreviewed]
	failIf(bad > 0, "%d payments lost, doubled, stuck, badly logged or in a REVIEW not arranged (or not in the one arranged)", bad)
	failIf(paid == 0, "nothing was paid")
	failIf(float64(completed) < c.minCompleted*float64(len(r.outs)), "%d of %d payments completed, fewer than %.0f %%", completed, len(r.outs), 100*c.minCompleted)
	failIf(c.kills && len(r.kills) == 0, "no process was killed")
	failIf(killFailed > 0, "%d process kills failed to inject or recover", killFailed)
	failIf(c.simFaults > 0 && r.faults.Total == 0, "the sandbox injected no fault")
	failIf(!c.kills && c.simFaults <= 0, "no fault was injected: kills are off and SIM_FAULTS is 0")
	failIf(r.probes > 0, "%d signature probes were taken for real notifications", r.probes)
	failIf(c.refunds.frac > 0 && rf.Refunds == 0, "no refund was made")
	failIf(len(rf.Violations) > 0, "%d refund violations", len(rf.Violations))
	failIf(len(r.rissues) > 0, "%d unexpected api answers", len(r.rissues))
	if len(fails) > 0 {
		fmt.Fprintln(w, "\nFAIL: "+strings.Join(fails, "; "))
		return false
	}
	fmt.Fprintf(w, "\nOK: every payment PAID exactly once (or in the REVIEW arranged), every refund executed once at WeChat, within what was paid, final and logged once\n")
	return true
}

func printIssues(w io.Writer, title string, is []issue) {
	if len(is) == 0 {
		return
	}
	slices.SortFunc(is, func(a, b issue) int {
		return cmp.Or(cmp.Compare(a.OutTradeNo, b.OutTradeNo), cmp.Compare(a.OutRefundNo, b.OutRefundNo))
	})
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, i := range is {
		fmt.Fprintf(w, "  %-22s %-22s %s\n", i.OutTradeNo, i.OutRefundNo, i.What)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
