package metrics

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
)

// ActivityInterceptor counts every activity execution, with its outcome, in
// m (ActivityAttempt, labelled by activity type). Register it once in the
// worker's options: worker.Options{Interceptors: []interceptor.WorkerInterceptor{metrics.ActivityInterceptor(m)}}.
// An activity that completes asynchronously (activity.ErrResultPending)
// counts as an attempt, not a failure; one that panics counts as a failure
// and the panic goes on to the SDK.
func ActivityInterceptor(m *Metrics) interceptor.WorkerInterceptor {
	return &workerInterceptor{m: m}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	m *Metrics
}

func (w *workerInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &activityInbound{m: w.m}
	i.Next = next
	return i
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	m *Metrics
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (result any, err error) {
	name := activity.GetInfo(ctx).ActivityType.Name
	completed := false
	defer func() {
		if !completed {
			// Panicking: count a failure, let the SDK turn the panic
			// into the activity's error.
			a.m.ActivityAttempt(name, errPanicked)
		}
	}()
	result, err = a.Next.ExecuteActivity(ctx, in)
	completed = true
	if err == activity.ErrResultPending {
		a.m.ActivityAttempt(name, nil)
	} else {
		a.m.ActivityAttempt(name, err)
	}
	return result, err
}

type panicError struct{}

func (panicError) Error() string { return "activity panicked" }

var errPanicked error = panicError{}
