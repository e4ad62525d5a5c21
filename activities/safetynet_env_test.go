package activities

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// fakeDescriber knows which orders' workflows run; any other is not found.
// Its visibility lists as running only the ids in listed (it lags, or is
// down with listFail).
type fakeDescriber struct {
	mu       sync.Mutex
	status   map[string]enums.WorkflowExecutionStatus // by workflow id
	fail     error
	asked    []string
	listed   map[string]bool
	listFail error
	queries  []string
}

// quoted finds the quoted values of a visibility query.
var quoted = regexp.MustCompile(`'([^']*)'`)

func (f *fakeDescriber) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, req.GetQuery())
	if f.listFail != nil {
		return nil, f.listFail
	}
	if !strings.HasPrefix(req.GetQuery(), "ExecutionStatus = 'Running' AND WorkflowId IN (") {
		return nil, serviceerror.NewInvalidArgument("unexpected query " + req.GetQuery())
	}
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for _, m := range quoted.FindAllStringSubmatch(req.GetQuery(), -1)[1:] {
		if f.listed[m[1]] {
			resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
				Execution: &commonpb.WorkflowExecution{WorkflowId: m[1]}, Status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING})
		}
	}
	return resp, nil
}

func (f *fakeDescriber) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id)
	if f.fail != nil {
		return nil, f.fail
	}
	s, ok := f.status[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + id)
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: s}}, nil
}

// fakeHandover records what the safety net hands over.
type fakeHandover struct {
	mu       sync.Mutex
	woken    []string
	reloaded []string
	notified []payment.Notification
	startNew []bool
	fail     error
}

func (f *fakeHandover) Wake(_ context.Context, no string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.woken = append(f.woken, no)
	return nil
}

func (f *fakeHandover) ReloadRefunds(_ context.Context, no string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.reloaded = append(f.reloaded, no)
	return nil
}

func (f *fakeHandover) Notify(_ context.Context, n payment.Notification, startNew bool, status payment.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if status != "" {
		return errors.New("the safety net does not know the order's status")
	}
	f.notified, f.startNew = append(f.notified, n), append(f.startNew, startNew)
	return nil
}

