package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
	"github.com/payflow/payflow/workflows"
)

// setupBills registers the daily bill reconciliation (its workflows, and
// its activities acting on orders through orders, the gateway), makes the
// Schedule match BILL_RECONCILE_AT and starts the last-reconciled-day gauge
// from the database.
func setupBills(ctx context.Context, w sdkworker.Worker, c client.Client, st *store.Store, cfg config.Config,
	orders activities.OrderActions, m *metrics.Metrics, logger *slog.Logger) error {
	bills, err := NewBillSource(ctx, cfg)
	if err != nil {
		return err
	}
	w.RegisterWorkflow(workflows.BillReconcileWorkflow)
	w.RegisterWorkflow(workflows.BillScheduleWorkflow)
	w.RegisterActivity(&activities.BillActivities{
		Store: st, Bills: bills, Orders: orders, MchID: cfg.MchID, Metrics: m,
	})
	if err := EnsureBillSchedule(ctx, c, cfg, logger); err != nil {
		return err
	}
	if day, ok, err := st.LastReconciledBillDay(ctx, cfg.MchID); err != nil {
		logger.Warn("bill gauge: last reconciled day unknown", "err", err)
	} else if ok {
		if start, err := wechatpay.BillDay(day); err == nil {
			m.BillReconciled(start)
		}
	}
	return nil
}

// NewBillSource builds the trade bill client of the configured API
// version. Its HTTP client has no overall timeout: a busy day's bill takes
// longer than an API call, and the activity's context bounds the download.
func NewBillSource(ctx context.Context, cfg config.Config) (activities.BillSource, error) {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
	}
	switch cfg.APIVersion {
	case "v2":
		return &apiv2.Client{
			BaseURL: cfg.BaseURL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey,
			SignType: apiv2.SignTypeHMACSHA256, HTTP: &http.Client{Transport: transport},
		}, nil
	case "v3":
		if cfg.MchPrivateKeyFile == "" || cfg.MchCertSerial == "" || (cfg.PublicKeyFile == "" && cfg.PlatformCertDir == "") {
			return nil, errors.New("the v3 trade bill needs WECHATPAY_MCH_PRIVATE_KEY_FILE, WECHATPAY_MCH_CERT_SERIAL and WECHATPAY_PUBLIC_KEY_FILE")
		}
		keys, err := apiv3.LoadKeys(cfg.PublicKeyFile, cfg.PublicKeyID, cfg.PlatformCertDir)
		if err != nil {
			return nil, fmt.Errorf("WeChat Pay keys: %w", err)
		}
		priv, err := utils.LoadPrivateKeyWithPath(cfg.MchPrivateKeyFile)
		if err != nil {
			return nil, errors.New("WECHATPAY_MCH_PRIVATE_KEY_FILE: cannot load the merchant private key")
		}
		return apiv3.NewBillClient(ctx, apiv3.ClientConfig{
			BaseURL: cfg.BaseURL, MchID: cfg.MchID, MchCertSerial: cfg.MchCertSerial, MchPrivateKey: priv, Keys: keys,
			HTTP: &http.Client{Transport: transport},
		})
	}
	return nil, fmt.Errorf("WECHATPAY_API_VERSION must be v2 or v3, got %q", cfg.APIVersion)
}

// billScheduleWorkflowID is the id of the workflows the Schedule of
// taskQueue starts (Temporal appends the time of each).
func billScheduleWorkflowID(taskQueue string) string { return "bill-schedule/" + taskQueue }

