package stack

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
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
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/worker"
	"github.com/payflow/payflow/workflows"
)

// TemporalServer says which Temporal server a stack runs on.
type TemporalServer string

const (
	// TemporalDev is the CLI's dev server (`make temporal`), its state in
	// Dir/temporal.db so that a restart keeps every workflow.
	TemporalDev TemporalServer = "dev"
	// TemporalPostgres is Temporal server TemporalServerVersion with
	// PostgreSQL persistence, from the binaries `make temporal-pg` builds,
	// on a PostgreSQL cluster of its own.
	TemporalPostgres TemporalServer = "pg"
	// TemporalExternal is a server someone else runs, at
	// TemporalOptions.Address; the stack starts nothing.
	TemporalExternal TemporalServer = "external"
)

// TemporalServerVersion is the server `make temporal-pg` builds.
const TemporalServerVersion = "v1.29.1"

// TemporalOptions say which Temporal server to use and how.
type TemporalOptions struct {
	// Server is TemporalDev (the default), TemporalPostgres or
	// TemporalExternal; a non-empty Address alone means TemporalExternal.
	Server TemporalServer
	// Address is the external frontend (TemporalExternal).
	Address string
	// CLI is the Temporal CLI for the dev server; "" means $TEMPORAL_BIN,
	// else ModuleDir/bin/temporal.
	CLI string
	// UI serves the dev server's web UI (Stack.TemporalUIURL); without it
	// the dev server runs headless.
	UI bool
	// PGDir is where `make temporal-pg` left temporal-server,
	// temporal-sql-tool and temporal-schema/ (TemporalPostgres); "" means
	// ModuleDir/bin.
	PGDir string
	// Shards is the PostgreSQL-backed server's numHistoryShards (default 4).
	Shards int
}

// TemporalPGBins locates what `make temporal-pg` leaves.
type TemporalPGBins struct {
	Server, SQLTool string
	SchemaDir       string // holds temporal/versioned and visibility/versioned
}

// FindTemporalPGBins returns the binaries in dir; when the schema was not
// copied next to them it is taken from the server module in the Go module
// cache.
func FindTemporalPGBins(dir string) TemporalPGBins {
	b := TemporalPGBins{
		Server:    filepath.Join(dir, "temporal-server"),
		SQLTool:   filepath.Join(dir, "temporal-sql-tool"),
		SchemaDir: filepath.Join(dir, "temporal-schema", "postgresql", "v12"),
	}
	if _, err := os.Stat(b.SchemaDir); err != nil {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			b.SchemaDir = filepath.Join(strings.TrimSpace(string(out)), "go.temporal.io",
				"server@"+TemporalServerVersion, "schema", "postgresql", "v12")
		}
	}
	return b
}

// Missing says which of the binaries is not there, or nil.
func (b TemporalPGBins) Missing() error {
	for _, p := range []string{b.Server, b.SQLTool, filepath.Join(b.SchemaDir, "temporal", "versioned")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing (run `make temporal-pg`)", p)
		}
	}
	return nil
}

// startTemporal brings up the server Options.Temporal names and sets
// TemporalAddress.
func (s *Stack) startTemporal(ctx context.Context) error {
	t := s.opts.Temporal
	switch t.Server {
	case TemporalExternal:
		s.TemporalAddress = t.Address
		return nil
	case TemporalPostgres:
		return s.startTemporalPG(ctx)
	}
	addr, err := FreeAddr()
	if err != nil {
		return err
	}
	uiAddr, err := FreeAddr()
	if err != nil {
		return err
	}
	s.TemporalAddress = addr
	_, port, _ := net.SplitHostPort(addr)
	_, uiPort, _ := net.SplitHostPort(uiAddr)
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", port, "--ui-port", uiPort,
		"--db-filename", filepath.Join(s.Dir, "temporal.db"), "--log-level", "error",
		// Temporal suggests continuing as new after this many events (4096
		// by default): low here, so that long order runs do it in the tests
		// and the chaos runs.
		"--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=150",
		// SQLite's default rollback journal locks the whole file for each
		// commit and syncs it twice; readers wait behind the writer. Under
		// the payments' own traffic that doubled the time of the api's
		// SignalWithStart (docs/benchmarks.md). In WAL mode readers do not
		// wait and a commit syncs once, as durable as before.
		"--sqlite-pragma", "journal_mode=wal"}
	if t.UI {
		s.TemporalUIURL = "http://" + uiAddr
	} else {
		args = append(args, "--headless")
	}
	s.Temporal = &Process{
		Name: "temporal", Path: t.CLI, Addr: addr, Args: args,
		Env:     []string{"HOME=" + s.Dir, "PATH=" + os.Getenv("PATH")},
		LogFile: filepath.Join(s.Dir, "logs", "temporal.log"),
		Ready:   temporalReady(addr),
	}
	s.logf("starting the Temporal dev server on %s", addr)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return s.Temporal.Restart(ctx)
}