func TestSafetyNetPageActivity(t *testing.T) {
	e := newActEnv(t) // the database and the metrics
	ctx := context.Background()
	desc := &fakeDescriber{status: map[string]enums.WorkflowExecutionStatus{
		"payment/SN-B-RUNNING":   enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
		"payment/SN-C-COMPLETED": enums.WORKFLOW_EXECUTION_STATUS_COMPLETED,
		"payment/SN-E-FAILED":    enums.WORKFLOW_EXECUTION_STATUS_FAILED,
	}}
	hand := &fakeHandover{}
	net := &SafetyNet{Store: e.st, Temporal: desc, Handover: hand, WorkflowID: func(no string) string { return "payment/" + no },
		MchID: refundMch, Metrics: e.a.Metrics, Concurrency: 2}
	env := quietSuite().NewTestActivityEnvironment()
	env.RegisterActivity(net)
	page := func(t *testing.T, in SafetyNetPageInput) (SafetyNetPageResult, error) {
		t.Helper()
		v, err := env.ExecuteActivity(net.SafetyNetPage, in)
		if err != nil {
			return SafetyNetPageResult{}, err
		}
		var res SafetyNetPageResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res, nil
	}
	reset := func() {
		hand.woken, hand.reloaded, hand.notified, hand.startNew, hand.fail, desc.fail, desc.asked = nil, nil, nil, nil, nil, nil, nil
		desc.listed, desc.listFail, desc.queries = nil, nil, nil
	}
	found := func() float64 { return e.count(metrics.ReconciliationFoundName) }

	// PENDING orders with no run, a running run, a finished one and a
	// failed one; a decided order is no candidate. Wakes run concurrently,
	// so only the page's Handed is in order.
	later := time.Now().Add(time.Hour) // every order is older than this
	pending := func(no string, expires time.Time) {
		if _, err := e.st.CreateOrder(ctx, store.NewOrder{OutTradeNo: no, AmountFen: 100, Description: "tea", ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
	}
	for _, no := range []string{"SN-A-NONE", "SN-B-RUNNING", "SN-C-COMPLETED", "SN-E-FAILED"} {
		pending(no, later.Add(time.Hour)) // not yet expired at the pass
	}
	e.order(t, "SN-D-PAID", 100, payment.StatusPaid)

	t.Run("orders without a running workflow get one", func(t *testing.T) {
		reset()
		res, err := page(t, SafetyNetPageInput{Kind: NetOrders, Before: later, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"SN-A-NONE", "SN-C-COMPLETED", "SN-E-FAILED"}
		if res.Checked != 4 || !slices.Equal(res.Handed, want) || !res.Done || res.Next.Key != "SN-E-FAILED" || !slices.Equal(slices.Sorted(slices.Values(hand.woken)), want) {
			t.Errorf("page %+v, woken %q; want %q handed", res, hand.woken, want)
		}
		if got := found(); got != 3 {
			t.Errorf("%s = %v, want 3", metrics.ReconciliationFoundName, got)
		}
	})

	// Visibility answers for the page at once; a run it does not list as
	// running is described before it is woken (visibility lags), and
	// without visibility every run is described.
	t.Run("visibility spares the runs it lists as running a describe", func(t *testing.T) {
		want := []string{"SN-A-NONE", "SN-C-COMPLETED", "SN-E-FAILED"}
		for _, c := range []struct {
			name     string
			listed   map[string]bool
			listFail error
			asked    []string
		}{
			{"visibility lists the running run", map[string]bool{"payment/SN-B-RUNNING": true}, nil,
				[]string{"payment/SN-A-NONE", "payment/SN-C-COMPLETED", "payment/SN-E-FAILED"}},
			{"visibility lags: a finished run still listed as running is left for the next pass",
				map[string]bool{"payment/SN-B-RUNNING": true, "payment/SN-E-FAILED": true}, nil,
				[]string{"payment/SN-A-NONE", "payment/SN-C-COMPLETED"}},
			{"visibility down", nil, serviceerror.NewUnavailable("visibility down"),
				[]string{"payment/SN-A-NONE", "payment/SN-B-RUNNING", "payment/SN-C-COMPLETED", "payment/SN-E-FAILED"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				reset()
				desc.listed, desc.listFail = c.listed, c.listFail
				res, err := page(t, SafetyNetPageInput{Kind: NetOrders, Before: later, Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				wantHanded := slices.DeleteFunc(slices.Clone(want), func(no string) bool { return c.listed["payment/"+no] })
				if !slices.Equal(res.Handed, wantHanded) || !slices.Equal(slices.Sorted(slices.Values(hand.woken)), wantHanded) {
					t.Errorf("handed %q, woken %q; want %q", res.Handed, hand.woken, wantHanded)
				}
				if got := slices.Sorted(slices.Values(desc.asked)); !slices.Equal(got, c.asked) {
					t.Errorf("described %q, want %q", got, c.asked)
				}
				if len(desc.queries) != 1 || !strings.Contains(desc.queries[0], "'payment/SN-A-NONE', 'payment/SN-B-RUNNING', 'payment/SN-C-COMPLETED', 'payment/SN-E-FAILED')") {
					t.Errorf("visibility queries %q, want one naming the page's four runs", desc.queries)
				}
			})
		}
	})

	// A run would have closed an order past its expiry: visibility's
	// "running" is not believed for it (a record that stays wrong must not
	// strand the order), nor for an order that never expires.
	t.Run("an overdue order's run is described even when listed", func(t *testing.T) {
		reset()
		pending("SN-F-OVERDUE", later.Add(-time.Minute))
		e.order(t, "SN-G-NO-EXPIRY", 100, payment.StatusPending)
		desc.listed = map[string]bool{"payment/SN-F-OVERDUE": true, "payment/SN-G-NO-EXPIRY": true}
		defer func() {
			for _, no := range []string{"SN-F-OVERDUE", "SN-G-NO-EXPIRY"} {
				if _, err := e.st.MarkClosed(ctx, no, "expired", "closed:expired"); err != nil {
					t.Fatal(err)
				}
			}
		}()
		res, err := page(t, SafetyNetPageInput{Kind: NetOrders, After: NetCursor{Key: "SN-E-FAILED"}, Before: later, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"SN-F-OVERDUE", "SN-G-NO-EXPIRY"}
		if !slices.Equal(res.Handed, want) || !slices.Equal(slices.Sorted(slices.Values(desc.asked)), []string{"payment/SN-F-OVERDUE", "payment/SN-G-NO-EXPIRY"}) {
			t.Errorf("handed %q, described %q; want both described and woken", res.Handed, desc.asked)
		}
	})

	t.Run("page by page", func(t *testing.T) {
		reset()
		first, err := page(t, SafetyNetPageInput{Kind: NetOrders, Before: later, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if first.Checked != 2 || first.Done || first.Next.Key != "SN-B-RUNNING" || !slices.Equal(first.Handed, []string{"SN-A-NONE"}) {
			t.Fatalf("first page %+v", first)
		}
		second, err := page(t, SafetyNetPageInput{Kind: NetOrders, After: first.Next, Before: later, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if second.Checked != 2 || second.Done || !slices.Equal(second.Handed, []string{"SN-C-COMPLETED", "SN-E-FAILED"}) {
			t.Fatalf("second page %+v", second)
		}
		last, err := page(t, SafetyNetPageInput{Kind: NetOrders, After: second.Next, Before: later, Limit: 2})
		if err != nil || last.Checked != 0 || !last.Done || len(last.Handed) != 0 || last.Next != second.Next {
			t.Fatalf("last page %+v %v", last, err)
		}
	})

	t.Run("young orders are left to the api and their run", func(t *testing.T) {
		reset()
		res, err := page(t, SafetyNetPageInput{Kind: NetOrders, Before: time.Now().Add(-time.Hour), Limit: 10})
		if err != nil || res.Checked != 0 || !res.Done || len(hand.woken) != 0 || len(desc.asked) != 0 {
			t.Errorf("page %+v %v, woken %q", res, err, hand.woken)
		}
	})

	t.Run("Temporal does not answer: nothing handed over, retried", func(t *testing.T) {
		reset()
		desc.fail = serviceerror.NewUnavailable("frontend down")
		before := found()
		_, err := page(t, SafetyNetPageInput{Kind: NetOrders, Before: later, Limit: 10})
		retryable(t, err, 0)
		if len(hand.woken) != 0 || found() != before {
			t.Errorf("woken %q, found %v → %v", hand.woken, before, found())
		}
	})

	t.Run("a wake that fails fails the page", func(t *testing.T) {
		reset()
		hand.fail = errors.New("temporal down")
		_, err := page(t, SafetyNetPageInput{Kind: NetOrders, Before: later, Limit: 10})
		retryable(t, err, 0)
	})

	t.Run("refunds not final without a running workflow", func(t *testing.T) {
		reset()
		e.order(t, "SN-R-PAID", 1000, payment.StatusPaid)
		e.order(t, "SN-B-RUNNING-R", 1000, payment.StatusPaid)
		desc.status["payment/SN-B-RUNNING-R"] = enums.WORKFLOW_EXECUTION_STATUS_RUNNING
		for _, no := range []string{"SN-R-PAID", "SN-B-RUNNING-R", "SN-D-PAID"} {
			if _, err := e.st.AcceptRefund(ctx, store.AcceptRefundParams{MchID: refundMch, OutTradeNo: no, OutRefundNo: "RF-" + no,
				AmountFen: 10, Source: payment.RefundSourceAPI}); err != nil {
				t.Fatal(err)
			}
		}
		// A refund that is final needs no one.
		if _, err := e.st.MarkRefund(ctx, store.MarkRefundParams{MchID: refundMch, OutRefundNo: "RF-SN-D-PAID", Status: payment.RefundSuccess}); err != nil {
			t.Fatal(err)
		}
		// Recorded after this pass's cut-off: left to the run accepting it.
		young, err := page(t, SafetyNetPageInput{Kind: NetRefunds, Before: time.Now().Add(-time.Hour), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(hand.reloaded) != 0 || !slices.Equal(young.Handed, []string{"SN-R-PAID"}) {
			t.Errorf("young refunds: page %+v, reloaded %q", young, hand.reloaded)
		}
		reset()
		res, err := page(t, SafetyNetPageInput{Kind: NetRefunds, Before: later, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		// The running run is asked to read its refunds again (it may not
		// know one WeChat has not taken), and is not counted as a finding.
		if res.Checked != 2 || !slices.Equal(res.Handed, []string{"SN-R-PAID"}) || !res.Done || !slices.Equal(hand.woken, []string{"SN-R-PAID"}) ||
			!slices.Equal(hand.reloaded, []string{"SN-B-RUNNING-R"}) {
			t.Errorf("page %+v, woken %q, reloaded %q", res, hand.woken, hand.reloaded)
		}
		// Once WeChat has taken the refund, a run that asked WeChat knew it:
		// its run is left alone, pass after pass. A run that is not running
		// is still woken.
		for _, no := range []string{"SN-R-PAID", "SN-B-RUNNING-R"} {
			if _, err := e.st.MarkRefund(ctx, store.MarkRefundParams{MchID: refundMch, OutRefundNo: "RF-" + no, Status: payment.RefundProcessing, RefundID: "50300-" + no}); err != nil {
				t.Fatal(err)
			}
		}
		reset()
		res, err = page(t, SafetyNetPageInput{Kind: NetRefunds, Before: later, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if res.Checked != 2 || !slices.Equal(hand.woken, []string{"SN-R-PAID"}) || len(hand.reloaded) != 0 {
			t.Errorf("refunds WeChat took: page %+v, woken %q, reloaded %q", res, hand.woken, hand.reloaded)
		}
	})

	t.Run("acknowledged notifications never examined are handed to a new run", func(t *testing.T) {
		reset()
		kept := payment.Notification{ID: "SN-N1", Source: payment.SourceV3, OutTradeNo: "SN-A-NONE", TransactionID: "4200014", AmountFen: 100, ResultCode: "SUCCESS"}
		examined := kept
		examined.ID = "SN-N2"
		other := payment.Notification{ID: "SN-N3", Source: payment.SourceV3, Kind: payment.KindOther, EventType: "COUPON.USE"}
		queued := kept
		queued.ID = "SN-N4"
		_, keptErr := e.st.KeepHandingOver(ctx, kept)
		for _, err := range []error{
			keptErr, // held by a run that then died
			e.st.AuditExamined(ctx, examined, payment.NotifyAlreadyPaid), // examined when received
			e.st.AuditExamined(ctx, other, payment.NotifyIgnored),        // no workflow needed
			e.st.EnqueueNotification(ctx, queued),                        // the inbox relay's
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		res, err := page(t, SafetyNetPageInput{Kind: NetNotifications, Before: later, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if res.Checked != 1 || !slices.Equal(res.Handed, []string{"SN-N1"}) || !res.Done || res.Next.Key != "SN-N1" || res.Next.At.IsZero() {
			t.Errorf("page %+v", res)
		}
		if len(hand.notified) != 1 || hand.notified[0].ID != "SN-N1" || hand.notified[0].TransactionID != "4200014" || !hand.startNew[0] {
			t.Errorf("notified %+v, startNew %v", hand.notified, hand.startNew)
		}
		// From the cursor on, nothing is left.
		res, err = page(t, SafetyNetPageInput{Kind: NetNotifications, After: res.Next, Before: later, Limit: 10})
		if err != nil || res.Checked != 0 || !res.Done {
			t.Errorf("after the cursor: %+v %v", res, err)
		}
	})

	t.Run("an unknown kind is an error", func(t *testing.T) {
		if _, err := page(t, SafetyNetPageInput{Kind: "payments"}); err == nil {
			t.Error("no error")
		}
	})
}
