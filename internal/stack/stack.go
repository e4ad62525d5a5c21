// Package stack brings up the whole payflow system on loopback ports in a
// temporary directory, for the end-to-end tests, the chaos tool and the
// benchmark alike: one throwaway PostgreSQL cluster (internal/pgtest), one
// Temporal server (the dev server, Temporal server v1.29.1 on PostgreSQL,
// or an external one), WeChat Pay keys, and one or more named deployments,
// each its own bin/wechatpay-sim, bin/worker(s) and bin/api(s) with its own
// environment, task queue and database on that cluster. Every process can
// be killed, stopped and restarted and waited for, which is what fault
// injection needs.
//
// It never touches the default ports of `make run`: every listener is on a
// free port of 127.0.0.1.
package stack

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/sim"
)

// The test merchant shared by the api, the worker and the sim.
const (
	AppID  = "wx2421b1c4370ec43b"
	MchID  = "10000100"
	APIKey = "192006250b4c09247ec02edce69f6a2d"
)

// Options say what to start. The zero value is one deployment (one worker,
// one api and a sim, queries in API v3) on a Temporal dev server, built
// from the module containing the working directory.
type Options struct {
	// Dir holds binaries, keys, logs and Temporal's state; "" makes a
	// temporary directory that Close removes (unless Keep).
	Dir  string
	Keep bool

	// ModuleDir is the payflow module to build; "" finds go.mod above the
	// working directory.
	ModuleDir string
	// BinDir holds api, worker and wechatpay-sim already built; "" builds
	// them into Dir/bin with `go build`.
	BinDir string

	// Temporal is the Temporal server (default: a dev server).
	Temporal TemporalOptions

	// DurableCommits turns synchronous_commit back on (pgtest turns it off
	// for speed). With it off, a PostgreSQL crash may lose commits that a
	// client was already told about, which a run that SIGKILLs the
	// postmaster must not mistake for a bug.
	DurableCommits bool

	// Deployments to start, in order; none means one DeploymentOptions{}.
	// Their names must differ.
	Deployments []DeploymentOptions

	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// Stack is a running system. Its fields are set by Start; do not change
// them.
type Stack struct {
	Dir      string
	BinDir   string
	Keys     sim.KeyFiles
	APIv3Key string

	// PG is the cluster of the deployments' databases. Kill it and
	// RestartPG: its data stays.
	PG *pgtest.Cluster

	// Temporal is the server the stack started: the dev server or
	// temporal-server (nil for an external one). Kill it and Restart it:
	// its state survives.
	Temporal *Process
	// TemporalPG is the PostgreSQL cluster of temporal-server
	// (TemporalPostgres only).
	TemporalPG      *pgtest.Cluster
	TemporalAddress string
	TemporalUIURL   string        // the dev server's web UI, with TemporalOptions.UI
	Client          client.Client // connected to TemporalAddress, namespace default

	Deployments []*Deployment

	opts   Options
	tmpDir bool
}

// Start brings the stack up and waits until every process is ready. On
// error it stops whatever it started.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if len(opts.Deployments) == 0 {
		opts.Deployments = []DeploymentOptions{{}}
	}
	t := &opts.Temporal
	if t.Server == "" {
		t.Server = TemporalDev
		if t.Address != "" {
			t.Server = TemporalExternal
		}
	}
	if t.Shards <= 0 {
		t.Shards = 4
	}
	switch {
	case t.Server == TemporalExternal && t.Address == "":
		return nil, errors.New("stack: an external Temporal needs TemporalOptions.Address")
	case t.Server != TemporalExternal && t.Address != "":
		return nil, fmt.Errorf("stack: TemporalOptions.Address is for an external server, not %q", t.Server)
	case t.Server != TemporalDev && t.Server != TemporalPostgres && t.Server != TemporalExternal:
		return nil, fmt.Errorf("stack: unknown Temporal server %q", t.Server)
	}
	seen := map[string]bool{}
	for _, d := range opts.Deployments {
		if seen[d.Name] {
			return nil, fmt.Errorf("stack: two deployments named %q", d.Name)
		}
		seen[d.Name] = true
	}

	s := &Stack{opts: opts, Dir: opts.Dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "payflow-stack-"); err != nil {
			return nil, err
		}
		s.tmpDir = true
	}
	if s.Dir, err = filepath.Abs(s.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if err := s.binaries(ctx); err != nil {
		return nil, err
	}
	if s.Keys, err = sim.GenerateKeys(filepath.Join(s.Dir, "keys")); err != nil {
		return nil, err
	}
	v3key, err := os.ReadFile(s.Keys.APIv3KeyFile)
	if err != nil {
		return nil, err
	}
	s.APIv3Key = strings.TrimSpace(string(v3key))

	s.logf("starting PostgreSQL")
	if s.PG, err = pgtest.Start(ctx); err != nil {
		return nil, err
	}
	if opts.DurableCommits {
		if err := s.durableCommits(ctx); err != nil {
			return nil, err
		}
	}
	for _, do := range opts.Deployments {
		d, err := s.newDeployment(ctx, do)
		if err != nil {
			return nil, err
		}
		s.Deployments = append(s.Deployments, d)
	}
	if err := s.startTemporal(ctx); err != nil {
		return nil, err
	}
	if s.Client, err = client.DialContext(ctx, client.Options{HostPort: s.TemporalAddress, Logger: QuietLogger{}}); err != nil {
		return nil, fmt.Errorf("dial temporal %s: %w", s.TemporalAddress, err)
	}

	var procs []*Process
	for _, d := range s.Deployments {
		d.build()
		procs = append(procs, d.Processes()...)
	}
	s.logf("starting %d deployments: %d processes", len(s.Deployments), len(procs))
	for _, p := range procs {
		if err := p.Start(); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, p := range procs {
		if err := p.WaitReady(wctx); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, p.LogTail(4000))
		}
	}
	s.logf("stack up in %s", s.Dir)
	return s, nil
}

