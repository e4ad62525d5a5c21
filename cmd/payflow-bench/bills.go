package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"

	"github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/sim"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/workflows"
)

// The bill benchmark (-mode bills): for each size N, N orders PAID on one
// Beijing day are bulk-loaded with COPY, the sim makes a synthetic trade
// bill of the same N payments (sim.SyntheticTrade), and the day is
// reconciled through POST /reconciliations/{date}: the worker downloads the
// gzip bill, parses it as it streams into COPY, and compares it with the
// orders in SQL. The clock runs from the POST to the run's end; the
// worker is restarted before each size so that its peak resident memory
// (VmHWM) is that size's alone.

// billResult is one size's figures.
type billResult struct {
	Rows        int
	Orders      int           // orders of the day (plus those of the other sizes' days in the database)
	SetupOrders time.Duration // COPY of the orders
	Generate    time.Duration // the sim writing the synthetic bill
	Reconcile   time.Duration // POST until the run ended: fetch, download + parse + COPY, compare, record
	Load        time.Duration // the LoadBill activity (download, decompress, parse, SHA-1, COPY)
	Diff        time.Duration // the DiffBill activity (set-based comparison)
	Status      string
	Matched     int64
	Differences int
	PeakRSSKiB  int64 // the worker's VmHWM
}

func (r billResult) rowsPerSec() float64 {
	if r.Reconcile <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Reconcile.Seconds()
}

// parseBillRows reads -bill-rows: sizes, ascending.
func parseBillRows(s string) ([]int, error) {
	var out []int
	for _, f := range commaList(s) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 || n > 5_000_000 {
			return nil, fmt.Errorf("-bill-rows: %q is not a size in (0, 5000000]", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, errors.New("-bill-rows: sizes must increase")
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("-bill-rows: no size")
	}
	return out, nil
}

// benchHTTP waits for the sim writing a million-row bill.
var benchHTTP = &http.Client{Timeout: 5 * time.Minute}

// runBills brings up the stack on the dev server and measures each size.
func runBills(ctx context.Context, o options, logger *slog.Logger) (_ []billResult, err error) {
	sizes, err := parseBillRows(o.billRows)
	if err != nil {
		return nil, err
	}
	s, err := stack.Start(ctx, stack.Options{
		Keep: o.keep, ModuleDir: o.module, BinDir: o.binDir,
		Temporal: stack.TemporalOptions{CLI: o.temporalBin},
		Deployments: []stack.DeploymentOptions{{
			Workers: 1, APIVersion: "v3", OrderQueryAfter: time.Hour, TaskQueue: "payments-bench-bills",
		}},
		Logf: func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.DumpLogs(os.Stderr, 3000)
		}
		_ = s.Close()
	}()
	d := s.Deployments[0]
	db, err := pgxpool.New(ctx, d.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	today := time.Now().In(wechatpay.Beijing)
	var out []billResult
	for i, n := range sizes {
		day := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, wechatpay.Beijing).AddDate(0, 0, -1-i)
		date := day.Format("2006-01-02")
		prefix := fmt.Sprintf("BB%d", i)
		r := billResult{Rows: n, Orders: n}
		logger.Info("bill benchmark: loading orders", "rows", n, "date", date)
		start := time.Now()
		if err := copyPaidOrders(ctx, db, prefix, day, n); err != nil {
			return out, fmt.Errorf("orders: %w", err)
		}
		r.SetupOrders = time.Since(start)

		start = time.Now()
		if err := postBench(ctx, d.SimURL+"/sim/bills/"+date, sim.BillSwitches{SyntheticRows: n, SyntheticPrefix: prefix}, http.StatusOK, nil); err != nil {
			return out, fmt.Errorf("synthetic bill: %w", err)
		}
		r.Generate = time.Since(start)

		// A fresh worker: its VmHWM is then this size's peak.
		w := d.Workers[0]
		if err := w.Stop(); err != nil {
			return out, err
		}
		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		err := w.Restart(wctx)
		cancel()
		if err != nil {
			return out, fmt.Errorf("restart worker: %w", err)
		}

		logger.Info("bill benchmark: reconciling", "rows", n, "date", date)
		var rec benchReconciliation
		start = time.Now()
		if err := postBench(ctx, d.APIURLs[0]+"/reconciliations/"+date, nil, http.StatusAccepted, &rec, d.Authorize); err != nil {
			return out, fmt.Errorf("reconcile: %w", err)
		}
		for rec.Status == "RUNNING" {
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return out, err
			}
			if err := getBench(ctx, d.APIURLs[0]+"/reconciliations/"+date, &rec, d.Authorize); err != nil {
				return out, err
			}
		}
		r.Reconcile = time.Since(start)
		r.Status, r.Matched, r.Differences = rec.Status, rec.Matched, len(rec.Differences)
		if rec.Status != "MATCHED" || rec.Matched != int64(n) {
			return out, fmt.Errorf("%d rows: the day ended %s with %d matched, %d differences: %s", n, rec.Status, rec.Matched, len(rec.Differences), rec.Error)
		}
		r.PeakRSSKiB = vmHWM(w.Pid())
		r.Load, r.Diff = activityTimes(ctx, s, date)
		logger.Info("bill benchmark", "rows", n, "reconcile", r.Reconcile.String(), "rows_per_s", int(r.rowsPerSec()),
			"load", r.Load.String(), "diff", r.Diff.String(), "peak_rss_mib", r.PeakRSSKiB/1024)
		out = append(out, r)
	}
	return out, nil
}