// temporalReady is Temporal's gRPC health check.
func temporalReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: QuietLogger{}})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
}

//go:embed temporal-pg.yaml
var temporalPGConfig string

// temporalPGDynamicConfig: as in production (deploy/temporal), search
// attributes are cached, not read from the database on every request (the
// dev server's forced refresh, which Temporal says is not for production,
// cost this server's PostgreSQL about 2 ms of CPU per payment,
// docs/benchmarks.md); registerDefault registers them and waits until
// they are usable.
const temporalPGDynamicConfig = `system.forceSearchAttributesCacheRefreshOnRead:
  - value: false
limit.maxIDLength:
  - value: 255
`

// startTemporalPG starts a PostgreSQL cluster for Temporal alone (as in
// production, its connection pools and writes do not compete with the
// payments databases inside one postmaster, and a fault that kills the
// payments' PostgreSQL leaves Temporal's), creates the databases and
// schemas with temporal-sql-tool, writes the config into Dir/temporal-pg,
// starts the server and registers the namespace "default".
func (s *Stack) startTemporalPG(ctx context.Context) error {
	bins := FindTemporalPGBins(s.opts.Temporal.PGDir)
	if err := bins.Missing(); err != nil {
		return err
	}
	s.logf("starting PostgreSQL for Temporal")
	var err error
	if s.TemporalPG, err = pgtest.Start(ctx); err != nil {
		return err
	}
	s.logf("creating Temporal's schemas with temporal-sql-tool")
	for _, db := range []struct{ name, dir string }{
		{"temporal", filepath.Join(bins.SchemaDir, "temporal", "versioned")},
		{"temporal_visibility", filepath.Join(bins.SchemaDir, "visibility", "versioned")},
	} {
		base := []string{"--plugin", "postgres12", "--ep", "127.0.0.1", "-p", strconv.Itoa(s.TemporalPG.Port()), "-u", "postgres", "--db", db.name}
		for _, args := range [][]string{{"create"}, {"setup-schema", "-v", "0.0"}, {"update-schema", "-d", db.dir}} {
			cmd := exec.CommandContext(ctx, bins.SQLTool, append(base, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("temporal-sql-tool %s %s: %v\n%s", db.name, args[0], err, out)
			}
		}
	}

	vals := map[string]any{"Shards": s.opts.Temporal.Shards, "PGPort": s.TemporalPG.Port()}
	for _, name := range []string{"FrontendPort", "FrontendMembershipPort", "FrontendHTTPPort", "MatchingPort",
		"MatchingMembershipPort", "HistoryPort", "HistoryMembershipPort", "WorkerPort", "WorkerMembershipPort"} {
		addr, err := FreeAddr()
		if err != nil {
			return err
		}
		_, p, _ := net.SplitHostPort(addr)
		vals[name], _ = strconv.Atoi(p)
	}
	root := filepath.Join(s.Dir, "temporal-pg")
	if err := os.MkdirAll(filepath.Join(root, "config"), 0o755); err != nil {
		return err
	}
	dyn := filepath.Join(root, "dynamicconfig.yaml")
	if err := os.WriteFile(dyn, []byte(temporalPGDynamicConfig), 0o644); err != nil {
		return err
	}
	vals["DynamicConfig"] = dyn
	var conf bytes.Buffer
	if err := template.Must(template.New("config").Option("missingkey=error").Parse(temporalPGConfig)).Execute(&conf, vals); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "config", "development.yaml"), conf.Bytes(), 0o644); err != nil {
		return err
	}

	s.TemporalAddress = fmt.Sprintf("127.0.0.1:%d", vals["FrontendPort"])
	s.Temporal = &Process{
		Name: "temporal-server", Path: bins.Server, Addr: s.TemporalAddress,
		Args:    []string{"--root", root, "--config", "config", "--env", "development", "--allow-no-auth", "start"},
		Env:     []string{"HOME=" + s.Dir, "PATH=" + os.Getenv("PATH")},
		LogFile: filepath.Join(s.Dir, "logs", "temporal-server.log"),
		Ready:   temporalReady(s.TemporalAddress),
	}
	s.logf("starting temporal-server %s (PostgreSQL) on %s", TemporalServerVersion, s.TemporalAddress)
	if err := s.Temporal.Start(); err != nil {
		return err
	}
	if err := registerDefault(ctx, s.Temporal); err != nil {
		return fmt.Errorf("%w\n%s", err, s.Temporal.LogTail(4000))
	}
	return nil
}

