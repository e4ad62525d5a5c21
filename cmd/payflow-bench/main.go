// Command payflow-bench measures the whole payflow stack (bin/api,
// bin/worker, bin/wechatpay-sim, PostgreSQL and a Temporal server) under an
// open-loop load of signed v2 notifications, and, on the same Temporal
// server in the same run, the ceilings that bound it: the rate of raw
// SignalWithStart calls and the completion rate of empty and activity-only
// bench workflows. It also measures a "peer": the synchronous handler of
// the usual tutorials (package peer) with the same simulated WeChat query
// latency. It prints a Markdown report and, with -out, rewrites
// docs/benchmarks.md, keeping earlier runs below the new one.
//
// Everything listens on free loopback ports in a temporary directory;
// every loop is bounded in count and time. A benchmark is not a test:
// nothing here fails because the machine is slow.
//
//	payflow-bench [flags]          run the benchmark
//	payflow-bench peer             serve the peer handler (started by the benchmark)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payflow/payflow/cmd/payflow-bench/peer"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/workflows"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "payflow-bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	rate        float64
	duration    time.Duration
	queryDelay  time.Duration
	dupEvery    int
	retries     int
	retryDelay  time.Duration
	drain       time.Duration
	setup       int
	workers     int
	ceilingDur  time.Duration
	ceilingConc int
	ceilingPoll int // -ceiling-pollers
	activities  int
	orders      bool
	steps       string
	stepDur     time.Duration
	overload    float64
	overloadDur time.Duration
	overloadN   int
	overloadAt  float64
	targets     string
	workerEnv   []string // -worker-env
	apiEnv      []string // -api-env
	peer        bool
	module      string
	binDir      string
	temporalBin string
	pgBinDir    string
	shards      int
	out         string
	keep        bool
	timeout     time.Duration
	mode        string // payments (the notification load) or bills (the daily bill reconciliation)
	billRows    string // -mode bills: bill sizes
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("payflow-bench", flag.ContinueOnError)
	fs.Float64Var(&o.rate, "rate", 10, "offered load of the constant-rate run (ack latency, peer): payments per second (each one notification, plus duplicates)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long notifications are sent")
	fs.DurationVar(&o.queryDelay, "query-delay", 50*time.Millisecond, "simulated WeChat order-query latency (SIM_QUERY_DELAY)")
	fs.IntVar(&o.dupEvery, "dup-every", 5, "every n-th payment's notification is sent twice at once (0: no duplicates)")
	fs.IntVar(&o.retries, "retries", 3, "resend a notification not answered SUCCESS this many times")
	fs.DurationVar(&o.retryDelay, "retry-delay", time.Second, "wait before a resend (WeChat waits 15 s)")
	fs.DurationVar(&o.drain, "drain", 90*time.Second, "after the load, wait at most this long for payments to reach PAID")
	fs.IntVar(&o.setup, "setup-concurrency", 8, "concurrent requests while creating orders")
	fs.IntVar(&o.workers, "workers", 1, "bin/worker processes")
	fs.DurationVar(&o.ceilingDur, "ceiling-duration", 10*time.Second, "length of each ceiling measurement")
	fs.IntVar(&o.ceilingConc, "ceiling-concurrency", 16, "concurrent callers in each ceiling measurement")
	fs.IntVar(&o.ceilingPoll, "ceiling-pollers", config.DefaultWorkerWorkflowPollers, "workflow-task pollers of the tool's own worker in the ceilings (bin/worker's default, so that both sides of a ratio poll alike)")
	fs.IntVar(&o.activities, "activities", 4, "no-op activities in the activity ceilings")
	fs.BoolVar(&o.orders, "orders", true, "measure POST /orders per second next to the StartWorkflow ceiling (-ceiling-concurrency callers, -ceiling-duration)")
	fs.StringVar(&o.steps, "steps", "0.6x:0.05x:1.6x", "step load for the saturation point, lo:inc:hi in payments/s, or with an x in multiples of the run's empty-workflow ceiling; off: none")
	fs.DurationVar(&o.stepDur, "step-duration", 10*time.Second, "length of each step of the step load")
	fs.Float64Var(&o.overload, "overload", 2, "overload runs offer this multiple of the saturation rate")
	fs.DurationVar(&o.overloadDur, "overload-duration", 60*time.Second, "length of each overload run")
	fs.Float64Var(&o.overloadAt, "overload-rate", 0, "offer this rate in the overload runs instead (payments/s; they then run without a step load too)")
	fs.IntVar(&o.overloadN, "overload-runs", 2, "overload runs per Temporal server (0: none; they need the step load's saturation point)")
	fs.StringVar(&o.targets, "targets", "dev,pg?", "Temporal servers: dev (the dev server, SQLite), pg (v1.29.1 on PostgreSQL); pg? runs pg only when `make temporal-pg` built it")
	for _, e := range []struct {
		name, usage string
		env         *[]string
	}{
		{"worker-env", "more environment for bin/worker, comma-separated KEY=value (e.g. WORKER_WORKFLOW_POLLERS=8)", &o.workerEnv},
		{"api-env", "more environment for bin/api, comma-separated KEY=value (e.g. NOTIFY_MAX_IN_FLIGHT=16)", &o.apiEnv},
	} {
		fs.Func(e.name, e.usage, func(s string) (err error) {
			*e.env, err = parseEnv(e.name, s)
			return err
		})
	}
	fs.BoolVar(&o.peer, "peer", true, "also measure the synchronous tutorial-style handler")
	fs.StringVar(&o.module, "module", "", "the payflow checkout whose api, worker and wechatpay-sim are measured, and whose commit labels the run (default: the module around the working directory)")
	fs.StringVar(&o.binDir, "bin-dir", "", "directory with api, worker and wechatpay-sim already built from -module (default: build them)")
	fs.StringVar(&o.temporalBin, "temporal-bin", "", "the Temporal CLI (default: $TEMPORAL_BIN, else bin/temporal)")
	fs.StringVar(&o.pgBinDir, "temporal-pg-dir", "bin", "where `make temporal-pg` left temporal-server, temporal-sql-tool and temporal-schema/")
	fs.IntVar(&o.shards, "history-shards", 4, "numHistoryShards of the PostgreSQL-backed server")
	fs.StringVar(&o.out, "out", "", "Markdown file to rewrite with this run (e.g. docs/benchmarks.md); earlier runs in it are kept below")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directories (logs, state)")
	fs.DurationVar(&o.timeout, "timeout", 90*time.Minute, "give up after this long")
	fs.StringVar(&o.mode, "mode", "payments", "payments: notifications under load, with the ceilings and the peer; bills: the daily bill reconciliation of -bill-rows")
	fs.StringVar(&o.billRows, "bill-rows", "100000,1000000", "-mode bills: bill sizes (rows, ascending); each is reconciled against as many PAID orders")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.mode != "payments" && o.mode != "bills":
		return o, errors.New("-mode must be payments or bills")
	case o.rate <= 0 || o.rate > 2000:
		return o, errors.New("-rate must be in (0, 2000]")
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return o, errors.New("-duration must be in (0, 10m]")
	case o.ceilingDur <= 0 || o.ceilingDur > 5*time.Minute:
		return o, errors.New("-ceiling-duration must be in (0, 5m]")
	case o.ceilingConc < 1 || o.ceilingConc > 256:
		return o, errors.New("-ceiling-concurrency must be in [1, 256]")
	case o.ceilingPoll < 2 || o.ceilingPoll > 64:
		return o, errors.New("-ceiling-pollers must be in [2, 64]")
	case o.retries < 0 || o.retries > 15:
		return o, errors.New("-retries must be in [0, 15]")
	case o.stepDur <= 0 || o.stepDur > 5*time.Minute:
		return o, errors.New("-step-duration must be in (0, 5m]")
	case o.overload < 1 || o.overload > 10:
		return o, errors.New("-overload must be in [1, 10]")
	case o.overloadDur <= 0 || o.overloadDur > 10*time.Minute:
		return o, errors.New("-overload-duration must be in (0, 10m]")
	case o.overloadN < 0 || o.overloadN > 10:
		return o, errors.New("-overload-runs must be in [0, 10]")
	}
	if _, err := parseSteps(o.steps, 1); err != nil {
		return o, err
	}
	return o, nil
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "peer" {
		return servePeer()
	}
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	rep := newReport(o, args)
	if l, err := strconv.ParseFloat(rep.LoadBefore, 64); err == nil && l > 0.5 {
		logger.Warn("the machine is busy; figures will be lower than on a quiet machine", "load_average_1m", l)
	}
	started := time.Now()
	if o.mode == "bills" {
		if rep.Bills, err = runBills(ctx, o, logger); err != nil {
			return fmt.Errorf("bills: %w", err)
		}
		rep.Elapsed, rep.LoadAfter = time.Since(started), loadAvg()
		return rep.write(rep.billsMarkdown(), o.out, logger)
	}
	targets, err := o.resolveTargets()
	if err != nil {
		return err
	}
	rep.Skipped = targets.skipped
	for i, t := range targets.run {
		tr, err := runTarget(ctx, o, t, o.peer && i == 0, rep.RunID, logger)
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		rep.Targets = append(rep.Targets, tr)
	}
	rep.Elapsed = time.Since(started)
	rep.LoadAfter = loadAvg()
	return rep.write(rep.markdown(), o.out, logger)
}