// benchReconciliation is the part of the reconciliation JSON read here.
type benchReconciliation struct {
	Status      string            `json:"status"`
	Matched     int64             `json:"matched"`
	Differences []json.RawMessage `json:"differences"`
	Error       string            `json:"error"`
}

// copyPaidOrders bulk-loads n PAID orders of day, matching the synthetic
// bill row for row.
func copyPaidOrders(ctx context.Context, db *pgxpool.Pool, prefix string, day time.Time, n int) error {
	i := 0
	_, err := db.CopyFrom(ctx, pgx.Identifier{"orders"},
		[]string{"out_trade_no", "amount_fen", "currency", "description", "status", "transaction_id", "paid_at", "paid_fen", "created_at", "updated_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			no, txn, fen, at := sim.SyntheticTrade(prefix, day, i, n)
			i++
			return []any{no, fen, "CNY", "bench", "PAID", txn, at, fen, at.Add(-time.Minute), at}, nil
		}))
	return err
}

// activityTimes reads how long the run's load and comparison took from
// its workflow history.
func activityTimes(ctx context.Context, s *stack.Stack, date string) (load, diff time.Duration) {
	iter := s.Client.GetWorkflowHistory(ctx, workflows.BillWorkflowID(date), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	started := map[int64]time.Time{}
	kind := map[int64]string{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return 0, 0
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			kind[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			started[a.GetScheduledEventId()] = ev.GetEventTime().AsTime()
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
			d := ev.GetEventTime().AsTime().Sub(started[a.GetScheduledEventId()])
			switch kind[a.GetScheduledEventId()] {
			case "LoadBill":
				load += d
			case "DiffBill":
				diff += d
			}
		}
	}
	return load, diff
}

// vmHWM is a process's peak resident set size in KiB (0 if unknown).
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return v
		}
	}
	return 0
}

// postBench and getBench call the sim, or the order API with prepare
// (Deployment.Authorize).
func postBench(ctx context.Context, url string, body any, want int, out any, prepare ...func(*http.Request)) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, f := range prepare {
		f(req)
	}
	return doBench(req, want, out)
}

func getBench(ctx context.Context, url string, out any, prepare ...func(*http.Request)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for _, f := range prepare {
		f(req)
	}
	return doBench(req, http.StatusOK, out)
}

func doBench(req *http.Request, want int, out any) error {
	resp, err := benchHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d: %s", req.Method, req.URL, resp.StatusCode, clip(string(body), 300))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// billsMarkdown renders the bill benchmark's run.
func (r *report) billsMarkdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	r.writeHeader(&b)
	p("- daily bill reconciliation: a synthetic trade bill of N payments against N orders PAID that day (COPYed in), " +
		"API v3 (tradebill, then the gzip download), 1 bin/worker restarted before each size, Temporal dev server\n\n")
	p("| bill rows | orders | reconcile (POST to end) | rows/s | download + parse + COPY | compare (SQL) | worker peak RSS | result | orders COPY | bill generated by the sim |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, x := range r.Bills {
		p("| %d | %d | %.1f s | %.0f | %.1f s | %.1f s | %.0f MiB | %s, %d matched | %.1f s | %.1f s |\n",
			x.Rows, x.Orders, x.Reconcile.Seconds(), x.rowsPerSec(), x.Load.Seconds(), x.Diff.Seconds(),
			float64(x.PeakRSSKiB)/1024, x.Status, x.Matched, x.SetupOrders.Seconds(), x.Generate.Seconds())
	}
	if n := len(r.Bills); n >= 2 {
		a, z := r.Bills[0], r.Bills[n-1]
		p("\nCost per row: %.1f µs at %d rows, %.1f µs at %d rows (time ratio %.1f for a row ratio of %.0f).\n",
			a.Reconcile.Seconds()*1e6/float64(a.Rows), a.Rows, z.Reconcile.Seconds()*1e6/float64(z.Rows), z.Rows,
			z.Reconcile.Seconds()/a.Reconcile.Seconds(), float64(z.Rows)/float64(a.Rows))
	}
	p("%s\n", runEnd)
	return b.String()
}
