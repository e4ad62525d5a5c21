package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// SafetyNetStore is what the safety net reads: its candidates, page by page.
type SafetyNetStore interface {
	PendingOrdersAfter(ctx context.Context, createdBefore time.Time, after string, limit int) ([]store.PendingOrder, error)
	UnexaminedNotifications(ctx context.Context, receivedBefore time.Time, after store.NotificationCursor, limit int) ([]payment.Notification, store.NotificationCursor, error)
	OrdersWithOpenRefunds(ctx context.Context, mchID, afterOutTradeNo string, limit int, untakenBefore time.Time) ([]store.OpenRefundOrder, error)
}

// Describer is the part of the Temporal client that tells whether a
// workflow runs: visibility for a page of them at once, and the run itself
// for one.
type Describer interface {
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Handover is how the safety net hands work to an order's workflow
// (package gateway): wake a run for an order, hand it a notification, or
// have a running run read its open refunds again.
type Handover interface {
	Wake(ctx context.Context, outTradeNo string) error
	ReloadRefunds(ctx context.Context, outTradeNo string) error
	Notify(ctx context.Context, n payment.Notification, startNew bool, status payment.Status) error
}

// SafetyNet finds what no workflow is looking after: PENDING orders
// without a running workflow (created before workflows owned orders, or
// whose run was terminated or failed), and notifications that were
// acknowledged to WeChat but never examined (their run was terminated or
// failed while holding them). It hands each to a new run of the order's
// workflow.
type SafetyNet struct {
	Store      SafetyNetStore
	Temporal   Describer
	Handover   Handover
	WorkflowID func(outTradeNo string) string
	MchID      string           // refunds are keyed by merchant
	Metrics    *metrics.Metrics // nil counts nothing
	// Concurrency bounds the Temporal calls of a page (16 when zero).
	Concurrency int
}

// Kinds of safety-net candidates.
const (
	NetNotifications = "notifications" // acknowledged, never examined
	NetOrders        = "orders"        // PENDING without a running workflow
	NetRefunds       = "refunds"       // refunds not final without a running workflow
)

// NetCursor is where a page of one kind starts.
type NetCursor struct {
	Key string    `json:"key,omitempty"`
	At  time.Time `json:"at,omitzero"`
}

// SafetyNetPageInput asks for one page of one kind of candidate.
type SafetyNetPageInput struct {
	Kind   string    `json:"kind"`
	After  NetCursor `json:"after"`
	Before time.Time `json:"before"` // younger candidates are left to the api and the run still taking them
	Limit  int       `json:"limit"`
}

// SafetyNetPageResult is what a page found and did.
type SafetyNetPageResult struct {
	Checked int       `json:"checked"`
	Handed  []string  `json:"handed"` // orders (or notification ids) handed to a new run
	Next    NetCursor `json:"next"`
	Done    bool      `json:"done"` // no candidate after this page
}

// SafetyNetPage checks one page of candidates and hands the stranded ones
// over. It heartbeats as it goes; handing over is idempotent (a running run
// is only nudged, a notification it already holds is recognised), so a
// retried page changes nothing twice.
func (s *SafetyNet) SafetyNetPage(ctx context.Context, in SafetyNetPageInput) (SafetyNetPageResult, error) {
	if in.Limit <= 0 {
		in.Limit = 200
	}
	switch in.Kind {
	case NetNotifications:
		return s.notifications(ctx, in)
	case NetOrders:
		orders, err := s.Store.PendingOrdersAfter(ctx, in.Before, in.After.Key, in.Limit)
		if err != nil {
			return SafetyNetPageResult{}, fmt.Errorf("safety net: %w", err)
		}
		// Visibility is believed only for orders not yet past their expiry
		// (and the grace): a run would have closed such an order, so a
		// PENDING order past it whose run visibility still lists as running
		// is asked itself. A record that stays wrong strands nothing.
		nos := make([]string, len(orders))
		overdue := make(map[string]bool)
		for i, o := range orders {
			nos[i] = o.OutTradeNo
			if o.ExpiresAt == nil || o.ExpiresAt.Before(in.Before) {
				overdue[o.OutTradeNo] = true
			}
		}
		return s.orphans(ctx, in, nos, nil, overdue)
	case NetRefunds:
		orders, err := s.Store.OrdersWithOpenRefunds(ctx, s.MchID, in.After.Key, in.Limit, in.Before)
		if err != nil {
			return SafetyNetPageResult{}, fmt.Errorf("safety net: %w", err)
		}
		// A running run may not know a refund accepted here (its update was
		// lost with a crashed Temporal server): it reads them again, and
		// follows those it did not know; the others keep their schedule.
		// Only a refund WeChat has not taken can be unknown (a run that
		// asked WeChat knew it, and a run carries its refunds until they
		// are final), so a run whose refunds WeChat has all taken is left
		// alone: a refund to a bank card stays PROCESSING for days, and a
		// signal to its run every pass would only grow its history.
		// A run visibility wrongly lists as running is nudged by
		// Signal-With-Start, which starts one: visibility is believed.
		nos := make([]string, len(orders))
		untaken := make(map[string]bool)
		for i, o := range orders {
			nos[i] = o.OutTradeNo
			untaken[o.OutTradeNo] = o.Untaken
		}
		reload := func(ctx context.Context, no string) error {
			if !untaken[no] {
				return nil
			}
			return s.Handover.ReloadRefunds(ctx, no)
		}
		return s.orphans(ctx, in, nos, reload, nil)
	}
	return SafetyNetPageResult{}, fmt.Errorf("safety net: unknown kind %q", in.Kind)
}

func (s *SafetyNet) notifications(ctx context.Context, in SafetyNetPageInput) (SafetyNetPageResult, error) {
	ns, next, err := s.Store.UnexaminedNotifications(ctx, in.Before, store.NotificationCursor{ReceivedAt: in.After.At, ID: in.After.Key}, in.Limit)
	if err != nil {
		return SafetyNetPageResult{}, fmt.Errorf("safety net: %w", err)
	}
	res := SafetyNetPageResult{Checked: len(ns), Handed: []string{}, Next: NetCursor{Key: next.ID, At: next.ReceivedAt}, Done: len(ns) < in.Limit}
	for _, n := range ns {
		activity.RecordHeartbeat(ctx, n.ID)
		// A new run if none runs; a running one recognises a notification
		// it holds and marks it examined.
		if err := s.Handover.Notify(ctx, n, true, ""); err != nil {
			return SafetyNetPageResult{}, fmt.Errorf("safety net: hand over notification %s: %w", n.ID, err)
		}
		res.Handed = append(res.Handed, n.ID)
	}
	s.Metrics.ReconciliationFound(len(res.Handed))
	return res, nil
}

// orphans hands each order of the page that has no running workflow to a
// new run; a running one gets nudge, when there is one. The runs of the
// orders in describe are described even when visibility lists them as
// running.
func (s *SafetyNet) orphans(ctx context.Context, in SafetyNetPageInput, nos []string, nudge func(context.Context, string) error,
	describe map[string]bool) (SafetyNetPageResult, error) {
	res := SafetyNetPageResult{Checked: len(nos), Handed: []string{}, Next: in.After, Done: len(nos) < in.Limit}
	if len(nos) > 0 {
		res.Next = NetCursor{Key: nos[len(nos)-1]}
	}
	// Each order: is its workflow running? If not, wake a run. Visibility
	// answers for the whole page (most PENDING orders have a running
	// run: one call instead of one per order); a run it does not list as
	// running is asked itself before it is woken, because visibility lags.
	// Bounded concurrency, so a page of hundreds takes a few seconds.
	listed := s.listedRunning(ctx, nos)
	handed := make([]bool, len(nos))
	errs := make([]error, len(nos))
	conc := s.Concurrency
	if conc <= 0 {
		conc = 16
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, no := range nos {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			running := listed[s.WorkflowID(no)] && !describe[no]
			if !running {
				var err error
				if running, err = s.running(ctx, s.WorkflowID(no)); err != nil {
					errs[i] = fmt.Errorf("describe %s: %w", no, err)
					return
				}
			}
			if running {
				if nudge != nil {
					if err := nudge(ctx, no); err != nil {
						errs[i] = fmt.Errorf("nudge %s: %w", no, err)
					}
				}
				return
			}
			if err := s.Handover.Wake(ctx, no); err != nil {
				errs[i] = fmt.Errorf("wake %s: %w", no, err)
				return
			}
			handed[i] = true
		}()
		activity.RecordHeartbeat(ctx, no)
	}
	wg.Wait()
	for i, no := range nos {
		if handed[i] {
			res.Handed = append(res.Handed, no)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// What was handed over stays handed over (waking is idempotent); the
		// page is tried again.
		return SafetyNetPageResult{}, fmt.Errorf("safety net: %w", err)
	}
	s.Metrics.ReconciliationFound(len(res.Handed))
	return res, nil
}

func (s *SafetyNet) running(ctx context.Context, workflowID string) (bool, error) {
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// visibilityBatch is how many workflow ids one visibility query names.
const visibilityBatch = 50

// listedRunning is the set of the orders' workflow ids that visibility
// lists as running. It is only a shortcut: an id it leaves out (not
// running, not yet visible, or visibility unavailable) is described.
func (s *SafetyNet) listedRunning(ctx context.Context, nos []string) map[string]bool {
	out := make(map[string]bool, len(nos))
	for chunk := range slices.Chunk(nos, visibilityBatch) {
		ids := make([]string, 0, len(chunk))
		for _, no := range chunk {
			if id := s.WorkflowID(no); !strings.ContainsAny(id, `'"\`) {
				ids = append(ids, "'"+id+"'")
			}
		}
		if len(ids) == 0 {
			continue
		}
		query := "ExecutionStatus = 'Running' AND WorkflowId IN (" + strings.Join(ids, ", ") + ")"
		var token []byte
		for {
			resp, err := s.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: query, PageSize: int32(len(ids)), NextPageToken: token,
			})
			if err != nil {
				activity.GetLogger(ctx).Warn("safety net: visibility did not answer; describing each run", "err", err)
				break
			}
			for _, e := range resp.GetExecutions() {
				if e.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
					out[e.GetExecution().GetWorkflowId()] = true
				}
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
	}
	return out
}
