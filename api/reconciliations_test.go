package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/workflows"
)

// fakeBillRun is a started workflow run.
type fakeBillRun struct {
	client.WorkflowRun
	id, runID string
	temporal  *fakeBillTemporal
}

// Get waits for the run to end: in the fake, it has.
func (r fakeBillRun) Get(context.Context, any) error {
	r.temporal.mu.Lock()
	defer r.temporal.mu.Unlock()
	r.temporal.waited = append(r.temporal.waited, r.runID)
	delete(r.temporal.running, r.id)
	return nil
}

func (r fakeBillRun) GetID() string    { return r.id }
func (r fakeBillRun) GetRunID() string { return r.runID }

// fakeBillTemporal records workflow starts; a running day answers with its run.
type fakeBillTemporal struct {
	mu      sync.Mutex
	starts  []client.StartWorkflowOptions
	inputs  []workflows.BillReconcileInput
	running map[string]string // workflow id -> run id
	err     error
	n       int
	waited  []string // runs waited for
}

func (f *fakeBillTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.starts = append(f.starts, o)
	f.inputs = append(f.inputs, args[0].(workflows.BillReconcileInput))
	if id, ok := f.running[o.ID]; ok && o.WorkflowIDConflictPolicy == enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING {
		return fakeBillRun{id: o.ID, runID: id, temporal: f}, nil
	}
	f.n++
	return fakeBillRun{id: o.ID, runID: "run-" + string(rune('0'+f.n)), temporal: f}, nil
}

// fakeBillRuns keeps runs in memory like the store.
type fakeBillRuns struct {
	mu   sync.Mutex
	runs map[string][]store.BillRun // by date, in start order
	err  error
}

func (f *fakeBillRuns) BeginBillRun(_ context.Context, k store.BillRunKey, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	for _, r := range f.runs[k.Date] {
		if r.RunID == k.RunID {
			return nil
		}
	}
	f.runs[k.Date] = append(f.runs[k.Date], store.BillRun{BillRunKey: k, Status: store.BillRunning, StartedAt: at, Differences: []store.BillDifference{}})
	return nil
}

func (f *fakeBillRuns) LatestBillRun(_ context.Context, mchID, date string, _ int) (store.BillRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.runs[date]
	if len(rs) == 0 || rs[len(rs)-1].MchID != mchID {
		return store.BillRun{}, store.ErrNoBillRun
	}
	return rs[len(rs)-1], nil
}

func fenPtr(v int64) *int64 { return &v }

func TestReconciliationEndpoints(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC) // 17:00 in Beijing, 2026-11-26
	finished := time.Date(2026, 11, 26, 2, 31, 5, 0, time.UTC)
	done := store.BillRun{
		BillRunKey: store.BillRunKey{MchID: "1900000109", Date: "2026-11-25", RunID: "run-old"},
		Status:     store.BillDifferences, BillRows: 3, Matched: 1,
		StartedAt: time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC), FinishedAt: &finished,
		Differences: []store.BillDifference{
			{Kind: store.DiffAmountMismatch, OutTradeNo: "ORDER0001", TransactionID: "4200001", WeChatAmountFen: fenPtr(1200), OurAmountFen: fenPtr(1000),
				Action: "sent to REVIEW", OurStatus: "PAID"},
			{Kind: store.DiffRefundUnknown, OutTradeNo: "ORDER0002", OutRefundNo: "RF-1", TransactionID: "4200002", WeChatAmountFen: fenPtr(300)},
		},
	}
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		temporal   error
		store      error
		runningRun string // the day's workflow is running with this run id
		status     int
		body       string // exact JSON; "" to skip
		started    bool
	}{
		{name: "yesterday", method: "POST", path: "/reconciliations/2026-11-25", status: 202, started: true,
			body: `{"date":"2026-11-25","status":"RUNNING","bill_rows":0,"matched":0,"differences":[],"started_at":"2026-11-26T09:00:00Z","finished_at":null,"error":""}`},
		{name: "today", method: "POST", path: "/reconciliations/2026-11-26", status: 202, started: true},
		{name: "90 days back", method: "POST", path: "/reconciliations/2026-08-28", status: 202, started: true},
		{name: "91 days back", method: "POST", path: "/reconciliations/2026-08-27", status: 400,
			body: `{"error":"the date must be a day of the last 90 days (Asia/Shanghai), today included"}`},
		{name: "tomorrow", method: "POST", path: "/reconciliations/2026-11-27", status: 400},
		{name: "not a date", method: "POST", path: "/reconciliations/2026-02-30", status: 400,
			body: `{"error":"the date must be a day as YYYY-MM-DD (Asia/Shanghai)"}`},
		{name: "compact date", method: "POST", path: "/reconciliations/20261125", status: 400},
		{name: "temporal down", method: "POST", path: "/reconciliations/2026-11-25", temporal: errors.New("unavailable"), status: 503,
			body: `{"error":"could not start the reconciliation; retry"}`},
		{name: "store down", method: "POST", path: "/reconciliations/2026-11-25", store: errors.New("down"), status: 503, started: true},
		{name: "already running", method: "POST", path: "/reconciliations/2026-11-25", runningRun: "run-live", status: 202, started: true,
			body: `{"date":"2026-11-25","status":"RUNNING","bill_rows":0,"matched":0,"differences":[],"started_at":"2026-11-26T09:00:00Z","finished_at":null,"error":""}`},
		{name: "get the latest", method: "GET", path: "/reconciliations/2026-11-25", status: 200,
			body: `{"date":"2026-11-25","status":"DIFFERENCES","bill_rows":3,"matched":1,"differences":[` +
				`{"kind":"amount_mismatch","out_trade_no":"ORDER0001","out_refund_no":"","transaction_id":"4200001","wechat_amount_fen":1200,"our_amount_fen":1000,"action":"sent to REVIEW"},` +
				`{"kind":"refund_unknown","out_trade_no":"ORDER0002","out_refund_no":"RF-1","transaction_id":"4200002","wechat_amount_fen":300,"our_amount_fen":null,"action":""}],` +
				`"started_at":"2026-11-26T02:30:00Z","finished_at":"2026-11-26T02:31:05Z","error":""}`},
		{name: "get none", method: "GET", path: "/reconciliations/2026-11-24", status: 404, body: `{"error":"no reconciliation of 2026-11-24 has run"}`},
		{name: "get bad date", method: "GET", path: "/reconciliations/yesterday", status: 400},
		{name: "put", method: "PUT", path: "/reconciliations/2026-11-25", status: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := &fakeBillTemporal{err: tc.temporal, running: map[string]string{}}
			runs := &fakeBillRuns{runs: map[string][]store.BillRun{"2026-11-25": {done}}, err: tc.store}
			if tc.runningRun != "" {
				tmp.running["bill/2026-11-25"] = tc.runningRun
			}
			s := &Server{MchID: "1900000109", Bills: &Reconciliations{Runs: runs, Temporal: tmp, TaskQueue: "payments", PollInterval: 30 * time.Minute},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.body != "" {
				var got, want any
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatalf("body %q: %v", rec.Body, err)
				}
				if err := json.Unmarshal([]byte(tc.body), &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("body\n%s\nwant\n%s", strings.TrimSpace(rec.Body.String()), tc.body)
				}
			}
			if started := len(tmp.starts) > 0; started != tc.started {
				t.Fatalf("workflow started: %v", started)
			}
			if tc.started {
				o, in := tmp.starts[0], tmp.inputs[0]
				date := strings.TrimPrefix(tc.path, "/reconciliations/")
				if o.ID != "bill/"+date || o.TaskQueue != "payments" || o.WorkflowIDReusePolicy != enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE ||
					o.WorkflowIDConflictPolicy != enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING || o.StaticSummary == "" || o.TypedSearchAttributes.Size() != 2 ||
					in.Date != date || in.PollInterval != 30*time.Minute {
					t.Fatalf("start %+v input %+v", o, in)
				}
			}
			if tc.name == "already running" {
				if latest, _ := runs.LatestBillRun(context.Background(), "1900000109", "2026-11-25", 1); latest.RunID != "run-live" {
					t.Fatalf("latest run %s, want the running one", latest.RunID)
				}
			}
		})
	}
}

