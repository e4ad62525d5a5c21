package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/workflows"
)

// EnsureReconcileSchedule creates the Temporal Schedule that runs
// ReconcileWorkflow every RECONCILE_INTERVAL. An existing schedule is kept:
// several workers starting at once create it once.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger) error {
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      workflows.ReconcileScheduleID,
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: cfg.ReconcileInterval}}},
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID:        workflows.ReconcileScheduleID,
			Workflow:  workflows.ReconcileWorkflow,
			TaskQueue: cfg.TaskQueue,
			Args: []any{workflows.ReconcileInput{
				Grace: cfg.ReconcileGrace, OrderTimeout: cfg.OrderTimeout, QueryAfter: cfg.OrderQueryAfter,
			}},
		},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create reconciliation schedule: %w", err)
	}
	logger.Info("created reconciliation schedule", "id", workflows.ReconcileScheduleID, "every", cfg.ReconcileInterval.String())
	return nil
}