// EnsureBillSchedule makes the Temporal Schedule match BILL_RECONCILE_AT:
// created when missing, updated when its time, task queue or input differ
// (a changed setting takes effect at the worker's next start), deleted
// when the setting is off. Shanghai keeps UTC+8 all year, so the Beijing
// time becomes a daily UTC calendar, which needs no time zone data on the
// server. Overlapping runs are skipped; missed days are caught up by the
// runs themselves (BillScheduleWorkflow).
func EnsureBillSchedule(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger) error {
	sc := c.ScheduleClient()
	id := workflows.BillScheduleID(cfg.TaskQueue)
	h := sc.GetHandle(ctx, id)
	at := cfg.BillReconcileAt
	if at.Off {
		err := h.Delete(ctx)
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete the bill schedule (BILL_RECONCILE_AT=off): %w", err)
		}
		logger.Info("deleted the bill reconciliation schedule", "id", id, "bill_reconcile_at", "off")
		return nil
	}
	spec := billSpec(at)
	action := &client.ScheduleWorkflowAction{
		ID:            billScheduleWorkflowID(cfg.TaskQueue),
		Workflow:      workflows.BillScheduleWorkflow,
		TaskQueue:     cfg.TaskQueue,
		Args:          []any{billScheduleInput(cfg)},
		StaticSummary: "reconcile yesterday (and missed days) against WeChat's trade bill",
	}
	desc, err := h.Describe(ctx)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		_, err = sc.Create(ctx, client.ScheduleOptions{
			ID:            id,
			Spec:          spec,
			Action:        action,
			Overlap:       enums.SCHEDULE_OVERLAP_POLICY_SKIP,
			CatchupWindow: 24 * time.Hour,
			Note:          "BILL_RECONCILE_AT " + at.String() + " Asia/Shanghai",
		})
		if err == nil {
			logger.Info("created the bill reconciliation schedule", "id", id, "bill_reconcile_at", at.String())
			return nil
		}
		if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return fmt.Errorf("create the bill schedule: %w", err)
		}
		// Another worker created it meanwhile: make sure it says the same.
		if desc, err = h.Describe(ctx); err != nil {
			return fmt.Errorf("describe the bill schedule: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("describe the bill schedule: %w", err)
	}
	if billScheduleMatches(desc, at, cfg) {
		return nil
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			s.Action = action
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = enums.SCHEDULE_OVERLAP_POLICY_SKIP
			s.Policy.CatchupWindow = 24 * time.Hour
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update the bill schedule: %w", err)
	}
	logger.Info("updated the bill reconciliation schedule", "id", id, "bill_reconcile_at", at.String())
	return nil
}

// billSpec is every day at the Beijing time, as a UTC calendar.
func billSpec(at config.DailyTime) client.ScheduleSpec {
	h, m := at.UTC()
	return client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{{
		Hour:    []client.ScheduleRange{{Start: h}},
		Minute:  []client.ScheduleRange{{Start: m}},
		Comment: at.String() + " Asia/Shanghai (UTC+8, no daylight saving)",
	}}}
}

func billScheduleInput(cfg config.Config) workflows.BillScheduleInput {
	return workflows.BillScheduleInput{PollInterval: cfg.BillPollInterval}
}

// billScheduleMatches reports whether an existing schedule already fires
// at the configured time with this worker's task queue and input.
func billScheduleMatches(desc *client.ScheduleDescription, at config.DailyTime, cfg config.Config) bool {
	s := desc.Schedule
	if s.Spec == nil || len(s.Spec.Calendars) != 1 || len(s.Spec.Intervals) != 0 || len(s.Spec.CronExpressions) != 0 ||
		(s.Spec.TimeZoneName != "" && s.Spec.TimeZoneName != "UTC") {
		return false
	}
	h, m := at.UTC()
	cal := s.Spec.Calendars[0]
	if !single(cal.Hour, h) || !single(cal.Minute, m) || (len(cal.Second) > 0 && !single(cal.Second, 0)) {
		return false
	}
	a, ok := s.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.TaskQueue != cfg.TaskQueue || len(a.Args) != 1 || s.Policy == nil || s.Policy.Overlap != enums.SCHEDULE_OVERLAP_POLICY_SKIP {
		return false
	}
	// Describe answers the input as the payload the server keeps.
	p, ok := a.Args[0].(*commonpb.Payload)
	var in workflows.BillScheduleInput
	if !ok || converter.GetDefaultDataConverter().FromPayload(p, &in) != nil {
		return false
	}
	return in == billScheduleInput(cfg)
}

// single reports whether ranges match exactly the one value v.
func single(ranges []client.ScheduleRange, v int) bool {
	return len(ranges) == 1 && ranges[0].Start == v && (ranges[0].End == 0 || ranges[0].End == v)
}
