package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/workflows"
)

// devServer starts the Temporal CLI's dev server (bin/temporal, built by
// `make temporal`, or $TEMPORAL_BIN) on loopback ports, or skips the test
// when there is none.
func devServer(t *testing.T) client.Client {
	t.Helper()
	bin := os.Getenv("TEMPORAL_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../bin/temporal")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Temporal CLI at %s (make temporal)", bin)
	}
	port := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, p, _ := net.SplitHostPort(l.Addr().String())
		return p
	}
	grpc, ui := port(), port()
	cmd := exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", grpc, "--ui-port", ui, "--log-level", "error")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		c, err := client.DialContext(ctx, client.Options{HostPort: "127.0.0.1:" + grpc})
		if err == nil {
			if _, err = c.CheckHealth(ctx, &client.CheckHealthRequest{}); err == nil {
				t.Cleanup(c.Close)
				return c
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("dev server not up: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// A change of BILL_RECONCILE_AT updates the existing schedule at the next
// start (describe, then update); the same setting leaves it alone; off
// deletes it.
func TestEnsureBillSchedule(t *testing.T) {
	c := devServer(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Config{TaskQueue: "bills-q", BillPollInterval: 30 * time.Minute, BillReconcileAt: config.DailyTime{Hour: 10, Minute: 30}}
	describe := func() *client.ScheduleDescription {
		t.Helper()
		d, err := c.ScheduleClient().GetHandle(ctx, workflows.BillScheduleID(cfg.TaskQueue)).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	check := func(d *client.ScheduleDescription, hourUTC, minute int, poll time.Duration, beijing string) {
		t.Helper()
		cal := d.Schedule.Spec.Calendars
		if len(cal) != 1 || !single(cal[0].Hour, hourUTC) || !single(cal[0].Minute, minute) {
			t.Fatalf("calendars %+v", cal)
		}
		a := d.Schedule.Action.(*client.ScheduleWorkflowAction)
		var in workflows.BillScheduleInput
		if err := converter.GetDefaultDataConverter().FromPayload(a.Args[0].(*commonpb.Payload), &in); err != nil || in.PollInterval != poll {
			t.Fatalf("input %+v, %v", in, err)
		}
		if a.TaskQueue != "bills-q" || d.Schedule.Policy.Overlap != enums.SCHEDULE_OVERLAP_POLICY_SKIP {
			t.Fatalf("action %+v policy %+v", a, d.Schedule.Policy)
		}
		next := d.Info.NextActionTimes
		bj := time.FixedZone("CST", 8*3600)
		if len(next) == 0 || next[0].In(bj).Format("15:04") != beijing || next[1].Sub(next[0]) != 24*time.Hour {
			t.Fatalf("next actions %v, want daily at %s Beijing", next, beijing)
		}
	}
	if err := EnsureBillSchedule(ctx, c, cfg, logger); err != nil {
		t.Fatal(err)
	}
	check(describe(), 2, 30, 30*time.Minute, "10:30")
	if !billScheduleMatches(describe(), cfg.BillReconcileAt, cfg) {
		t.Fatal("the schedule just made does not match its setting")
	}
	// A second worker with the same setting changes nothing.
	if err := EnsureBillSchedule(ctx, c, cfg, logger); err != nil {
		t.Fatal(err)
	}
	if u := describe().Info.LastUpdateAt; u.Unix() > 0 {
		t.Fatalf("updated at %v with an unchanged setting", u)
	}
	// A deployment on another task queue in the same namespace has a
	// schedule of its own and leaves this one alone.
	other := cfg
	other.TaskQueue = "bills-q2"
	if err := EnsureBillSchedule(ctx, c, other, logger); err != nil {
		t.Fatal(err)
	}
	if d, err := c.ScheduleClient().GetHandle(ctx, workflows.BillScheduleID("bills-q2")).Describe(ctx); err != nil ||
		d.Schedule.Action.(*client.ScheduleWorkflowAction).TaskQueue != "bills-q2" {
		t.Fatalf("the other task queue's schedule: %v", err)
	}
	if u := describe().Info.LastUpdateAt; u.Unix() > 0 {
		t.Fatalf("updated at %v by another task queue's worker", u)
	}
	// The setting changed: the next start updates the schedule.
	cfg.BillReconcileAt, cfg.BillPollInterval = config.DailyTime{Hour: 7, Minute: 5}, 10*time.Minute
	if err := EnsureBillSchedule(ctx, c, cfg, logger); err != nil {
		t.Fatal(err)
	}
	d := describe()
	check(d, 23, 5, 10*time.Minute, "07:05")
	if d.Info.LastUpdateAt.Unix() <= 0 {
		t.Fatal("not updated")
	}
	cfg.BillReconcileAt = config.DailyTime{Off: true}
	for range 2 { // off, and off again
		if err := EnsureBillSchedule(ctx, c, cfg, logger); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.ScheduleClient().GetHandle(ctx, workflows.BillScheduleID(cfg.TaskQueue)).Describe(ctx)
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Fatalf("off: describe %v", err)
	}
}
