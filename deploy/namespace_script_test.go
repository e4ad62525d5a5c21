package deploy

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

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestCreateNamespaceScript runs the temporal-admin one-shot's script, with
// the compose file's SEARCH_ATTRIBUTES, against a Temporal dev server on
// loopback, twice: the namespace and the five attributes exist with their
// types, and the second run succeeds too. The server caches search
// attributes as the compose file's does (not the dev server's forced
// refresh), so the script's wait for them is exercised; once it is done a
// workflow naming every attribute starts.
func TestCreateNamespaceScript(t *testing.T) {
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
	home := t.TempDir()
	port := freePort(t)
	srv := exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", port, "--ui-port", freePort(t), "--log-level", "error",
		"--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false")
	srv.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	})
	addr := net.JoinHostPort("127.0.0.1", port)

	const namespace = "payflow-deploy-test"
	attrs := envOf(service(t, mustLoad(t), "temporal-admin"))["SEARCH_ATTRIBUTES"]
	pathDir := filepath.Join(t.TempDir(), "bin")
	if err := os.MkdirAll(pathDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(pathDir, "temporal")); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, "sh", "temporal/create-namespace.sh")
		cmd.Env = []string{
			"HOME=" + home,
			"PATH=" + pathDir + ":" + os.Getenv("PATH"),
			"TEMPORAL_ADDRESS=" + addr,
			"TEMPORAL_NAMESPACE=" + namespace,
			"TEMPORAL_RETENTION=24h",
			"SEARCH_ATTRIBUTES=" + attrs,
		}
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		t.Logf("run %d:\n%s", run, out)
		if !strings.Contains(string(out), "namespace "+namespace+" ready") {
			t.Errorf("run %d output:\n%s", run, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	custom := resp.GetCustomAttributes()
	for name, typ := range contractSearchAttributes {
		got, ok := custom[name]
		if !ok {
			t.Errorf("search attribute %s missing", name)
			continue
		}
		if !strings.EqualFold(strings.TrimPrefix(got.String(), "INDEXED_VALUE_TYPE_"), typ) {
			t.Errorf("search attribute %s: type %v, want %s", name, got, typ)
		}
	}

	// Usable at once: a start naming every attribute is accepted.
	var sa []temporal.SearchAttributeUpdate
	for _, f := range strings.Fields(attrs) {
		name, typ, _ := strings.Cut(f, "=")
		switch typ {
		case "Int":
			sa = append(sa, temporal.NewSearchAttributeKeyInt64(name).ValueSet(1))
		default:
			sa = append(sa, temporal.NewSearchAttributeKeyKeyword(name).ValueSet("probe"))
		}
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "deploy-test-probe", TaskQueue: "deploy-test",
		TypedSearchAttributes: temporal.NewSearchAttributes(sa...)}, "Probe")
	if err != nil {
		t.Fatalf("a start naming the attributes, right after the script: %v", err)
	}
	_ = c.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "probe")
}

// The compose file's Temporal server caches search attributes: the dev
// server's forced refresh on every read is not for production.
func TestDynamicConfigCachesSearchAttributes(t *testing.T) {
	b, err := os.ReadFile("temporal/dynamicconfig/payflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "system.forceSearchAttributesCacheRefreshOnRead") {
			t.Errorf("payflow.yaml sets %q", line)
		}
	}
}
