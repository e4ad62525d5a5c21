package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The bench-only workflows measure what the Temporal server itself can do,
// next to the payment figures. They run on the tool's own worker, on a task
// queue of their own.

// benchSignal is the signal BenchWaitSignal waits for.
const benchSignal = "go"

// BenchInput says how many no-op activities a bench workflow runs.
type BenchInput struct {
	Activities int `json:"activities"`
}

// BenchWaitSignal waits for one signal and completes: the shape of a
// payment workflow started by SignalWithStart, minus the work.
func BenchWaitSignal(ctx workflow.Context, _ BenchInput) error {
	workflow.GetSignalChannel(ctx, benchSignal).Receive(ctx, nil)
	return nil
}

// BenchEmpty completes at once.
func BenchEmpty(workflow.Context, BenchInput) error { return nil }

// BenchActivities runs in.Activities no-op regular activities in a row, as
// the payment workflow runs its steps today.
func BenchActivities(ctx workflow.Context, in BenchInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	for range in.Activities {
		if err := workflow.ExecuteActivity(ctx, BenchNoop).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// BenchLocalActivities runs in.Activities no-op local activities in a row.
func BenchLocalActivities(ctx workflow.Context, in BenchInput) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	for range in.Activities {
		if err := workflow.ExecuteLocalActivity(ctx, BenchNoop).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// BenchNoop does nothing.
func BenchNoop(context.Context) error { return nil }

// ceilingResult is one measured ceiling.
type ceilingResult struct {
	Name    string
	What    string // the rate's unit, e.g. "calls/s"
	Ops     int    // calls or completed workflows
	Errors  int
	Elapsed time.Duration
	Latency latencies
	Note    string

	From, To time.Time // the measurement's window, for its CPU (cpuSampler)
}

// ceilingOptions bounds each ceiling measurement.
type ceilingOptions struct {
	Duration    time.Duration
	Concurrency int
	MaxOps      int
	Activities  int // activities per workflow in the activity ceilings
}

// Names of the ceilings that the report compares payflow with.
const (
	ceilEmpty      = "empty workflow, start to completion"
	ceilStart      = "StartWorkflow (empty bench workflow, not waiting for it)"
	ceilSignal     = "SignalWithStart (bench workflow waiting for a signal)"
	ceilSignalRate = "SignalWithStart at a fixed rate, open loop"
)

// find returns the ceiling called name, or nil.
func find(cs []ceilingResult, name string) *ceilingResult {
	for i := range cs {
		if strings.HasPrefix(cs[i].Name, name) {
			return &cs[i]
		}
	}
	return nil
}

// rate is the ceiling's operations per second.
func (c ceilingResult) rate() float64 {
	if c.Elapsed <= 0 {
		return 0
	}
	return float64(c.Ops) / c.Elapsed.Seconds()
}

// benchTemporal is the tool's own worker on the Temporal server being
// measured, with a task queue of its own, for the ceilings.
type benchTemporal struct {
	c      client.Client
	tq     string
	runID  string
	w      worker.Worker
	logger *slog.Logger
}

// startBenchTemporal starts the tool's own worker. It polls with as many
// workflow-task pollers as bin/worker does by default: with the SDK's 2,
// a task found no poller waiting often enough to be queued in matching's
// backlog, and every ceiling showed a p99 of over 2 s and an empty
// workflow about a fifth fewer completions per second (docs/benchmarks.md,
// "The ceilings' own worker") than the server gives a worker like ours.
func startBenchTemporal(c client.Client, runID string, pollers int, logger *slog.Logger) (*benchTemporal, error) {
	b := &benchTemporal{c: c, tq: "payflow-bench-" + runID, runID: runID, logger: logger}
	b.w = worker.New(c, b.tq, worker.Options{WorkerStopTimeout: 5 * time.Second, MaxConcurrentWorkflowTaskPollers: pollers})
	b.w.RegisterWorkflow(BenchWaitSignal)
	b.w.RegisterWorkflow(BenchEmpty)
	b.w.RegisterWorkflow(BenchActivities)
	b.w.RegisterWorkflow(BenchLocalActivities)
	b.w.RegisterActivity(BenchNoop)
	if err := b.w.Start(); err != nil {
		return nil, fmt.Errorf("bench worker: %w", err)
	}
	return b, nil
}

func (b *benchTemporal) stop() { b.w.Stop() }

func (b *benchTemporal) opts(prefix string, i int) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: fmt.Sprintf("bench/%s/%s/%d", b.runID, prefix, i), TaskQueue: b.tq}
}

// measureCeilings runs the bench workflows: completions of empty and
// activity-only workflows and SignalWithStart calls, from o.Concurrency
// callers each.
func (b *benchTemporal) measureCeilings(ctx context.Context, o ceilingOptions) ([]ceilingResult, error) {
	c, logger := b.c, b.logger
	var out []ceilingResult
	execute := func(name, prefix string, wf any, in BenchInput, o ceilingOptions) ceilingResult {
		logger.Info("ceiling: " + name)
		r := closedLoop(ctx, o, func(ctx context.Context, i int) error {
			wr, err := c.ExecuteWorkflow(ctx, b.opts(prefix, i), wf, in)
			if err != nil {
				return err
			}
			return wr.Get(ctx, nil)
		})
		r.Name, r.What = name, "completed/s"
		return r
	}
	// A short warm-up, not recorded: connections, pollers, caches.
	warm := o
	warm.Duration = min(o.Duration, 3*time.Second)
	execute("warm-up", "warm", BenchEmpty, BenchInput{}, warm)

	out = append(out,
		execute(ceilEmpty, "empty", BenchEmpty, BenchInput{}, o),
		execute(fmt.Sprintf("workflow with %d no-op activities", o.Activities), "act", BenchActivities, BenchInput{Activities: o.Activities}, o),
		execute(fmt.Sprintf("workflow with %d no-op local activities", o.Activities), "local", BenchLocalActivities, BenchInput{Activities: o.Activities}, o),
	)

	// SignalWithStart alone: the call the api makes for each notification.
	// Last, because the runs it starts complete after the calls.
	var lastID string
	var mu sync.Mutex
	logger.Info("ceiling: SignalWithStart")
	r := closedLoop(ctx, o, func(ctx context.Context, i int) error {
		so := b.opts("sws", i)
		_, err := c.SignalWithStartWorkflow(ctx, so.ID, benchSignal, nil, so, BenchWaitSignal, BenchInput{})
		if err == nil {
			mu.Lock()
			lastID = so.ID
			mu.Unlock()
		}
		return err
	})
	r.Name, r.What = ceilSignal, "calls/s"
	// Let the bench worker finish those runs before the payment load.
	if d, err := waitIdle(ctx, c, b.tq); err == nil {
		// Sustained: started and completed, over calls plus catch-up.
		r.Note = fmt.Sprintf("all runs completed %.1f s after the last call: %.0f/s sustained",
			d.Seconds(), float64(r.Ops)/(r.Elapsed+d).Seconds())
	} else if lastID != "" {
		logger.Warn("could not count running bench workflows; waiting for the last one only", "err", err)
		wait, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_ = c.GetWorkflow(wait, lastID, "").Get(wait, nil)
		cancel()
	}
	out = append([]ceilingResult{r}, out...)
	return out, ctx.Err()
}

// measureStart is StartWorkflow alone, from o.Concurrency callers: what
// POST /orders asks of Temporal per order. The runs complete in their
// first task; it returns once they have, so that the next measurement
// does not queue behind them.
func (b *benchTemporal) measureStart(ctx context.Context, o ceilingOptions) ceilingResult {
	b.logger.Info("ceiling: StartWorkflow")
	st := closedLoop(ctx, o, func(ctx context.Context, i int) error {
		_, err := b.c.ExecuteWorkflow(ctx, b.opts("start", i), BenchEmpty, BenchInput{})
		return err
	})
	st.Name, st.What = ceilStart, "calls/s"
	if d, err := waitIdle(ctx, b.c, b.tq); err == nil {
		st.Note = fmt.Sprintf("all runs completed %.1f s after the last call", d.Seconds())
	}
	return st
}

// measureSignalRate is SignalWithStart at a fixed rate, open loop, for
// o.Duration: the raw call's latency at the rate (and over the length) the
// api's acknowledgement is measured at.
func (b *benchTemporal) measureSignalRate(ctx context.Context, rate float64, o ceilingOptions) ceilingResult {
	b.logger.Info("ceiling: SignalWithStart at a fixed rate", "rate", rate)
	r := openLoop(ctx, rate, o.Duration, func(ctx context.Context, i int) error {
		so := b.opts("swsrate", i)
		_, err := b.c.SignalWithStartWorkflow(ctx, so.ID, benchSignal, nil, so, BenchWaitSignal, BenchInput{})
		return err
	})
	r.Name, r.What = fmt.Sprintf("%s (%.0f/s)", ceilSignalRate, rate), "calls/s"
	if _, err := waitIdle(ctx, b.c, b.tq); err != nil {
		b.logger.Warn("could not count running bench workflows", "err", err)
	}
	return r
}

// openLoop calls op at rate per second for d, whatever the earlier calls
// do, and measures each successful call.
func openLoop(ctx context.Context, rate float64, d time.Duration, op func(context.Context, int) error) ceilingResult {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		wg   sync.WaitGroup
		end  time.Time
	)
	start := time.Now()
	n := max(1, int(rate*d.Seconds()))
	for i := range n {
		if sleepCtx(ctx, time.Until(start.Add(time.Duration(float64(i)/rate*float64(time.Second))))) != nil {
			break
		}
		wg.Go(func() {
			t := time.Now()
			err := op(ctx, i)
			dt := time.Since(t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, dt)
			end = time.Now()
		})
	}
	wg.Wait()
	return ceilingResult{Ops: len(lat), Errors: errs, Elapsed: end.Sub(start), Latency: summarize(lat), From: start, To: end}
}

