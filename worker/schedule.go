package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/workflows"
)

// legacyReconcileScheduleID is the safety net's schedule before it was
// renamed; a worker deletes it so two passes never run side by side.
const legacyReconcileScheduleID = "payflow-reconcile"

// safetyNetSchedule is the schedule the configuration asks for.
func safetyNetSchedule(cfg config.Config) (client.ScheduleSpec, *client.ScheduleWorkflowAction) {
	// A pass must end within its interval (overlapping passes are skipped):
	// it stops at 80 % of it and the next one resumes where it stopped.
	budget := cfg.ReconcileInterval * 8 / 10
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: cfg.ReconcileInterval}}}
	action := &client.ScheduleWorkflowAction{
		ID:                       workflows.SafetyNetScheduleID(cfg.TaskQueue),
		Workflow:                 workflows.SafetyNetWorkflow,
		TaskQueue:                cfg.TaskQueue,
		WorkflowExecutionTimeout: cfg.ReconcileInterval + time.Minute,
		Args:                     []any{workflows.SafetyNetInput{Grace: cfg.ReconcileGrace, Budget: budget}},
	}
	return spec, action
}

// EnsureSafetyNetSchedule creates the Temporal Schedule that runs the safety
// net every RECONCILE_INTERVAL, or updates it when the settings changed
// since it was made (interval, grace, task queue): several workers starting
// at once converge on one schedule with the latest settings.
func EnsureSafetyNetSchedule(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger) error {
	sc := c.ScheduleClient()
	if err := sc.GetHandle(ctx, legacyReconcileScheduleID).Delete(ctx); err == nil {
		logger.Info("deleted the safety net's old schedule", "id", legacyReconcileScheduleID)
	}
	spec, action := safetyNetSchedule(cfg)
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:      workflows.SafetyNetScheduleID(cfg.TaskQueue),
		Spec:    spec,
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action:  action,
	})
	if err == nil {
		logger.Info("created safety net schedule", "id", workflows.SafetyNetScheduleID(cfg.TaskQueue), "every", cfg.ReconcileInterval.String())
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create safety net schedule: %w", err)
	}
	return updateSchedule(ctx, c, workflows.SafetyNetScheduleID(cfg.TaskQueue), spec, action, logger)
}

// updateSchedule brings an existing schedule to spec and action when they
// differ from what it has.
func updateSchedule(ctx context.Context, c client.Client, id string, spec client.ScheduleSpec, action *client.ScheduleWorkflowAction, logger *slog.Logger) error {
	h := c.ScheduleClient().GetHandle(ctx, id)
	changed := false
	err := h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			if sameSpec(s.Spec, &spec) && sameAction(s.Action, action) {
				return nil, temporal.ErrSkipScheduleUpdate // nothing to change
			}
			changed = true
			s.Spec = &spec
			s.Action = action
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return fmt.Errorf("update schedule %s: it vanished while starting; restart the worker", id)
	}
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", id, err)
	}
	if changed {
		logger.Info("updated schedule to the current settings", "id", id)
	}
	return nil
}

func sameSpec(have, want *client.ScheduleSpec) bool {
	if have == nil {
		return false
	}
	if len(have.Intervals) != len(want.Intervals) || len(have.Calendars) != len(want.Calendars) {
		return false
	}
	for i := range want.Intervals {
		if have.Intervals[i].Every != want.Intervals[i].Every || have.Intervals[i].Offset != want.Intervals[i].Offset {
			return false
		}
	}
	for i := range want.Calendars {
		if !reflect.DeepEqual(have.Calendars[i], want.Calendars[i]) {
			return false
		}
	}
	return have.TimeZoneName == want.TimeZoneName
}

// sameAction compares the workflow, task queue and arguments; a described
// action's arguments come back as payloads, decoded here for comparison.
func sameAction(have client.ScheduleAction, want *client.ScheduleWorkflowAction) bool {
	h, ok := have.(*client.ScheduleWorkflowAction)
	if !ok || h.TaskQueue != want.TaskQueue || h.WorkflowExecutionTimeout != want.WorkflowExecutionTimeout {
		return false
	}
	if name, ok := h.Workflow.(string); !ok || name != workflowName(want.Workflow) {
		return false
	}
	if len(h.Args) != len(want.Args) {
		return false
	}
	dc := converter.GetDefaultDataConverter()
	for i, w := range want.Args {
		wantPayload, err := dc.ToPayload(w)
		if err != nil {
			return false
		}
		havePayload, ok := h.Args[i].(interface{ GetData() []byte })
		if !ok || string(havePayload.GetData()) != string(wantPayload.GetData()) {
			return false
		}
	}
	return true
}

// workflowName is the registered name of a workflow function.
func workflowName(fn any) string {
	if s, ok := fn.(string); ok {
		return s
	}
	return runtimeName(fn)
}
