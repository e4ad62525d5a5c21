// Package stack brings up the whole payflow system on loopback ports in a
// temporary directory: a throwaway PostgreSQL cluster (internal/pgtest), a
// Temporal dev server whose state survives a restart (or an external
// Temporal), WeChat Pay keys, N bin/worker, M bin/api and one
// bin/wechatpay-sim. Every process can be killed, stopped and started
// again, which is what end-to-end tests, the chaos tool and benchmarks need.
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
	"net/http"
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

// Options says what to start. The zero value is one worker, one api and a
// sim, with queries in API v3, built from the module containing the
// working directory.
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
	// TemporalBin is the Temporal CLI; "" means $TEMPORAL_BIN, else
	// ModuleDir/bin/temporal (`make temporal`).
	TemporalBin string
	// TemporalAddress is an external Temporal frontend; "" starts a dev
	// server.
	TemporalAddress string
	// TaskQueue defaults to "payments"; use a unique one on a shared
	// external Temporal.
	TaskQueue string

	Workers int // bin/worker processes (default 1)
	APIs    int // bin/api processes (default 1)

	// APIVersion is WECHATPAY_API_VERSION of api and worker (default v3).
	APIVersion string
	// NotifyVersion is SIM_NOTIFY_VERSION: the format of notifications for
	// trades not prepaid (default v2).
	NotifyVersion string
	// NotifyBaseURL is where notifications go (the sim's SIM_NOTIFY_URL and
	// the workers' WECHATPAY_NOTIFY_URL, with the /wechatpay/… paths
	// appended): a load balancer in front of the apis, say. "" is the first
	// api.
	NotifyBaseURL string

	SimTimeScale      float64       // SIM_TIME_SCALE (0: 0.001, retries almost at once)
	SimQueryDelay     time.Duration // SIM_QUERY_DELAY (0: none)
	OrderQueryAfter   time.Duration // ORDER_QUERY_AFTER (0: the service's default)
	ReconcileInterval time.Duration // RECONCILE_INTERVAL (0: the service's default)
	ReconcileGrace    time.Duration // RECONCILE_GRACE (0: the service's default)

	// DurableCommits turns synchronous_commit back on (pgtest turns it off
	// for speed). With it off, a PostgreSQL crash may lose commits that a
	// client was already told about, which a test that SIGKILLs the
	// postmaster must not mistake for a bug.
	DurableCommits bool

	// APIToken is the bearer token the apis require (API_TOKENS), as in
	// production; "" makes a random one. Stack.Authorize adds it to a
	// request.
	APIToken string

	Env    []string // more environment for api and worker
	SimEnv []string // more environment for the sim

	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Stack is a running system. Its fields are set by Start; do not change
// them.
type Stack struct {
	Dir         string
	BinDir      string
	Keys        sim.KeyFiles
	APIv3Key    string
	PG          *pgtest.Cluster
	DatabaseURL string
	// Temporal is the dev server (nil when Options.TemporalAddress was
	// given). Kill it and Restart it: its state is in Dir/temporal.db.
	Temporal        *Process
	TemporalAddress string
	Client          client.Client // connected to TemporalAddress
	TaskQueue       string

	Workers []*Process
	APIs    []*Process
	Sim     *Process

	APIURLs       []string // http://host:port of each api, in APIs' order
	APIToken      string   // the apis' bearer token (API_TOKENS); see Authorize
	SimURL        string
	NotifyBaseURL string

	opts   Options
	tmpDir bool
}