// write prints the run and, with -out, puts it on top of the document.
func (r *report) write(md, out string, logger *slog.Logger) error {
	fmt.Println(md)
	if out != "" {
		if err := writeDoc(out, md); err != nil {
			return err
		}
		logger.Info("report written", "file", out)
	}
	return nil
}

type targetList struct {
	run     []string
	skipped string
}

// resolveTargets expands -targets; "pg?" is pg when its binaries exist.
func (o options) resolveTargets() (targetList, error) {
	var tl targetList
	for _, t := range commaList(o.targets) {
		switch t {
		case "dev":
			tl.run = append(tl.run, "dev")
		case "pg":
			if err := stack.FindTemporalPGBins(o.pgBinDir).Missing(); err != nil {
				return tl, err
			}
			tl.run = append(tl.run, "pg")
		case "pg?":
			if err := stack.FindTemporalPGBins(o.pgBinDir).Missing(); err != nil {
				tl.skipped = "The Temporal server on PostgreSQL was not measured: " + err.Error() + "."
				continue
			}
			tl.run = append(tl.run, "pg")
		default:
			return tl, fmt.Errorf("unknown target %q (dev, pg, pg?)", t)
		}
	}
	if len(tl.run) == 0 {
		return tl, errors.New("no target to run")
	}
	return tl, nil
}