// Deployment returns the deployment named name, or nil.
func (s *Stack) Deployment(name string) *Deployment {
	for _, d := range s.Deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// binaries builds api, worker and wechatpay-sim unless Options.BinDir has
// them, and finds the Temporal binaries the stack is to run.
func (s *Stack) binaries(ctx context.Context) error {
	mod := s.opts.ModuleDir
	if mod == "" {
		var err error
		if mod, err = moduleDir(); err != nil {
			return err
		}
	}
	if s.opts.BinDir != "" {
		s.BinDir, _ = filepath.Abs(s.opts.BinDir)
	} else {
		s.BinDir = filepath.Join(s.Dir, "bin")
		s.logf("building api, worker and wechatpay-sim")
		build := exec.CommandContext(ctx, "go", "build", "-o", s.BinDir+"/", "./cmd/api", "./cmd/worker", "./cmd/wechatpay-sim")
		build.Dir = mod
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	for _, name := range []string{"api", "worker", "wechatpay-sim"} {
		if _, err := os.Stat(filepath.Join(s.BinDir, name)); err != nil {
			return fmt.Errorf("binary %s: %w", name, err)
		}
	}
	t := &s.opts.Temporal
	switch t.Server {
	case TemporalDev:
		if t.CLI == "" {
			t.CLI = os.Getenv("TEMPORAL_BIN")
		}
		if t.CLI == "" {
			t.CLI = filepath.Join(mod, "bin", "temporal")
		}
		t.CLI, _ = filepath.Abs(t.CLI)
		if _, err := os.Stat(t.CLI); err != nil {
			return fmt.Errorf("the Temporal CLI is needed at %s (run `make temporal`, or set TEMPORAL_BIN)", t.CLI)
		}
	case TemporalPostgres:
		if t.PGDir == "" {
			t.PGDir = filepath.Join(mod, "bin")
		}
		t.PGDir, _ = filepath.Abs(t.PGDir)
		return FindTemporalPGBins(t.PGDir).Missing()
	}
	return nil
}

// moduleDir finds the directory of go.mod at or above the working
// directory.
func moduleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory (set Options.ModuleDir)")
		}
		dir = parent
	}
}

// durableCommits turns synchronous_commit on for the whole cluster (pgtest
// writes it off into postgresql.conf; ALTER SYSTEM wins over that and
// survives a restart). fsync stays off: only the postmaster is killed,
// never the machine, so the OS still holds every write.
func (s *Stack) durableCommits(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.PG.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, q := range []string{"ALTER SYSTEM SET synchronous_commit = on", "SELECT pg_reload_conf()"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// RestartPG starts PostgreSQL again after PG.Kill or PG.Stop, on the same
// port and data.
func (s *Stack) RestartPG(ctx context.Context) error { return s.PG.Restart(ctx) }

// Processes is every process of ours (not PostgreSQL), Temporal first,
// then each deployment's.
func (s *Stack) Processes() []*Process {
	var ps []*Process
	if s.Temporal != nil {
		ps = append(ps, s.Temporal)
	}
	for _, d := range s.Deployments {
		ps = append(ps, d.Processes()...)
	}
	return ps
}

// DumpLogs writes the last n bytes of every process's log to w.
func (s *Stack) DumpLogs(w io.Writer, n int) {
	for _, p := range s.Processes() {
		fmt.Fprintf(w, "----- %s (tail of %s) -----\n%s\n", p.Name, p.LogFile, p.LogTail(n))
	}
}

// Close stops every process (SIGTERM), Temporal and PostgreSQL, and
// removes the directory it made unless Options.Keep.
func (s *Stack) Close() error {
	var errs []error
	for _, d := range s.Deployments {
		for _, p := range slices.Concat(d.APIs, d.Workers, []*Process{d.Sim}) {
			if p != nil {
				errs = append(errs, p.Stop())
			}
		}
	}
	if s.Client != nil {
		s.Client.Close()
	}
	if s.Temporal != nil {
		errs = append(errs, s.Temporal.Stop())
	}
	if s.TemporalPG != nil {
		errs = append(errs, s.TemporalPG.Close())
	}
	if s.PG != nil {
		errs = append(errs, s.PG.Close())
	}
	if s.tmpDir && !s.opts.Keep {
		errs = append(errs, os.RemoveAll(s.Dir))
	}
	return errors.Join(errs...)
}

func (s *Stack) logf(format string, args ...any) {
	s.opts.Logf("stack: "+format, args...)
}

// NewToken makes a random bearer token: 64 hex characters.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := crand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
	}
	return hex.EncodeToString(b)
}

// FreeAddr returns a free loopback host:port below the kernel's ephemeral
// range (/proc/sys/net/ipv4/ip_local_port_range), where no outgoing
// connection takes it: a process restarted after a crash gets its port
// back. The well-known ports of `make run` are never chosen. When no such
// port is found, it falls back to one the kernel picks.
func FreeAddr() (string, error) {
	lo := ephemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(max(lo-10000, 1))
		if slices.Contains(reservedPorts, port) {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// reservedPorts are those of `make run` (PostgreSQL, Temporal and its UI,
// api, worker, sim), which someone may be using.
var reservedPorts = []int{5432, 7233, 8080, 8081, 8090, 8233}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 10000 {
		return 32768
	}
	return lo
}