// Start brings the stack up and waits until every process is ready. On
// error it stops whatever it started.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.APIs <= 0 {
		opts.APIs = 1
	}
	if opts.APIVersion == "" {
		opts.APIVersion = "v3"
	}
	if opts.NotifyVersion == "" {
		opts.NotifyVersion = "v2"
	}
	if opts.SimTimeScale == 0 {
		opts.SimTimeScale = 0.001
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = "payments"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	s := &Stack{opts: opts, TaskQueue: opts.TaskQueue, Dir: opts.Dir, APIToken: opts.APIToken}
	if s.APIToken == "" {
		s.APIToken = newToken()
	}
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
	if s.DatabaseURL, err = s.PG.CreateDatabase(ctx, "payments"); err != nil {
		return nil, err
	}
	if opts.DurableCommits {
		if err := s.durableCommits(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.startTemporal(ctx); err != nil {
		return nil, err
	}
	if s.Client, err = client.DialContext(ctx, client.Options{HostPort: s.TemporalAddress, Logger: quietLogger{}}); err != nil {
		return nil, fmt.Errorf("dial temporal %s: %w", s.TemporalAddress, err)
	}

	for range opts.APIs {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		s.APIURLs = append(s.APIURLs, "http://"+addr)
	}
	s.NotifyBaseURL = opts.NotifyBaseURL
	if s.NotifyBaseURL == "" {
		s.NotifyBaseURL = s.APIURLs[0]
	}
	simAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	s.SimURL = "http://" + simAddr
	s.Sim = s.newProc("wechatpay-sim", filepath.Join(s.BinDir, "wechatpay-sim"), simAddr, "/healthz",
		slices.Concat(s.commonEnv(), []string{
			"SIM_ADDR=" + simAddr,
			"SIM_KEYS_DIR=" + s.Keys.Dir,
			"SIM_NOTIFY_VERSION=" + opts.NotifyVersion,
			"SIM_NOTIFY_URL=" + s.NotifyBaseURL + "/wechatpay/notify",
			"SIM_NOTIFY_URL_V3=" + s.NotifyBaseURL + "/wechatpay/v3/notify",
			"SIM_TIME_SCALE=" + strconv.FormatFloat(opts.SimTimeScale, 'f', -1, 64),
			"SIM_QUERY_DELAY=" + opts.SimQueryDelay.String(),
		}, opts.SimEnv))
	for i := range opts.Workers {
		if _, err := s.newWorker(i + 1); err != nil {
			return nil, err
		}
	}
	for i, u := range s.APIURLs {
		addr := strings.TrimPrefix(u, "http://")
		s.APIs = append(s.APIs, s.newProc(fmt.Sprintf("api-%d", i+1), filepath.Join(s.BinDir, "api"), addr, "/readyz",
			slices.Concat(s.AppEnv(), []string{"API_ADDR=" + addr, "API_TOKENS=" + s.APIToken})))
	}
	procs := slices.Concat([]*Process{s.Sim}, s.Workers, s.APIs)
	s.logf("starting %d workers, %d apis and the sim", len(s.Workers), len(s.APIs))
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

func (s *Stack) newWorker(n int) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := s.newProc(fmt.Sprintf("worker-%d", n), filepath.Join(s.BinDir, "worker"), addr, "/readyz",
		slices.Concat(s.AppEnv(), []string{"WORKER_ADDR=" + addr}))
	s.Workers = append(s.Workers, p)
	return p, nil
}

// AppEnv is the environment of bin/api and bin/worker (without their
// listen address): both the v2 and the v3 keys, the sim as WeChat Pay.
func (s *Stack) AppEnv() []string {
	env := slices.Concat(s.commonEnv(), []string{
		"TEMPORAL_ADDRESS=" + s.TemporalAddress,
		"TEMPORAL_NAMESPACE=default",
		"TEMPORAL_TASK_QUEUE=" + s.TaskQueue,
		"WECHATPAY_API_VERSION=" + s.opts.APIVersion,
		"WECHATPAY_BASE_URL=" + s.SimURL,
		"WECHATPAY_NOTIFY_URL=" + s.NotifyBaseURL + notifyPath(s.opts.APIVersion),
	})
	for _, kv := range []struct {
		name string
		d    time.Duration
	}{
		{"ORDER_QUERY_AFTER", s.opts.OrderQueryAfter},
		{"RECONCILE_INTERVAL", s.opts.ReconcileInterval},
		{"RECONCILE_GRACE", s.opts.ReconcileGrace},
	} {
		if kv.d > 0 {
			env = append(env, kv.name+"="+kv.d.String())
		}
	}
	return append(env, s.opts.Env...)
}

// commonEnv is what every process of ours gets: the merchant and its keys.
func (s *Stack) commonEnv() []string {
	return []string{
		"DATABASE_URL=" + s.DatabaseURL,
		"WECHATPAY_APPID=" + AppID,
		"WECHATPAY_MCHID=" + MchID,
		"WECHATPAY_API_KEY=" + APIKey,
		"WECHATPAY_APIV3_KEY=" + s.APIv3Key,
		"WECHATPAY_PUBLIC_KEY_FILE=" + s.Keys.PublicKeyFile,
		"WECHATPAY_PUBLIC_KEY_ID=" + s.Keys.PublicKeyID,
		"WECHATPAY_MCH_PRIVATE_KEY_FILE=" + s.Keys.MchPrivateKeyFile,
		"WECHATPAY_MCH_CERT_SERIAL=" + s.Keys.MchCertSerial,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
	}
}

// Authorize adds the apis' bearer token to a request of the order API
// (everything but the notify endpoints and the probes needs it).
func (s *Stack) Authorize(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+s.APIToken)
}

// newToken makes a random bearer token: 64 hex characters.
func newToken() string {
	b := make([]byte, 32)
	if _, err := crand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
	}
	return hex.EncodeToString(b)
}