// targetResult is everything measured on one Temporal server.
type targetResult struct {
	Name     string // dev or pg
	Server   string // description for the report
	Ceilings []ceilingResult
	Orders   *ceilingResult // POST /orders, closed loop like the ceilings
	Payflow  loadResult
	Peer     *loadResult
	Steps    *loadResult  // the step load (saturation point)
	Overload []loadResult // the overload runs
	CPU      []cpuRow     // CPU per operation: the empty workflow, each step, each overload run
}

// runTarget brings up the stack on one Temporal server and measures it.
func runTarget(ctx context.Context, o options, target string, withPeer bool, runID string, logger *slog.Logger) (_ targetResult, err error) {
	tr := targetResult{Name: target}
	so := stack.Options{
		Keep: o.keep, ModuleDir: o.module, BinDir: o.binDir,
		Temporal: stack.TemporalOptions{CLI: o.temporalBin},
		Deployments: []stack.DeploymentOptions{{
			Workers: o.workers, APIVersion: "v2", SimQueryDelay: o.queryDelay, OrderQueryAfter: time.Hour,
			TaskQueue: "payments-bench",
			WorkerEnv: o.workerEnv, APIEnv: o.apiEnv,
		}},
		Logf: func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) },
	}
	switch target {
	case "dev":
		tr.Server = "Temporal dev server (CLI v1.5.1, SQLite file in WAL mode)"
	case "pg":
		tr.Server = fmt.Sprintf("Temporal server %s, PostgreSQL 15 persistence, %d history shards", stack.TemporalServerVersion, o.shards)
		so.Temporal = stack.TemporalOptions{Server: stack.TemporalPostgres, PGDir: o.pgBinDir, Shards: o.shards}
	}
	s, err := stack.Start(ctx, so)
	if err != nil {
		return tr, err
	}
	defer func() {
		if err != nil {
			s.DumpLogs(os.Stderr, 3000)
		}
		_ = s.Close()
	}()
	d := s.Deployments[0]
	sampler := &cpuSampler{Parts: stackParts(s, d), Every: time.Second}
	sampling, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go sampler.Run(sampling)
	db, err := pgxpool.New(ctx, d.DatabaseURL)
	if err != nil {
		return tr, err
	}
	defer db.Close()

	base := loadOptions{
		SimURL: d.SimURL, Rate: o.rate, Duration: o.duration, DupEvery: o.dupEvery,
		Retries: o.retries, RetryDelay: o.retryDelay, Drain: o.drain, Setup: o.setup,
		AppID: stack.AppID, MchID: stack.MchID, APIKey: stack.APIKey,
	}
	if withPeer {
		r, err := runPeer(ctx, s, d.SimURL, base, runID, logger)
		if err != nil {
			return tr, fmt.Errorf("peer: %w", err)
		}
		tr.Peer = &r
	}

	settle := func(ctx context.Context, prefix string, n int) {
		if d, err := waitBacklog(ctx, s.Client, d.TaskQueue, 3*time.Minute); err != nil {
			logger.Warn("could not see the task queue's backlog", "err", err)
		} else {
			logger.Info("the payments task queue has no backlog", "after", d.Round(time.Millisecond))
		}
		if d, err := waitVisible(ctx, s.Client, workflows.WorkflowID(prefix), n, 3*time.Minute); err != nil {
			logger.Warn("could not see the setup's runs in visibility", "err", err)
		} else {
			logger.Info("the setup's runs are visible", "runs", n, "after", d.Round(time.Millisecond))
		}
	}
	co := ceilingOptions{Duration: o.ceilingDur, Concurrency: o.ceilingConc, MaxOps: 100_000, Activities: o.activities}
	bt, err := startBenchTemporal(s.Client, runID+"-"+target, o.ceilingPoll, logger)
	if err != nil {
		return tr, err
	}
	defer bt.stop()
	if tr.Ceilings, err = bt.measureCeilings(ctx, co); err != nil {
		return tr, fmt.Errorf("ceilings: %w", err)
	}
	// POST /orders right after StartWorkflow alone, so that both see the
	// same machine.
	if o.orders {
		tr.Ceilings = append(tr.Ceilings, bt.measureStart(ctx, co))
		logger.Info("POST /orders, closed loop", "concurrency", o.ceilingConc, "duration", o.ceilingDur)
		r := measureOrders(ctx, d.APIURLs[0], d.Authorize, "BO"+runID, co)
		tr.Orders = &r
		settle(ctx, "BO"+runID, r.Ops)
	}
	// The raw call at the rate of the constant load's notifications, right
	// before the load (whose setup comes first).
	sigRate := o.rate * notificationsPerPayment(o.dupEvery)

	lo := base
	lo.Settle = settle
	lo.Label = "payflow"
	lo.NotifyURL = d.APIURLs[0] + "/wechatpay/notify"
	lo.DB = db
	lo.Prefix = "BF" + runID
	lo.CreateOrder = func(ctx context.Context, no string, amount int64) error {
		return postJSON(ctx, d.APIURLs[0]+"/orders", map[string]any{"out_trade_no": no, "amount_fen": amount, "description": "bench"}, http.StatusCreated, nil, d.Authorize)
	}
	constant := lo
	constant.BeforeLoad = func(ctx context.Context) {
		// As many calls as the load sends notifications, over as long: the
		// two p99s are then read from samples of the same size.
		sc := co
		sc.Duration = o.duration
		tr.Ceilings = append(tr.Ceilings, bt.measureSignalRate(ctx, sigRate, sc))
	}
	if tr.Payflow, err = runLoad(ctx, constant, logger); err != nil {
		return tr, fmt.Errorf("payflow load: %w", err)
	}
	diagnose(ctx, s.Client, s.Dir, d, tr.Payflow, logger)

	// The saturation point: a step load that stops once the backlog grows.
	empty := 0.0
	if c := find(tr.Ceilings, ceilEmpty); c != nil {
		empty = c.rate()
	}
	steps, err := parseSteps(o.steps, empty)
	if err != nil {
		return tr, err
	}
	var sat *stepResult
	if len(steps) > 0 {
		sl := lo
		sl.Label, sl.Prefix = "payflow step load", "BS"+runID
		sl.Steps = stepRates(steps[0], steps[2], steps[1], o.stepDur)
		sl.StopBehind = time.Second
		r, err := runLoad(ctx, sl, logger)
		if err != nil {
			return tr, fmt.Errorf("step load: %w", err)
		}
		tr.Steps = &r
		diagnose(ctx, s.Client, s.Dir, d, r, logger)
		sat = saturation(r.Steps)
	}
	// CPU per completed empty workflow, and per payment made PAID within
	// each step (and each overload run, below).
	addCPU := func(label string, ops int, from, to time.Time) {
		if row, ok := sampler.Row(label, ops, from, to); ok {
			tr.CPU = append(tr.CPU, row)
		}
	}
	if c := find(tr.Ceilings, ceilEmpty); c != nil {
		addCPU("empty workflow (ceiling)", c.Ops, c.From, c.To)
	}
	if tr.Steps != nil {
		for _, st := range tr.Steps.Steps {
			addCPU(fmt.Sprintf("payments, step %.0f/s", st.Rate), st.Paid, st.From, st.To)
		}
	}

	rate := o.overloadAt
	if rate == 0 && sat != nil {
		rate = o.overload * sat.Rate
	}
	if rate == 0 {
		return tr, nil
	}

	// No collapse: twice the saturation rate, several times over.
	for i := range o.overloadN {
		ol := lo
		ol.Label, ol.Prefix = fmt.Sprintf("payflow overload %d", i+1), fmt.Sprintf("BX%d%s", i, runID)
		ol.Rate, ol.Duration = rate, o.overloadDur
		// A notification not acknowledged comes back as WeChat sends it
		// again: after 15 s, 15 s, 30 s, … for a day; here every 15 s.
		ol.Retries, ol.RetryDelay = max(o.retries, 8), maxRetryDelay
		r, err := runLoad(ctx, ol, logger)
		if err != nil {
			return tr, fmt.Errorf("overload: %w", err)
		}
		tr.Overload = append(tr.Overload, r)
		diagnose(ctx, s.Client, s.Dir, d, r, logger)
		addCPU(fmt.Sprintf("payments, overload %d (%.0f/s offered)", i+1, r.OfferedRate), r.paidDuringLoad(), r.start, r.start.Add(r.SendWindow))
	}
	return tr, nil
}