// registerDefault waits for the frontend, registers the namespace
// "default" and the workflows' search attributes, and waits until
// history knows the namespace and the frontend the attributes (a
// workflow naming them can start), then one namespace-cache refresh more
// (system.namespaceCacheRefreshInterval, 2 s), after which every service
// knows them.
func registerDefault(ctx context.Context, server *Process) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if !server.Running() {
			return fmt.Errorf("%s exited", server.Name)
		}
		if last = tryRegister(ctx, server.Addr); last == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(namespaceCacheRefresh + time.Second):
				return nil
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready: %v", server.Name, last)
}

func tryRegister(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: QuietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	nc, err := client.NewNamespaceClient(client.Options{HostPort: addr, Logger: QuietLogger{}})
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
	// As deploy/temporal/create-namespace.sh does in production, and
	// with what the worker does at start.
	if err := worker.EnsureSearchAttributes(ctx, c, "default", slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	probe, err := probeAttributes()
	if err != nil {
		return err
	}
	// A start that succeeds means frontend and history both know the
	// namespace, and the frontend the attributes.
	id := "stack/probe/" + strconv.FormatInt(time.Now().UnixNano(), 36)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "payflow-stack-probe", TypedSearchAttributes: probe}, "StackProbe")
	if err != nil {
		return err
	}
	return c.TerminateWorkflow(ctx, id, run.GetRunID(), "probe")
}

// namespaceCacheRefresh is the server's system.namespaceCacheRefreshInterval
// (its default): how often each service rereads the namespaces, and with
// them their search attributes.
const namespaceCacheRefresh = 2 * time.Second

// probeAttributes is a value for each of the workflows' search
// attributes, for a probe start that names them all.
func probeAttributes() (temporal.SearchAttributes, error) {
	var probe []temporal.SearchAttributeUpdate
	for _, key := range workflows.SearchAttributeKeys() {
		switch k := key.(type) {
		case temporal.SearchAttributeKeyKeyword:
			probe = append(probe, k.ValueSet("probe"))
		case temporal.SearchAttributeKeyInt64:
			probe = append(probe, k.ValueSet(0))
		default:
			return temporal.SearchAttributes{}, fmt.Errorf("search attribute %s: no probe value for %T", key.GetName(), key)
		}
	}
	return temporal.NewSearchAttributes(probe...), nil
}

// QuietLogger drops the Temporal SDK's log lines (it logs every reconnect
// attempt while a server is down, which is expected here).
type QuietLogger struct{}

func (QuietLogger) Debug(string, ...any) {}
func (QuietLogger) Info(string, ...any)  {}
func (QuietLogger) Warn(string, ...any)  {}
func (QuietLogger) Error(string, ...any) {}
