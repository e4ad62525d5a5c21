package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/payflow/payflow/config"
)

// report is one run, rendered as a Markdown section.
type report struct {
	RunID   string
	Date    time.Time
	Commit  string
	Subject string
	Machine string
	Command string
	Opts    options
	Targets []targetResult
	Skipped string
	Elapsed time.Duration
	// LoadBefore and LoadAfter are the 1-minute load averages when the run
	// began and ended: other work on the machine skews every figure.
	LoadBefore, LoadAfter string
	// Bills are the bill benchmark's sizes (-mode bills).
	Bills []billResult
}

func newReport(o options, args []string) *report {
	commit, subject := gitDescribe(o.module)
	now := time.Now()
	cmd := "payflow-bench"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	if c := os.Getenv("BENCH_COMMAND"); c != "" {
		cmd = c
	}
	return &report{
		RunID:   strconv.FormatInt(now.Unix()%1_000_000_000, 36),
		Date:    now,
		Commit:  commit,
		Subject: subject,
		Machine: machine(),
		Command: cmd,
		Opts:    o,

		LoadBefore: loadAvg(),
	}
}

// Markers delimit each run's section in the document, so a new run can be
// put on top and earlier ones kept.
const (
	runBegin = "<!-- bench-run begin -->"
	runEnd   = "<!-- bench-run end -->"
)

// A hand-written block between these markers (findings, comparisons of
// runs) is kept as it is when the document is rewritten.
const (
	notesBegin = "<!-- notes begin -->"
	notesEnd   = "<!-- notes end -->"
)