func notifyPath(version string) string {
	if version == "v3" {
		return "/wechatpay/v3/notify"
	}
	return "/wechatpay/notify"
}

// newProc describes a process listening on addr whose readiness is a 200
// from readyPath there.
func (s *Stack) newProc(name, path, addr, readyPath string, env []string) *Process {
	p := &Process{Name: name, Path: path, Env: env, Addr: addr, LogFile: filepath.Join(s.Dir, "logs", name+".log")}
	if readyPath != "" {
		p.ready = httpReady("http://" + addr + readyPath)
	}
	return p
}

func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// binaries builds api, worker and wechatpay-sim unless Options.BinDir has
// them, and finds the Temporal CLI when a dev server is needed.
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
	if s.opts.TemporalAddress != "" {
		return nil
	}
	if s.opts.TemporalBin == "" {
		s.opts.TemporalBin = os.Getenv("TEMPORAL_BIN")
	}
	if s.opts.TemporalBin == "" {
		s.opts.TemporalBin = filepath.Join(mod, "bin", "temporal")
	}
	s.opts.TemporalBin, _ = filepath.Abs(s.opts.TemporalBin)
	if _, err := os.Stat(s.opts.TemporalBin); err != nil {
		return fmt.Errorf("the Temporal CLI is needed at %s (run `make temporal`, or set TEMPORAL_BIN)", s.opts.TemporalBin)
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

// startTemporal runs the dev server with its state in Dir/temporal.db, so
// that a restart keeps every workflow, as a real cluster would.
func (s *Stack) startTemporal(ctx context.Context) error {
	if s.opts.TemporalAddress != "" {
		s.TemporalAddress = s.opts.TemporalAddress
		return nil
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
	s.Temporal = &Process{
		Name: "temporal", Path: s.opts.TemporalBin, Addr: addr,
		Args: []string{"server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", port, "--ui-port", uiPort,
			"--db-filename", filepath.Join(s.Dir, "temporal.db"), "--log-level", "error",
			// Temporal suggests continuing as new after this many events
			// (4096 by default): low here, so long order runs do it.
			"--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=150"},
		Env:     []string{"HOME=" + s.Dir, "PATH=" + os.Getenv("PATH")},
		LogFile: filepath.Join(s.Dir, "logs", "temporal.log"),
		ready:   temporalReady(addr),
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
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: quietLogger{}})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
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

// Processes is every process of ours (not PostgreSQL), Temporal first.
func (s *Stack) Processes() []*Process {
	var ps []*Process
	if s.Temporal != nil {
		ps = append(ps, s.Temporal)
	}
	if s.Sim != nil {
		ps = append(ps, s.Sim)
	}
	return slices.Concat(ps, s.Workers, s.APIs)
}

// DumpLogs writes the tail of every process's log to w.
func (s *Stack) DumpLogs(w io.Writer, n int) {
	for _, p := range s.Processes() {
		fmt.Fprintf(w, "----- %s (tail of %s) -----\n%s\n", p.Name, p.LogFile, p.LogTail(n))
	}
}

// Close stops every process (SIGTERM), PostgreSQL and Temporal, and
// removes the directory it made unless Options.Keep.
func (s *Stack) Close() error {
	var errs []error
	for _, p := range slices.Concat(s.APIs, s.Workers, []*Process{s.Sim}) {
		if p != nil {
			errs = append(errs, p.Stop())
		}
	}
	if s.Client != nil {
		s.Client.Close()
	}
	if s.Temporal != nil {
		errs = append(errs, s.Temporal.Stop())
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
	fmt.Fprintf(s.opts.Log, "stack: "+format+"\n", args...)
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

// quietLogger drops the Temporal SDK's log lines (it logs every reconnect
// attempt while a server is down, which is expected here).
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