// waitIdle waits, for at most two minutes, until no workflow on tq is
// running, as the visibility store sees it.
func waitIdle(ctx context.Context, c client.Client, tq string) (time.Duration, error) {
	q := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running'", tq)
	return poll(ctx, 2*time.Minute, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		return err == nil && resp.GetCount() == 0, err
	})
}

// poll calls check, waiting every between calls, until it reports done,
// for at most limit, and says how long that took. An error from check
// ends it.
func poll(ctx context.Context, limit, every time.Duration, check func(context.Context) (bool, error)) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		done, err := check(ctx)
		if err != nil || done {
			return time.Since(start), err
		}
		if err := sleepCtx(ctx, every); err != nil {
			return time.Since(start), err
		}
	}
}

// closedLoop runs op from o.Concurrency goroutines until o.Duration passes
// or o.MaxOps calls were made, and measures each successful call.
func closedLoop(ctx context.Context, o ceilingOptions, op func(context.Context, int) error) ceilingResult {
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second) // calls in flight at the end may finish
	defer cancel()
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		next int
		wg   sync.WaitGroup
	)
	start := time.Now()
	stopAt := start.Add(o.Duration)
	var end time.Time
	for range o.Concurrency {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= o.MaxOps || time.Now().After(stopAt) || ctx.Err() != nil {
					return
				}
				t := time.Now()
				err := op(ctx, i)
				d := time.Since(t)
				mu.Lock()
				if err != nil && !errors.Is(err, context.Canceled) {
					errs++
				} else if err == nil {
					lat = append(lat, d)
					end = time.Now()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ceilingResult{Ops: len(lat), Errors: errs, Elapsed: end.Sub(start), Latency: summarize(lat), From: start, To: end}
}

// waitVisible waits, for at most limit, until visibility lists n runs
// whose workflow id starts with prefix. A setup's starts leave the server
// a visibility record each to write after the start has returned (in the
// same SQLite file on the dev server); the load that follows is not to pay
// for that.
func waitVisible(ctx context.Context, c client.Client, prefix string, n int, limit time.Duration) (time.Duration, error) {
	query := fmt.Sprintf("WorkflowId STARTS_WITH '%s'", prefix)
	var seen int64
	d, err := poll(ctx, limit, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query})
		seen = resp.GetCount()
		return err == nil && seen >= int64(n), err
	})
	if err != nil {
		return d, fmt.Errorf("%d of %d visible: %w", seen, n, err)
	}
	return d, nil
}

// waitBacklog waits, for at most limit, until the workflow tasks of tq
// have been taken by its workers (the server's approximate backlog is 0
// twice in a row): the runs a setup started have run their first task.
func waitBacklog(ctx context.Context, c client.Client, tq string, limit time.Duration) (time.Duration, error) {
	zero := 0
	return poll(ctx, limit, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		resp, err := c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace: "default", TaskQueue: &taskqueuepb.TaskQueue{Name: tq},
			TaskQueueType: enums.TASK_QUEUE_TYPE_WORKFLOW, ReportStats: true,
		})
		if err != nil {
			return false, err
		}
		if resp.GetStats().GetApproximateBacklogCount() == 0 {
			zero++
		} else {
			zero = 0
		}
		return zero >= 2, nil
	})
}
