package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/payflow/payflow/activities"
)

func TestReconcileStartsOrphans(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Reconciler{})
	env.RegisterWorkflow(ReconcileWorkflow)
	env.RegisterWorkflow(PaymentWorkflow)
	now := env.Now()
	exp := now.Add(10 * time.Minute)
	env.OnActivity(r.FindOrphans, mock.Anything, mock.MatchedBy(func(in activities.FindOrphansInput) bool {
		return in.CreatedBefore.Equal(now.Add(-time.Minute)) && in.Limit == 500
	})).Return(activities.FindOrphansResult{Checked: 3, Orphans: []activities.Orphan{
		{OutTradeNo: "OLD0000001", CreatedAt: now.Add(-time.Hour)},
		{OutTradeNo: "OLD0000002", CreatedAt: now.Add(-5 * time.Minute), ExpiresAt: &exp, TradeType: "NATIVE"},
	}}, nil).Once()
	var inputs []PaymentInput
	env.OnWorkflow(PaymentWorkflow, mock.Anything, mock.Anything).Return(PaymentResult{}, nil).Run(func(args mock.Arguments) {
		inputs = append(inputs, args.Get(1).(PaymentInput))
	})

	env.ExecuteWorkflow(ReconcileWorkflow, ReconcileInput{Grace: time.Minute, OrderTimeout: 30 * time.Minute, QueryAfter: time.Minute})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ReconcileResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Checked != 3 || len(res.Started) != 2 || res.Started[0] != "OLD0000001" {
		t.Fatalf("result = %+v", res)
	}
	if len(inputs) != 2 {
		t.Fatalf("payment workflows started = %d", len(inputs))
	}
	// An order stored without expiry gets the default timeout from its
	// creation (already past: it will be queried once and closed).
	lc := inputs[0].Lifecycle
	if lc == nil || !lc.ExpiresAt.Equal(now.Add(-time.Hour).Add(30*time.Minute)) || lc.Prepay {
		t.Fatalf("first lifecycle = %+v", lc)
	}
	if lc := inputs[1].Lifecycle; !lc.ExpiresAt.Equal(exp) || !lc.Prepay {
		t.Fatalf("second lifecycle = %+v", lc)
	}
}
