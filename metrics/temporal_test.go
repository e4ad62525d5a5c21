package metrics_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/metrics"
)

// ChargeWorkflow charges each amount once; failed charges are skipped.
func ChargeWorkflow(ctx workflow.Context, amounts []int64) (int64, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var total int64
	for _, a := range amounts {
		var got int64
		if err := workflow.ExecuteActivity(ctx, Charge, a).Get(ctx, &got); err != nil {
			continue
		}
		total += got
	}
	return total, nil
}

// temporalCLI finds the Temporal CLI that `make temporal` builds.
func temporalCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Temporal dev server")
	}
	bin := os.Getenv("TEMPORAL_BIN")
	if bin == "" {
		bin = "../bin/temporal"
	}
	bin, _ = filepath.Abs(bin)
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Temporal CLI at %s (run `make temporal` or set TEMPORAL_BIN)", bin)
	}
	return bin
}

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// startDevServer runs an in-memory Temporal dev server on loopback for the
// test and returns its frontend address.
func startDevServer(t *testing.T, bin string) string {
	t.Helper()
	port, uiPort := freeLoopbackPort(t), freeLoopbackPort(t)
	cmd := exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", port, "--ui-port", uiPort, "--log-level", "error")
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	hostPort := net.JoinHostPort("127.0.0.1", port)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		c, err := client.DialContext(ctx, client.Options{HostPort: hostPort})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return hostPort
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("temporal dev server did not come up on %s", hostPort)
	return ""
}

// TestTemporalMetricsThroughRealServer runs a worker and a workflow against
// a real dev server with the SDK metrics bridge and the activity
// interceptor on one registry: the SDK's temporal_* series appear under the
// names the dashboard uses, beside payflow's own, and no SDK metric fails
// to register.
func TestTemporalMetricsThroughRealServer(t *testing.T) {
	hostPort := startDevServer(t, temporalCLI(t))

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h, closer, err := metrics.TemporalHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: hostPort, MetricsHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const queue = "metrics-test"
	w := sdkworker.New(c, queue, sdkworker.Options{
		Interceptors: []interceptor.WorkerInterceptor{metrics.ActivityInterceptor(m)},
	})
	w.RegisterWorkflow(ChargeWorkflow)
	w.RegisterActivity(Charge)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "metrics-test", TaskQueue: queue},
		ChargeWorkflow, []int64{5, -1, 7})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	if err := run.Get(ctx, &total); err != nil || total != 12 {
		t.Fatalf("total %d, err %v", total, err)
	}
	w.Stop()
	if err := closer.Close(); err != nil { // a last report into the registry
		t.Fatal(err)
	}

	text := scrape(t, reg)
	assertLines(t, text,
		`payflow_activity_attempts_total{activity="Charge"} 3`,
		`payflow_activity_failures_total{activity="Charge"} 1`,
		`payflow_temporal_metrics_errors_total 0`,
	)
	// The SDK metrics the dashboard and the alerts read.
	for _, name := range []string{
		"temporal_workflow_completed_total",
		"temporal_workflow_endtoend_latency_seconds_bucket",
		"temporal_workflow_task_execution_latency_seconds_bucket",
		"temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
		"temporal_activity_execution_latency_seconds_bucket",
		"temporal_activity_schedule_to_start_latency_seconds_bucket",
		"temporal_activity_execution_failed_total",
		"temporal_request_latency_seconds_bucket",
	} {
		if !strings.Contains(text, "\n"+name+"{") {
			t.Errorf("scrape lacks %s", name)
		}
	}
	if t.Failed() || os.Getenv("METRICS_DUMP") != "" {
		t.Log(text)
	}
}