// notificationsPerPayment is how many notifications a payment gets on
// average when every dupEvery-th one is sent twice.
func notificationsPerPayment(dupEvery int) float64 {
	if dupEvery <= 0 {
		return 1
	}
	return 1 + 1/float64(dupEvery)
}

// parseSteps reads -steps: "lo:inc:hi" in payments/s, or, each with an x,
// in multiples of ceiling (the run's empty-workflow ceiling). "off" or ""
// is no step load (nil).
func parseSteps(s string, ceiling float64) ([]float64, error) {
	if s == "" || s == "off" {
		return nil, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("-steps %q: want lo:inc:hi", s)
	}
	var v [3]float64
	for i, p := range parts {
		mult := 1.0
		if t, ok := strings.CutSuffix(p, "x"); ok {
			p, mult = t, ceiling
		}
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 {
			return nil, fmt.Errorf("-steps %q: %q is not a positive number", s, parts[i])
		}
		v[i] = f * mult
		if mult != 1 {
			v[i] = max(1, math.Round(v[i]))
		}
	}
	if v[0] <= 0 || v[1] <= 0 || v[2] < v[0] || (v[2]-v[0])/v[1] > 50 {
		return nil, fmt.Errorf("-steps %q: want 0 < lo <= hi and at most 50 steps", s)
	}
	return v[:], nil
}