// writeHeader writes what every run's section starts with: its marker,
// date and commit, the machine, the load average and the command.
func (r *report) writeHeader(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("%s\n### %s · commit `%s`", runBegin, r.Date.UTC().Format("2006-01-02 15:04 UTC"), r.Commit)
	if r.Subject != "" {
		p(" (%s)", r.Subject)
	}
	p("\n\n")
	p("- machine: %s\n", r.Machine)
	p("- load average (1 min) %s at the start, %s at the end; the run's own processes count too\n", r.LoadBefore, r.LoadAfter)
	p("- command: `%s` (%.0f s in all)\n", r.Command, r.Elapsed.Seconds())
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	o := r.Opts
	r.writeHeader(&b)
	p("- load: %.0f payments/s for %s, open loop; every %s payment's notification sent twice at the same instant; "+
		"a notification not answered SUCCESS is resent after %s, at most %d times; simulated WeChat order-query latency %s; %d bin/worker, 1 bin/api\n",
		o.rate, o.duration, ordinal(o.dupEvery), o.retryDelay, o.retries, o.queryDelay, o.workers)
	pollers := fmt.Sprintf("%d workflow-task pollers", o.ceilingPoll)
	if o.ceilingPoll == config.DefaultWorkerWorkflowPollers {
		pollers += ", as bin/worker"
	}
	p("- ceilings: %d concurrent callers for %s each, bench workflows on the tool's own worker (%s) and task queue\n\n", o.ceilingConc, o.ceilingDur, pollers)

	p("| system | offered | acked/s | ack p50 | ack p99 | ack max | PAID/s | to PAID p50 | to PAID p99 | duplicates sent | lost | doubled |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	row := func(name string, l loadResult) {
		p("| %s | %.0f/s (%d payments) | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d |\n",
			name, l.OfferedRate, l.Payments, perSec(l.Acked, l.AckWindow),
			ms(l.AckLatency.P50), ms(l.AckLatency.P99), ms(l.AckLatency.Max),
			perSec(l.Paid, l.PaidWindow), ms(l.TimeToPaid.P50), ms(l.TimeToPaid.P99),
			l.Duplicates, l.Lost, l.Doubled)
	}
	for _, t := range r.Targets {
		row("payflow on "+t.Server, t.Payflow)
	}
	for _, t := range r.Targets {
		if t.Peer != nil {
			row("peer: synchronous handler (verify, query, UPDATE in the request)", *t.Peer)
		}
	}
	p("\n")
	for _, t := range r.Targets {
		ls := []struct {
			name string
			l    *loadResult
		}{{"payflow on " + t.Name, &t.Payflow}, {"peer", t.Peer}}
		for _, x := range ls {
			if x.l == nil {
				continue
			}
			l := x.l
			p("- %s: %d notifications sent (%d resends), %d answered SUCCESS, %d not (first: %s); %d of %d payments acknowledged, %d PAID",
				x.name, l.Notifications, l.Retries, l.Acked, l.Failed, orNone(l.FirstFailure), l.PaymentsAcked, l.Payments, l.Paid)
			if l.BadRecord > 0 {
				p(", %d paid but not recorded exactly once (first: %s)", l.BadRecord, l.FirstBadRecord)
			}
			if l.NotPaidNoAck > 0 {
				p(", %d never acknowledged and not PAID (WeChat would go on resending)", l.NotPaidNoAck)
			}
			if l.DrainTimedOut {
				p(", drain stopped after %s", r.Opts.drain)
			}
			p("; orders set up at %.0f/s", l.SetupRate)
			if l.generatorLagMs > 100 {
				p("; the load generator fell up to %d ms behind schedule", l.generatorLagMs)
			}
			p(".\n")
		}
	}
	p("\n")
	b.WriteString(r.perfMarkdown())
	p("Ceilings measured in the same run on the same Temporal server:\n\n")
	p("| Temporal server | measurement | rate | p50 | p99 | max | errors |\n")
	p("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, t := range r.Targets {
		for _, c := range t.Ceilings {
			name := c.Name
			if c.Note != "" {
				name += " (" + c.Note + ")"
			}
			p("| %s | %s | %s %s | %s | %s | %s | %d |\n", t.Name, name,
				strings.TrimSuffix(perSec(c.Ops, c.Elapsed), "/s"), c.What,
				ms(c.Latency.P50), ms(c.Latency.P99), ms(c.Latency.Max), c.Errors)
		}
	}
	p("\n")
	for _, t := range r.Targets {
		p("- %s: %s\n", t.Name, t.Server)
	}
	if r.Skipped != "" {
		p("\n%s\n", r.Skipped)
	}
	p("%s\n", runEnd)
	return b.String()
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func ordinal(n int) string {
	switch {
	case n <= 0:
		return "no"
	case n == 1:
		return "every"
	case n == 2:
		return "2nd"
	case n == 3:
		return "3rd"
	}
	return fmt.Sprintf("%dth", n)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

// maxKeptRuns bounds how many earlier runs the document keeps.
const maxKeptRuns = 8

// writeDoc rewrites path: the fixed explanation, this run, then the runs
// already in the file (newest first).
func writeDoc(path, run string) error {
	var earlier []string
	var notes string
	if b, err := os.ReadFile(path); err == nil {
		earlier = runSections(string(b))
		notes = between(string(b), notesBegin, notesEnd)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(earlier) > maxKeptRuns {
		earlier = earlier[:maxKeptRuns]
	}
	var b strings.Builder
	b.WriteString(docHeader)
	if notes != "" {
		b.WriteString("\n" + notes + "\n")
	}
	b.WriteString("\n## Latest run\n\n")
	b.WriteString(run)
	if len(earlier) > 0 {
		b.WriteString("\n## Earlier runs\n\nKept for comparison, newest first; each is labelled with the commit it measured.\n\n")
		for _, s := range earlier {
			b.WriteString(s)
			b.WriteString("\n")
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// between returns the first block from begin to end, markers included.
func between(doc, begin, end string) string {
	i := strings.Index(doc, begin)
	if i < 0 {
		return ""
	}
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return ""
	}
	return doc[i : i+j+len(end)]
}

// runSections returns every run section in doc, in order.
func runSections(doc string) []string {
	var out []string
	for {
		i := strings.Index(doc, runBegin)
		if i < 0 {
			return out
		}
		j := strings.Index(doc[i:], runEnd)
		if j < 0 {
			return out
		}
		out = append(out, doc[i:i+j+len(runEnd)]+"\n")
		doc = doc[i+j+len(runEnd):]
	}
}

// docHeader explains the numbers; runs follow it.
var docHeader = `# Benchmarks

` + "`make bench`" + ` builds the binaries and ` + "`cmd/payflow-bench`" + `, then brings up the
real stack on free loopback ports in a temporary directory (PostgreSQL 15 from
` + "`internal/pgtest`" + `, a Temporal server, ` + "`bin/worker`" + `, ` + "`bin/api`" + `, ` + "`bin/wechatpay-sim`" + `,
all through ` + "`internal/stack`" + `) and measures it. It runs on the Temporal dev server
(` + "`bin/temporal`" + `, SQLite) and, when ` + "`make temporal-pg`" + ` has built it, on a Temporal
server v1.29.1 with PostgreSQL persistence. The newest run is written below,
earlier runs are kept underneath with the commit they measured, so a change
(for example moving the payment's steps to local activities) can be compared
with the figures from before it. A benchmark is not a test: nothing fails
because the machine is slow.

## What is measured

**payflow.** For each payment the tool creates an order with ` + "`POST /orders`" + `
(which starts the order's workflow), pays the trade at the sim with
` + "`\"drop\": true`" + ` (so WeChat's order query says SUCCESS but the sim sends nothing),
and signs the v2 notification itself with the merchant API key
(` + "`wechatpay.SignV2`" + `, ` + "`EncodeV2XML`" + `). After this setup it posts the notifications to
` + "`POST /wechatpay/notify`" + ` at the target rate, open loop: payment *i* is sent at
*start + i/rate* whatever happened to the earlier ones. Every *n*-th payment's
notification is sent twice at the same instant, byte for byte, as WeChat's
servers sometimes do. A notification answered anything but HTTP 200 with
` + "`return_code`" + ` SUCCESS is sent again after a short delay (WeChat waits 15 s).

- **offered**: payments per second (duplicates and resends come on top).
- **acked/s**: SUCCESS answers per second, from the first send to the last
  SUCCESS. **ack p50/p99/max**: latency of the SUCCESS answers (for payflow:
  verify, then ` + "`SignalWithStart`" + ` to the order's workflow, then answer).
- **PAID/s**: payments whose PAID log row exists, per second from the first
  send to the last PAID row. **to PAID p50/p99**: from the payment's first
  send to its PAID log row's ` + "`created_at`" + ` (the database's clock, the same
  machine), i.e. the workflow's order query at the sim (with the simulated
  WeChat latency), amount verification and the mark-paid transaction.
- **lost**: payments acknowledged with SUCCESS but not PAID when the run
  ended. **doubled**: orders with more than one PAID log row, or PAID by
  another transaction than the sim's. Both are read from PostgreSQL and
  judged by the paid-once check the end-to-end tests and the chaos tool make
  too (` + "`internal/invariant`" + `); both must be 0 for payflow.

**Ceilings.** On the same Temporal server, in the same run, the tool
registers tiny bench workflows on its own worker with a task queue of its own
and drives them from a fixed number of concurrent callers through the Go SDK.
That worker polls for workflow tasks as ` + "`bin/worker`" + ` does by default
(` + "`-ceiling-pollers`" + `, ` + strconv.Itoa(config.DefaultWorkerWorkflowPollers) + `), so that a ceiling and the payments it is
compared with are served alike:

- ` + "`SignalWithStart`" + ` of a workflow that only waits for that signal: the call the
  api makes per notification, without the api;
- an empty workflow, ` + "`ExecuteWorkflow`" + ` until its result is in: how many
  workflows the server can complete per second;
- a workflow running four no-op regular activities in a row, and one running
  four no-op local activities: the cost of the payment's shape on this server.

- ` + "`StartWorkflow`" + ` alone (an empty bench workflow, not waited for), measured
  right before **POST /orders**: the same callers posting plain orders
  (no ` + "`trade_type`" + `) to the api, which checks the token, decodes, inserts the
  order and its log row, starts the order's workflow and answers 201. The
  goal is at least 0.9 of the raw start's rate;
- ` + "`SignalWithStart`" + ` at the constant load's notification rate, open loop, right
  before that load: the raw call's latency next to the api's ack latency
  (goal on the dev server: ack p99 within 5 ms of it).

**Saturation point.** A step load (` + "`-steps`" + `, by default 0.6 to 1.6 times the
run's empty-workflow ceiling in steps of 0.05, ` + "`-step-duration`" + ` each) raises
the offered rate until the backlog grows; a step *keeps up* when the PAID
rows written within it are at least 95 % of the offered rate, all its own
payments are PAID and their time to PAID p99 is under 1 s. The saturation
point is the highest step that kept up; the goal is at least 0.9 of the
empty-workflow ceiling.

**Overload.** Then ` + "`-overload-runs`" + ` runs offer ` + "`-overload`" + ` (2) times the
saturation rate for ` + "`-overload-duration`" + ` (60 s); a notification not
acknowledged comes back every 15 s, as WeChat resends. No collapse means
PAID/s during the load at least 0.9 of the saturation step's PAID/s, and
every acknowledged payment PAID afterwards (the backlog drains).

**CPU per operation.** While a target runs, the tool reads every second
the CPU time (user and system, from ` + "`/proc/<pid>/stat`" + `) of each part of
the stack: the Temporal server, its PostgreSQL (the PostgreSQL-backed
server), the api, the worker, the payments' PostgreSQL, the sim (each
with its children: PostgreSQL's backends) and the tool itself. The report
divides each part's CPU in a window by what was done in it: the
empty-workflow ceiling per completed workflow, each step of the step load
and each overload run per payment made PAID within it. **machine busy**
is all of it over the window, out of the machine's CPUs: near their
number, rates are set by CPU per operation.

**Peer.** ` + "`cmd/payflow-bench/peer`" + ` is the handler of the usual tutorials, all inside
the HTTP request: verify the v2 signature, read the order, query WeChat (the
sim, through the project's ` + "`wechatpay.V2Client`" + `, so with the same simulated
latency), then UPDATE the order and INSERT its log row. It uses pgx directly
and has no lock between its read and its update, no idempotency key: two
copies arriving together can both write a PAID row, which is what
**doubled** counts for it. It runs as its own process (` + "`payflow-bench peer`" + `)
against its own database on the same PostgreSQL, driven by the same load.

The PostgreSQL clusters are throwaway ones from ` + "`internal/pgtest`" + `, with
` + "`fsync`" + ` and ` + "`synchronous_commit`" + ` off: the figures are an upper bound for the
database side. Everything runs on one machine and shares its CPUs with the
load generator.

**Daily bill reconciliation** (` + "`make bench-bills`" + `, ` + "`-mode bills`" + `). For each size N
(100,000 and 1,000,000 rows by default) the tool COPYs N orders PAID on one
Beijing day into PostgreSQL, has the sim write a synthetic trade bill of the
same N payments in WeChat's format (gzip, ` + "`sim.SyntheticTrade`" + `), restarts the
worker, and reconciles the day with ` + "`POST /reconciliations/{date}`" + `: the worker asks
for the bill (v3 tradebill), downloads it and streams it through gunzip,
SHA-1 and the parser straight into COPY, then compares it with the orders in
SQL. **reconcile** runs from the POST until the run ended (MATCHED, every
row matched); **rows/s** is N over that; **download + parse + COPY** and
**compare** are the two activities' times from the workflow history;
**worker peak RSS** is the worker's VmHWM (` + "`/proc/<pid>/status`" + `) after the run.
The goal: a million rows in under 60 s with the worker under 200 MB, the
cost linear in rows.

Run it yourself: ` + "`make bench`" + ` (about half an hour with both servers), or
` + "`go run ./cmd/payflow-bench -help`" + ` for the flags (` + "`-rate`" + `, ` + "`-duration`" + `,
` + "`-query-delay`" + `, ` + "`-targets`" + `, ` + "`-workers`" + `, ` + "`-steps`" + `, ` + "`-overload-runs`" + `,
` + "`-overload-rate`" + ` …). ` + "`make temporal-pg`" + ` builds
` + "`bin/temporal-server`" + ` and ` + "`bin/temporal-sql-tool`" + ` from ` + "`go.temporal.io/server@v1.29.1`" + `
(and copies its PostgreSQL schema to ` + "`bin/temporal-schema`" + `); the tool creates the
databases and applies the schema with ` + "`temporal-sql-tool`" + ` (create, setup-schema,
update-schema) and starts the server with the config in
` + "`internal/stack/temporal-pg.yaml`" + `.
`