// Asking again for a day whose last run finished runs it again, and the
// answer is the new run.
func TestReconciliationAskedAgainRunsAgain(t *testing.T) {
	tmp := &fakeBillTemporal{running: map[string]string{}}
	runs := &fakeBillRuns{runs: map[string][]store.BillRun{}}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	s := &Server{MchID: "m", Bills: &Reconciliations{Runs: runs, Temporal: tmp, TaskQueue: "payments"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { now = now.Add(time.Minute); return now }}
	var ids []string
	for range 2 {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/reconciliations/2026-11-25", nil))
		if rec.Code != http.StatusAccepted {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		var body reconciliationJSON
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, body.StartedAt.String())
		r, _ := runs.LatestBillRun(context.Background(), "m", "2026-11-25", 1)
		r.Status = store.BillMatched
		runs.runs["2026-11-25"][len(runs.runs["2026-11-25"])-1] = r
	}
	if len(runs.runs["2026-11-25"]) != 2 || ids[0] == ids[1] {
		t.Fatalf("runs %+v", runs.runs)
	}
}

// A day asked for while its run has recorded its result but not yet ended
// (the workflow's last task) gets a new run once that one has ended, not
// the earlier result.
func TestReconciliationAskedWhileARunEnds(t *testing.T) {
	finished := time.Date(2026, 11, 26, 8, 59, 0, 0, time.UTC)
	ending := store.BillRun{BillRunKey: store.BillRunKey{MchID: "m", Date: "2026-11-25", RunID: "run-ending"},
		Status: store.BillDifferences, StartedAt: finished.Add(-time.Minute), FinishedAt: &finished, Differences: []store.BillDifference{}}
	tmp := &fakeBillTemporal{running: map[string]string{"bill/2026-11-25": "run-ending"}}
	runs := &fakeBillRuns{runs: map[string][]store.BillRun{"2026-11-25": {ending}}}
	s := &Server{MchID: "m", Bills: &Reconciliations{Runs: runs, Temporal: tmp, TaskQueue: "payments"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return finished.Add(time.Minute) }}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/reconciliations/2026-11-25", nil))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var body reconciliationJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	latest, _ := runs.LatestBillRun(context.Background(), "m", "2026-11-25", 1)
	if body.Status != store.BillRunning || latest.RunID != "run-1" || len(tmp.starts) != 2 || !reflect.DeepEqual(tmp.waited, []string{"run-ending"}) {
		t.Fatalf("answer %+v, latest run %s, starts %d, waited for %v", body, latest.RunID, len(tmp.starts), tmp.waited)
	}
}

func TestReconciliationNotConfigured(t *testing.T) {
	s := &Server{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/reconciliations/2026-11-25", nil))
	if rec.Code != http.StatusNotImplemented {
		t.Fatalf("%d", rec.Code)
	}
}
