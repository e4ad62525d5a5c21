package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/workflows"
)

// BillRuns is the part of the store the reconciliation endpoints use.
type BillRuns interface {
	BeginBillRun(ctx context.Context, k store.BillRunKey, startedAt time.Time) error
	LatestBillRun(ctx context.Context, mchID, date string, maxDifferences int) (store.BillRun, error)
}

// BillWorkflows starts a day's reconciliation workflow (bill/{date}, not
// an order's: the gateway is for those).
type BillWorkflows interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// Reconciliations are what the /reconciliations endpoints need.
type Reconciliations struct {
	Runs         BillRuns
	Temporal     BillWorkflows
	TaskQueue    string        // TEMPORAL_TASK_QUEUE
	PollInterval time.Duration // BILL_POLL_INTERVAL
}

// reconciliationWindow is how far back a day may be reconciled: WeChat
// keeps bills for three months.
const reconciliationWindow = 90

// maxDifferencesShown bounds the differences in one answer.
const maxDifferencesShown = 10_000

// reconciliationJSON is the reconciliation JSON of docs/interface.md.
type reconciliationJSON struct {
	Date        string           `json:"date"`
	Status      string           `json:"status"`
	BillRows    int64            `json:"bill_rows"`
	Matched     int64            `json:"matched"`
	Differences []differenceJSON `json:"differences"`
	StartedAt   time.Time        `json:"started_at"`
	FinishedAt  *time.Time       `json:"finished_at"`
	Error       string           `json:"error"`
}

type differenceJSON struct {
	Kind            string `json:"kind"`
	OutTradeNo      string `json:"out_trade_no"`
	OutRefundNo     string `json:"out_refund_no"`
	TransactionID   string `json:"transaction_id"`
	WeChatAmountFen *int64 `json:"wechat_amount_fen"`
	OurAmountFen    *int64 `json:"our_amount_fen"`
	Action          string `json:"action"`
}

func reconciliationOf(run store.BillRun) reconciliationJSON {
	out := reconciliationJSON{
		Date: run.Date, Status: run.Status, BillRows: run.BillRows, Matched: run.Matched,
		Differences: make([]differenceJSON, 0, len(run.Differences)),
		StartedAt:   run.StartedAt.UTC(), FinishedAt: run.FinishedAt, Error: run.Error,
	}
	for _, d := range run.Differences {
		out.Differences = append(out.Differences, differenceJSON{
			Kind: d.Kind, OutTradeNo: d.OutTradeNo, OutRefundNo: d.OutRefundNo, TransactionID: d.TransactionID,
			WeChatAmountFen: d.WeChatAmountFen, OurAmountFen: d.OurAmountFen, Action: d.Action,
		})
	}
	return out
}

// reconciliationDate reads {date}: a YYYY-MM-DD Beijing day. It answers
// 400 itself.
func reconciliationDate(w http.ResponseWriter, r *http.Request) (string, time.Time, bool) {
	date := mux.Vars(r)["date"]
	day, err := wechatpay.BillDay(date)
	if err != nil {
		writeError(w, http.StatusBadRequest, "the date must be a day as YYYY-MM-DD (Asia/Shanghai)")
		return "", time.Time{}, false
	}
	return date, day, true
}

// startReconciliation is POST /reconciliations/{date}: reconcile that day
// against WeChat's trade bill now. The day's workflow (bill/{date}) is
// started, or, when one is running, that one answers; 202 with the run.
func (s *Server) startReconciliation(w http.ResponseWriter, r *http.Request) {
	if s.Bills == nil {
		writeError(w, http.StatusNotImplemented, "bill reconciliation is not configured")
		return
	}
	date, day, ok := reconciliationDate(w, r)
	if !ok {
		return
	}
	now := s.now()
	today, _ := wechatpay.BillDay(now.In(wechatpay.Beijing).Format(wechatpay.BillDateLayout))
	if day.After(today) || day.Before(today.AddDate(0, 0, -reconciliationWindow)) {
		writeError(w, http.StatusBadRequest, "the date must be a day of the last 90 days (Asia/Shanghai), today included")
		return
	}
	run, err := s.startBillRun(r, date)
	if err == nil && s.finishing(r, date, run.GetRunID()) {
		// The running run has done its comparison and is only ending: it
		// would answer with what it found before this request. Once it has
		// ended, a new run compares the day as it is now.
		ctx, cancel := context.WithTimeout(r.Context(), finishingWait)
		_ = run.Get(ctx, nil)
		cancel()
		run, err = s.startBillRun(r, date)
	}
	if err != nil {
		s.Logger.Error("start reconciliation", "date", date, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not start the reconciliation; retry")
		return
	}
	// The workflow records its run too; whoever comes first creates it, so
	// the answer already shows it.
	k := store.BillRunKey{MchID: s.MchID, Date: date, RunID: run.GetRunID()}
	if err := s.Bills.Runs.BeginBillRun(r.Context(), k, now); err != nil {
		s.Logger.Error("record reconciliation run", "date", date, "run_id", k.RunID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the reconciliation started but could not be read; GET /reconciliations/"+date+" shows it")
		return
	}
	s.Logger.Info("reconciliation started", "date", date, "workflow_id", run.GetID(), "run_id", k.RunID)
	s.writeReconciliation(w, r, date, http.StatusAccepted)
}

// finishingWait bounds how long POST /reconciliations waits for a run that
// has recorded its result to end.
const finishingWait = 10 * time.Second

func (s *Server) startBillRun(r *http.Request, date string) (client.WorkflowRun, error) {
	return s.Bills.Temporal.ExecuteWorkflow(r.Context(), client.StartWorkflowOptions{
		ID:                       workflows.BillWorkflowID(date),
		TaskQueue:                s.Bills.TaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    workflows.BillAttributes(date),
		StaticSummary:            workflows.BillSummary(date),
	}, workflows.BillReconcileWorkflow, workflows.BillReconcileInput{Date: date, PollInterval: s.Bills.PollInterval})
}

// finishing reports whether the day's run runID has already recorded its
// final result (a run that was already running when it was asked for).
func (s *Server) finishing(r *http.Request, date, runID string) bool {
	latest, err := s.Bills.Runs.LatestBillRun(r.Context(), s.MchID, date, 0)
	return err == nil && latest.RunID == runID && latest.Status != store.BillRunning
}

// getReconciliation is GET /reconciliations/{date}: the day's latest run.
func (s *Server) getReconciliation(w http.ResponseWriter, r *http.Request) {
	if s.Bills == nil {
		writeError(w, http.StatusNotImplemented, "bill reconciliation is not configured")
		return
	}
	date, _, ok := reconciliationDate(w, r)
	if !ok {
		return
	}
	s.writeReconciliation(w, r, date, http.StatusOK)
}

func (s *Server) writeReconciliation(w http.ResponseWriter, r *http.Request, date string, status int) {
	run, err := s.Bills.Runs.LatestBillRun(r.Context(), s.MchID, date, maxDifferencesShown)
	if errors.Is(err, store.ErrNoBillRun) {
		writeError(w, http.StatusNotFound, "no reconciliation of "+date+" has run")
		return
	}
	if err != nil {
		s.Logger.Error("read reconciliation", "date", date, "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the reconciliation")
		return
	}
	if run.Truncated {
		s.Logger.Warn("reconciliation shown with its first differences only", "date", date, "shown", len(run.Differences))
	}
	writeJSON(w, status, reconciliationOf(run))
}