// runPeer measures the synchronous handler on the stack's PostgreSQL (a
// database of its own) and sim.
func runPeer(ctx context.Context, s *stack.Stack, simURL string, base loadOptions, runID string, logger *slog.Logger) (loadResult, error) {
	url, err := s.PG.CreateDatabase(ctx, "peer")
	if err != nil {
		return loadResult{}, err
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return loadResult{}, err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return loadResult{}, err
	}
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		return loadResult{}, err
	}
	defer db.Close()

	self, err := os.Executable()
	if err != nil {
		return loadResult{}, err
	}
	addr, err := stack.FreeAddr()
	if err != nil {
		return loadResult{}, err
	}
	p := &stack.Process{
		Name: "peer", Path: self, Args: []string{"peer"}, Addr: addr,
		Env: []string{
			"PEER_ADDR=" + addr, "DATABASE_URL=" + url, "WECHATPAY_BASE_URL=" + simURL,
			"WECHATPAY_APPID=" + stack.AppID, "WECHATPAY_MCHID=" + stack.MchID, "WECHATPAY_API_KEY=" + stack.APIKey,
			"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		},
		LogFile: filepath.Join(s.Dir, "logs", "peer.log"),
		Ready:   stack.HTTPReady("http://" + addr + "/healthz"),
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	defer func() { _ = p.Stop() }()
	if err := p.Restart(rctx); err != nil {
		return loadResult{}, fmt.Errorf("%w\n%s", err, p.LogTail(2000))
	}

	lo := base
	lo.Label = "peer"
	lo.NotifyURL = "http://" + addr + "/wechatpay/notify"
	lo.DB = db
	lo.Prefix = "BP" + runID
	lo.CreateOrder = func(ctx context.Context, no string, amount int64) error {
		_, err := st.CreateOrder(ctx, store.NewOrder{OutTradeNo: no, AmountFen: amount, Description: "bench"})
		return err
	}
	return runLoad(ctx, lo, logger)
}

// servePeer is the `peer` subcommand: the handler as its own process, like
// bin/api.
func servePeer() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := peer.Config{
		Addr: os.Getenv("PEER_ADDR"), DatabaseURL: os.Getenv("DATABASE_URL"), BaseURL: os.Getenv("WECHATPAY_BASE_URL"),
		AppID: os.Getenv("WECHATPAY_APPID"), MchID: os.Getenv("WECHATPAY_MCHID"), APIKey: os.Getenv("WECHATPAY_API_KEY"),
	}
	if cfg.Addr == "" || cfg.DatabaseURL == "" || cfg.BaseURL == "" || cfg.APIKey == "" {
		return errors.New("peer: PEER_ADDR, DATABASE_URL, WECHATPAY_BASE_URL and WECHATPAY_API_KEY are required")
	}
	return peer.Serve(ctx, cfg, slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// machine describes where the run happened.
func machine() string {
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = ", " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (nproc)%s, %s memory, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// gitDescribe is the commit the run measured, "+dirty" when tracked files
// other than the report differ from it.
func gitDescribe(dir string) (commit, subject string) {
	git := func(args ...string) *exec.Cmd {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		return cmd
	}
	out, err := git("log", "-1", "--format=%h%x00%s").Output()
	if err != nil {
		return "unknown", ""
	}
	commit, subject, _ = strings.Cut(strings.TrimSpace(string(out)), "\x00")
	if git("diff", "--quiet", "HEAD", "--", ".", ":(exclude)docs/benchmarks.md").Run() != nil {
		commit += "+dirty"
	}
	return commit, subject
}

// commaList splits a comma-separated flag, dropping empty items.
func commaList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseEnv reads -worker-env and -api-env: KEY=value pairs, comma-separated.
func parseEnv(flagName, s string) ([]string, error) {
	env := commaList(s)
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("-%s: %q is not KEY=value", flagName, kv)
		}
	}
	return env, nil
}
