package worker

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/workflows"
)

// flakyTemporal is a Temporal server that has just restarted: its first
// answers to the worker's set-up calls are errors. Only the methods below
// are called.
type flakyTemporal struct {
	client.Client
	ops   *flakyOperator
	sched *flakySchedules
}

func (f *flakyTemporal) OperatorService() operatorservice.OperatorServiceClient { return f.ops }
func (f *flakyTemporal) ScheduleClient() client.ScheduleClient                  { return f.sched }

type flakyOperator struct {
	operatorservice.OperatorServiceClient
	fails, calls int
}

func (o *flakyOperator) ListSearchAttributes(context.Context, *operatorservice.ListSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	o.calls++
	if o.calls <= o.fails {
		return nil, serviceerror.NewUnavailable("connection refused")
	}
	have := map[string]enums.IndexedValueType{}
	for _, k := range workflows.SearchAttributeKeys() {
		have[k.GetName()] = k.GetValueType()
	}
	return &operatorservice.ListSearchAttributesResponse{CustomAttributes: have}, nil
}

type flakySchedules struct {
	client.ScheduleClient
	fails, creates int
}

func (s *flakySchedules) Create(context.Context, client.ScheduleOptions) (client.ScheduleHandle, error) {
	s.creates++
	if s.creates <= s.fails {
		// What a dev server answered a worker started right after it.
		return nil, serviceerror.NewCanceled("stream terminated by RST_STREAM with error code: CANCEL")
	}
	return nil, nil
}

func (s *flakySchedules) GetHandle(context.Context, string) client.ScheduleHandle {
	return noSchedule{}
}

type noSchedule struct{ client.ScheduleHandle }

func (noSchedule) Delete(context.Context) error {
	return serviceerror.NewNotFound("schedule not found")
}

// A worker started while Temporal is still coming back does not exit on
// its first refusals: it registers the search attributes and the safety
// net's schedule once Temporal answers (the chaos run found workers that
// exited on a cancelled stream right after a Temporal restart).
func TestSetUpTemporalWaitsForARestartedServer(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Config{TemporalNamespace: "default", TaskQueue: "payments", ReconcileInterval: time.Minute, ReconcileGrace: time.Minute}
	tc := &flakyTemporal{ops: &flakyOperator{fails: 1}, sched: &flakySchedules{fails: 2}}
	if err := setUpTemporal(context.Background(), tc, cfg, logger); err != nil {
		t.Fatalf("set-up = %v, want it to wait for Temporal", err)
	}
	if tc.ops.calls != 4 || tc.sched.creates != 3 {
		t.Fatalf("search attributes listed %d times, schedule created %d times; want 4 and 3", tc.ops.calls, tc.sched.creates)
	}

	// A server that never answers: the worker gives up when its context
	// ends, saying what it was doing.
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	tc = &flakyTemporal{ops: &flakyOperator{fails: 1 << 30}, sched: &flakySchedules{}}
	err := setUpTemporal(ctx, tc, cfg, logger)
	if err == nil || !strings.Contains(err.Error(), "temporal set-up") || tc.ops.calls < 2 {
		t.Fatalf("set-up against a dead server = %v after %d calls", err, tc.ops.calls)
	}
}
