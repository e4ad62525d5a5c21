package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
)

// maxFaultBackoff caps the wait between attempts at a WeChat call that
// gets no trustworthy answer (the wire, WeChat's 5xx or 429, an answer
// whose signature does not check out, our own clock or keys). Such faults
// say nothing about the payment: the call is repeated for as long as the
// payment can still be decided, and never decides anything.
const maxFaultBackoff = 5 * time.Minute

// queryOptions: WeChat's order query confirming a payment. Faults are
// retried without limit; only WeChat's signed "no such order" is final.
func queryOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        maxFaultBackoff,
			NonRetryableErrorTypes: []string{activities.ErrTypeOrderNotExist, activities.ErrTypeQueryRejected},
		},
	})
}

// closeOptions: closing at WeChat. A few quick attempts; if WeChat does not
// answer clearly the order stays PENDING and the workflow tries again later
// with its own backoff, handling other messages meanwhile.
func closeOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		Summary:             "close at WeChat",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{activities.ErrTypeOrderPaid},
		},
	})
}

// storeOptions: short PostgreSQL steps, idempotent by key, retried until
// the database is back.
func storeOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrTypeOrderNotFound},
		},
	})
}

// pollOptions: our own periodic query. A few quick attempts; if WeChat
// stays unreachable the next scheduled poll tries again, so the loop is
// never stuck behind one query.
func pollOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{activities.ErrTypeOrderNotExist, activities.ErrTypeQueryRejected},
		},
	})
}

// prepayOptions: retried until the order would expire anyway; WeChat
// answers a repeated identical prepay with the same prepay_id.
func prepayOptions(ctx workflow.Context, left time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: max(left, time.Minute),
		Summary:                "prepay at WeChat",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrTypePrepay, activities.ErrTypePrepayConflict, activities.ErrTypeOrderPaid, activities.ErrTypeOrderNotFound},
		},
	})
}

// localOptions mirror storeOptions and queryOptions for local activities.
// ScheduleToClose is long so that, as with regular activities, a database
// or WeChat outage is outlasted rather than failing the payment.
func localOptions(ctx workflow.Context, summary string, nonRetryable ...string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: 365 * 24 * time.Hour, // as long as it takes: a fault never decides

		Summary: summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        maxFaultBackoff,
			NonRetryableErrorTypes: nonRetryable,
		},
	})
}

// storeStep runs a short PostgreSQL step.
func (p *flow) storeStep(ctx workflow.Context, summary string, fn, in any) workflow.Future {
	if p.local {
		return workflow.ExecuteLocalActivity(localOptions(ctx, summary, activities.ErrTypeOrderNotFound), fn, in)
	}
	return workflow.ExecuteActivity(storeOptions(ctx, summary), fn, in)
}

// queryStep asks WeChat's order query after a notification.
func (p *flow) queryStep(ctx workflow.Context, summary string, in any) workflow.Future {
	if p.local {
		return workflow.ExecuteLocalActivity(localOptions(ctx, summary, activities.ErrTypeOrderNotExist, activities.ErrTypeQueryRejected), a.QueryOrder, in)
	}
	return workflow.ExecuteActivity(queryOptions(ctx, summary), a.QueryOrder, in)
}
