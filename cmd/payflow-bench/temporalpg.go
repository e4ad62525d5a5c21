package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/internal/stack"
)

//go:embed temporal-pg.yaml
var temporalPGConfig string

// temporalPGDynamicConfig: the search-attribute cache is read through, as
// on the dev server, so the attributes the worker registers at start are
// usable at once.
const temporalPGDynamicConfig = `system.forceSearchAttributesCacheRefreshOnRead:
  - value: true
limit.maxIDLength:
  - value: 255
`

// temporalPG is a Temporal server with PostgreSQL persistence, on its own
// throwaway PostgreSQL cluster.
type temporalPG struct {
	Address string
	PG      *pgtest.Cluster
	Server  *stack.Process
}

// temporalPGBins locates what `make temporal-pg` leaves.
type temporalPGBins struct {
	Server, SQLTool, SchemaDir string // SchemaDir holds temporal/versioned and visibility/versioned
}

func (b temporalPGBins) missing() error {
	for _, p := range []string{b.Server, b.SQLTool, filepath.Join(b.SchemaDir, "temporal", "versioned")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing (run `make temporal-pg`)", p)
		}
	}
	return nil
}

// startTemporalPG creates the databases and schemas with temporal-sql-tool,
// writes the config into dir, starts the server and registers the default
// namespace.
func startTemporalPG(ctx context.Context, dir string, bins temporalPGBins, shards int, logf func(string, ...any)) (_ *temporalPG, err error) {
	t := &temporalPG{}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	logf("starting PostgreSQL for Temporal")
	if t.PG, err = pgtest.Start(ctx); err != nil {
		return nil, err
	}
	logf("creating Temporal's schemas with temporal-sql-tool")
	for _, db := range []struct{ name, dir string }{
		{"temporal", filepath.Join(bins.SchemaDir, "temporal", "versioned")},
		{"temporal_visibility", filepath.Join(bins.SchemaDir, "visibility", "versioned")},
	} {
		base := []string{"--plugin", "postgres12", "--ep", "127.0.0.1", "-p", strconv.Itoa(t.PG.Port()), "-u", "postgres", "--db", db.name}
		for _, args := range [][]string{{"create"}, {"setup-schema", "-v", "0.0"}, {"update-schema", "-d", db.dir}} {
			cmd := exec.CommandContext(ctx, bins.SQLTool, append(base, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("temporal-sql-tool %s %s: %v\n%s", db.name, args[0], err, out)
			}
		}
	}

	ports := map[string]int{"Shards": shards, "PGPort": t.PG.Port()}
	for _, name := range []string{"FrontendPort", "FrontendMembershipPort", "FrontendHTTPPort", "MatchingPort",
		"MatchingMembershipPort", "HistoryPort", "HistoryMembershipPort", "WorkerPort", "WorkerMembershipPort"} {
		addr, err := stack.FreeAddr()
		if err != nil {
			return nil, err
		}
		_, p, _ := net.SplitHostPort(addr)
		ports[name], _ = strconv.Atoi(p)
	}
	confDir := filepath.Join(dir, "temporal-pg", "config")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return nil, err
	}
	dyn := filepath.Join(dir, "temporal-pg", "dynamicconfig.yaml")
	if err := os.WriteFile(dyn, []byte(temporalPGDynamicConfig), 0o644); err != nil {
		return nil, err
	}
	var conf bytes.Buffer
	vals := map[string]any{"DynamicConfig": dyn}
	for k, v := range ports {
		vals[k] = v
	}
	if err := template.Must(template.New("config").Option("missingkey=error").Parse(temporalPGConfig)).Execute(&conf, vals); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(confDir, "development.yaml"), conf.Bytes(), 0o644); err != nil {
		return nil, err
	}

	t.Address = fmt.Sprintf("127.0.0.1:%d", ports["FrontendPort"])
	t.Server = &stack.Process{
		Name: "temporal-server", Path: bins.Server, Addr: t.Address,
		Args:    []string{"--root", filepath.Join(dir, "temporal-pg"), "--config", "config", "--env", "development", "--allow-no-auth", "start"},
		Env:     []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")},
		LogFile: filepath.Join(dir, "temporal-pg", "server.log"),
	}
	logf("starting temporal-server (PostgreSQL) on %s", t.Address)
	if err := t.Server.Start(); err != nil {
		return nil, err
	}
	if err := t.registerDefault(ctx); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, t.Server.LogTail(4000))
	}
	return t, nil
}

// registerDefault waits for the frontend, registers the namespace
// "default" and waits until history knows it too (a workflow can start).
func (t *temporalPG) registerDefault(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if !t.Server.Running() {
			return errors.New("temporal-server exited")
		}
		last = t.tryRegister(ctx)
		if last == nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("temporal-server not ready: %v", last)
}

func (t *temporalPG) tryRegister(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: t.Address, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	nc, err := client.NewNamespaceClient(client.Options{HostPort: t.Address, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer nc.Close()
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: "default", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return err
	}
	// A start that succeeds means frontend and history both know it.
	id := "bench/probe/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "payflow-bench-probe"}, "BenchProbe")
	if err != nil {
		return err
	}
	return c.TerminateWorkflow(ctx, id, run.GetRunID(), "probe")
}

// Close stops the server and its PostgreSQL.
func (t *temporalPG) Close() {
	if t.Server != nil {
		_ = t.Server.Stop()
	}
	if t.PG != nil {
		_ = t.PG.Close()
	}
}

// schemaDirFromModCache finds the schema shipped in the server module when
// `make temporal-pg` did not copy it next to the binaries.
func schemaDirFromModCache(version string) string {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return ""
	}
	return filepath.Join(strings.TrimSpace(string(out)), "go.temporal.io", "server@"+version, "schema", "postgresql", "v12")
}

// quietLogger drops the Temporal SDK's log lines.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
