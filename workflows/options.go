package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
)

// queryOptions: WeChat's order query. Network trouble and 5xx are retried
// without limit (the order must not be decided on a flaky link); an order
// WeChat does not know, or an answer that does not verify, is final.
func queryOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrTypeOrderNotExist, activities.ErrTypeQueryRejected},
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
			NonRetryableErrorTypes: []string{activities.ErrTypePrepay, activities.ErrTypeOrderPaid, activities.ErrTypeOrderNotFound},
		},
	})
}

// versionLocalActivities marks the change that runs a payment's short steps
// as local activities: the worker runs them inside the workflow task, so a
// notified payment takes one workflow task instead of one per step. Older
// histories replay with regular activities.
const versionLocalActivities = "local-activities"

// localOptions mirror storeOptions and queryOptions for local activities.
// ScheduleToClose is long so that, as with regular activities, a database
// or WeChat outage is outlasted rather than failing the payment.
func localOptions(ctx workflow.Context, summary string, nonRetryable ...string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: 24 * time.Hour,
		Summary:                summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
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
