package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/workflows"
)

// runIDs lists the runs of an order's workflow, newest first.
func runIDs(t *testing.T, no string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := st.tc.ListWorkflow(ctx, listRequest(`WorkflowId="`+workflows.WorkflowID(no)+`"`))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range resp.GetExecutions() {
		ids = append(ids, e.GetExecution().GetRunId())
	}
	return ids
}

// recordHistory writes a run's history as the replay test reads it, when
// RECORD_HISTORIES names a directory (workflows/testdata): how the
// recorded histories of the current workflow version are made.
func recordHistory(t *testing.T, no, runID, name string) {
	t.Helper()
	dir := os.Getenv("RECORD_HISTORIES")
	if dir == "" {
		return
	}
	h := &historypb.History{Events: runHistory(t, no, runID)}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A run hammered with syncs grows until Temporal suggests continuing as
// new (after 150 events in these tests); it continues, carrying its state,
// and the order is then paid once by its notification. Then a partial
// refund follows through the same workflow.
func TestLongRunContinuesAsNew(t *testing.T) {
	d := st.v2 // its own queries wait an hour: only syncs and the notification act
	no := uniqueNo("CONTINUE")
	d.createOrder(t, no, 1200)
	for range 60 {
		if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no+"/sync", nil, nil); code != http.StatusAccepted {
			t.Fatalf("sync = %d", code)
		}
	}
	eventually(t, 60*time.Second, "the order's run to continue as new", func() bool { return len(runIDs(t, no)) >= 2 })
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 1200})
	o := d.waitStatus(t, no, payment.StatusPaid)
	assertPaidOnce(t, o, paid.TransactionID)
	if code, _ := d.refund(t, no, map[string]any{"out_refund_no": "RC-" + no, "amount_fen": 200}); code != http.StatusCreated {
		t.Fatalf("refund = %d", code)
	}
	d.waitRefund(t, no, "RC-"+no, payment.RefundSuccess)
	eventually(t, 60*time.Second, "the refund's run to end", func() bool {
		desc, err := st.tc.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(no), "")
		return err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED
	})
	ids := runIDs(t, no)
	// Newest first: the refund's run, the continued run that was paid, and
	// the first run that continued as new.
	recordHistory(t, no, ids[len(ids)-1], "history_oneloop_continued_as_new.json")
	recordHistory(t, no, ids[0], "history_oneloop_refund.json")
	if len(ids) >= 3 {
		recordHistory(t, no, ids[len(ids)-2], "history_oneloop_carried_then_paid.json")
	}
}
