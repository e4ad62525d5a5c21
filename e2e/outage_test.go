package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stacklib "github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/workflows"
)

// With Temporal down, the api still acknowledges every verified
// notification, because it commits them to the PostgreSQL inbox; when
// Temporal is back the worker's relay hands them to their workflows and
// every order is PAID exactly once.
func TestTemporalOutageInbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, err := stacklib.Start(ctx, stacklib.Options{
		Dir: filepath.Join(t.TempDir(), "outage"), BinDir: st.BinDir,
		Deployments: []stacklib.DeploymentOptions{{
			APIVersion: "v2", NotifyVersion: "v2", TaskQueue: "e2e-outage",
			OrderQueryAfter: time.Hour, // only notifications may pay these orders
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if t.Failed() {
			s.DumpLogs(os.Stderr, 20000) // bytes of each log
		}
	}()
	d := newDeployment(s.Deployments[0])
	d.temporal = s.Client
	registerAPI(d)

	const n = 5
	nos := make([]string, n)
	for i := range nos {
		nos[i] = fmt.Sprintf("OUTAGE%d%s", i, uniqueNo("")[:8])
		d.createOrder(t, nos[i], int64(100+i))
	}
	// The orders wait for their payment, as they would when an outage
	// begins: each run has no workflow task pending, having done its first
	// or waiting for it (a plain order's first task is delayed until its
	// first query is due). (A task in flight at a crash is the Temporal
	// server's own recovery, which the chaos run covers; this test is
	// about the inbox.)
	for _, no := range nos {
		eventually(t, 30*time.Second, "the run of "+no+" to wait", func() bool {
			desc, err := s.Client.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
			if err != nil || desc.GetPendingWorkflowTask() != nil {
				return false
			}
			info := desc.GetWorkflowExecutionInfo()
			delayed := info.GetExecutionTime().AsTime().After(time.Now())
			return delayed || info.GetHistoryLength() > 3
		})
	}
	// Temporal goes away.
	if err := s.Temporal.Kill(); err != nil {
		t.Fatal(err)
	}
	txids := make([]string, n)
	for i, no := range nos {
		txids[i] = d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 100 + i, "duplicates": 1}).TransactionID
	}
	// Every notification is acknowledged SUCCESS at once: durable in the inbox.
	for _, no := range nos {
		tr := d.waitDelivered(t, no, 2)
		for _, del := range tr.Deliveries {
			if len(del.Attempts) != 1 || del.Attempts[0].HTTPStatus != http.StatusOK {
				t.Fatalf("%s: delivery = %+v, want acknowledged at the first attempt", no, del)
			}
		}
		o := d.getOrder(t, no)
		if o.Status != payment.StatusPending || len(o.Notifications) != 1 || o.Notifications[0].InboxState != "pending" ||
			o.Notifications[0].ReceivedCount != 2 {
			t.Fatalf("%s while Temporal is down: %+v", no, o)
		}
	}

	// Temporal comes back (its state kept): the relay delivers.
	if err := s.Temporal.Start(); err != nil {
		t.Fatal(err)
	}
	for i, no := range nos {
		o := d.waitStatus(t, no, payment.StatusPaid)
		assertPaidOnce(t, o, txids[i])
		if r := o.Notifications[0]; r.InboxState != "delivered" || !strings.HasPrefix(r.Outcome, "inbox, then ") {
			t.Fatalf("%s notification = %+v", no, r)
		}
	}
}
