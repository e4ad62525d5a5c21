package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/sim"
)

// Test merchant settings shared by the api, the worker and the sim.
const (
	appID  = "wx2421b1c4370ec43b"
	mchID  = "10000100"
	apiKey = "192006250b4c09247ec02edce69f6a2d"
)

// stack is the whole system under test: one PostgreSQL and one Temporal
// server shared by two deployments of our processes on loopback ports.
type stack struct {
	dir         string
	bins        string
	temporalBin string
	pg          *pgtest.Cluster
	dbURL       string
	temporal    *proc
	temporalHP  string
	uiURL       string
	tc          client.Client
	keys        sim.KeyFiles
	apiV3Key    string

	// v2 queries WeChat with API v2 and trusts only the primary WeChat Pay
	// public key; v3 queries with API v3 and also trusts a second public
	// key and a platform certificate (a merchant mid-rotation).
	v2, v3 *deployment
}

// deployment is one sim + worker + api, on its own task queue. The api
// requires a bearer token (API_TOKENS), as in production.
type deployment struct {
	name        string
	dbURL       string // the deployment's own database
	taskQueue   string
	apiURL      string
	token       string // the api's bearer token; do sends it to apiURL
	simURL      string
	workerAddr  string
	api, worker *proc
	sim         *proc
}

var st *stack

func TestMain(m *testing.M) {
	code, err := runMain(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		code = 1
	}
	os.Exit(code)
}

func runMain(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := startStack(ctx)
	if s != nil {
		defer s.close()
	}
	if err != nil {
		if s != nil {
			s.dumpLogs()
		}
		return 1, err
	}
	st = s
	code := m.Run()
	if code != 0 {
		s.dumpLogs()
	}
	return code, nil
}

func startStack(ctx context.Context) (*stack, error) {
	temporalBin := os.Getenv("TEMPORAL_BIN")
	if temporalBin == "" {
		temporalBin = "../bin/temporal"
	}
	temporalBin, _ = filepath.Abs(temporalBin)
	if _, err := os.Stat(temporalBin); err != nil {
		return nil, fmt.Errorf("the Temporal CLI is needed at %s (run `make temporal`, or set TEMPORAL_BIN)", temporalBin)
	}
	dir, err := os.MkdirTemp("", "payflow-e2e-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir, bins: filepath.Join(dir, "bin"), temporalBin: temporalBin}

	// Build the contract's binaries from this tree.
	build := exec.CommandContext(ctx, "go", "build", "-o", s.bins+"/", "../cmd/api", "../cmd/worker", "../cmd/wechatpay-sim")
	if out, err := build.CombinedOutput(); err != nil {
		return s, fmt.Errorf("go build: %v\n%s", err, out)
	}
	if s.keys, err = sim.GenerateKeys(filepath.Join(dir, "keys")); err != nil {
		return s, err
	}
	v3key, err := os.ReadFile(s.keys.APIv3KeyFile)
	if err != nil {
		return s, err
	}
	s.apiV3Key = strings.TrimSpace(string(v3key))

	if s.pg, err = pgtest.Start(ctx); err != nil {
		return s, err
	}
	if s.dbURL, err = s.pg.CreateDatabase(ctx, "payments"); err != nil {
		return s, err
	}
	// Each deployment has its own database, as each has its own task queue
	// and safety net: a deployment's safety net hands only its own orders
	// to its own workers (and their own sandbox).
	if _, err = s.pg.CreateDatabase(ctx, "payments_v2"); err != nil {
		return s, err
	}
	if _, err = s.pg.CreateDatabase(ctx, "payments_v3"); err != nil {
		return s, err
	}
	if err := s.startTemporal(ctx); err != nil {
		return s, err
	}
	if s.tc, err = client.DialContext(ctx, client.Options{HostPort: s.temporalHP}); err != nil {
		return s, err
	}
	if s.v2, err = s.deploy(ctx, "v2", []string{
		"WECHATPAY_API_VERSION=v2",
		"ORDER_QUERY_AFTER=1h",
	}); err != nil {
		return s, err
	}
	if s.v3, err = s.deploy(ctx, "v3", []string{
		"WECHATPAY_API_VERSION=v3",
		"WECHATPAY_PLATFORM_CERT_DIR=" + s.keys.PlatformCertDir,
		"ORDER_QUERY_AFTER=2s",
	}); err != nil {
		return s, err
	}
	return s, nil
}

// deploy starts a sim, a worker and an api for one configuration.
func (s *stack) deploy(ctx context.Context, name string, appEnv []string) (*deployment, error) {
	apiAddr, simAddr := freeAddr(), freeAddr()
	d := &deployment{name: name, taskQueue: "e2e-" + name, workerAddr: freeAddr(),
		dbURL:  strings.Replace(s.dbURL, "/payments", "/payments_"+name, 1),
		apiURL: "http://" + apiAddr, simURL: "http://" + simAddr, token: newToken()}
	registerAPI(d)
	notifyPath := "/wechatpay/notify"
	if name == "v3" {
		notifyPath = "/wechatpay/v3/notify"
	}
	common := slices.Concat(s.env(d), appEnv)
	d.sim = newProc(s, name+"-wechatpay-sim", filepath.Join(s.bins, "wechatpay-sim"), slices.Concat(s.env(d), []string{
		"SIM_ADDR=" + simAddr,
		"SIM_KEYS_DIR=" + s.keys.Dir,
		"SIM_NOTIFY_VERSION=" + name,
		"SIM_NOTIFY_URL=" + d.apiURL + "/wechatpay/notify",
		"SIM_NOTIFY_URL_V3=" + d.apiURL + "/wechatpay/v3/notify",
		"SIM_TIME_SCALE=0.001",
		"SIM_REFUND_PROCESSING=1s", // scaled: a refund is PROCESSING for 1 ms at the sandbox
	}))
	// Refunds are asked with API v3 in both deployments, so WeChat notifies
	// them in v3 format: the refund notify_url is the v3 endpoint.
	d.worker = newProc(s, name+"-worker", filepath.Join(s.bins, "worker"), slices.Concat(common, []string{
		"WORKER_ADDR=" + d.workerAddr, "WECHATPAY_NOTIFY_URL=" + d.apiURL + notifyPath,
		"WECHATPAY_REFUND_NOTIFY_URL=" + d.apiURL + "/wechatpay/v3/notify", "REFUND_QUERY_AFTER=3s"}))
	d.api = newProc(s, name+"-api", filepath.Join(s.bins, "api"), slices.Concat(common, []string{
		"API_ADDR=" + apiAddr, "WECHATPAY_NOTIFY_URL=" + d.apiURL + notifyPath, "API_TOKENS=" + d.token}))
	for _, p := range []*proc{d.sim, d.worker, d.api} {
		if err := p.start(); err != nil {
			return d, err
		}
	}
	for _, u := range []string{d.simURL + "/healthz", "http://" + d.workerAddr + "/readyz", d.apiURL + "/readyz"} {
		if err := waitHTTP(ctx, u); err != nil {
			return d, err
		}
	}
	return d, nil
}

// env is the configuration every process of a deployment gets: the
// primary WeChat Pay public key for everyone, the merchant's v3 keys.
func (s *stack) env(d *deployment) []string {
	return []string{
		"DATABASE_URL=" + d.dbURL,
		"TEMPORAL_ADDRESS=" + s.temporalHP,
		"TEMPORAL_NAMESPACE=default",
		"TEMPORAL_TASK_QUEUE=" + d.taskQueue,
		// The safety net hands over what is older than this: short, so the
		// tests need not wait a minute for stranded notifications.
		"RECONCILE_GRACE=2s",
		"WECHATPAY_APPID=" + appID,
		"WECHATPAY_MCHID=" + mchID,
		"WECHATPAY_API_KEY=" + apiKey,
		"WECHATPAY_APIV3_KEY=" + s.apiV3Key,
		"WECHATPAY_PUBLIC_KEY_FILE=" + s.keys.PublicKeyFile,
		"WECHATPAY_PUBLIC_KEY_ID=" + s.keys.PublicKeyID,
		"WECHATPAY_MCH_PRIVATE_KEY_FILE=" + s.keys.MchPrivateKeyFile,
		"WECHATPAY_MCH_CERT_SERIAL=" + s.keys.MchCertSerial,
		"WECHATPAY_BASE_URL=" + d.simURL,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
	}
}

// startTemporal runs the dev server with its state in a file, so a restart
// keeps every workflow (as a real cluster would).
func (s *stack) startTemporal(ctx context.Context) error {
	s.temporalHP = freeAddr()
	_, port, _ := net.SplitHostPort(s.temporalHP)
	_, uiPort, _ := net.SplitHostPort(freeAddr())
	s.temporal = newProc(s, "temporal", s.temporalBin, []string{"HOME=" + s.dir, "PATH=" + os.Getenv("PATH")},
		"server", "start-dev", "--ip", "127.0.0.1", "--port", port, "--ui-port", uiPort,
		"--db-filename", filepath.Join(s.dir, "temporal.db"), "--log-level", "error",
		// Temporal suggests continuing as new after this many events (4096
		// by default): low here, so that long order runs do it in the tests.
		"--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=150")
	s.uiURL = "http://127.0.0.1:" + uiPort
	if err := s.temporal.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.temporalHP})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("temporal dev server did not come up on %s", s.temporalHP)
}

func (s *stack) close() {
	for _, d := range []*deployment{s.v2, s.v3} {
		if d == nil {
			continue
		}
		for _, p := range []*proc{d.api, d.worker, d.sim} {
			if p != nil {
				p.stop()
			}
		}
	}
	if s.temporal != nil {
		s.temporal.stop()
	}
	if s.tc != nil {
		s.tc.Close()
	}
	if s.pg != nil {
		_ = s.pg.Close()
	}
	if os.Getenv("E2E_KEEP") == "" {
		_ = os.RemoveAll(s.dir)
	}
}

func (s *stack) dumpLogs() {
	for _, name := range []string{"v2-api", "v2-worker", "v2-wechatpay-sim", "v3-api", "v3-worker", "v3-wechatpay-sim", "temporal"} {
		b, err := os.ReadFile(filepath.Join(s.dir, name+".log"))
		if err != nil {
			continue
		}
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		fmt.Fprintf(os.Stderr, "----- %s.log (tail) -----\n%s\n", name, b)
	}
}

// proc is one of the stack's processes, restartable.
type proc struct {
	name, path string
	args, env  []string
	log        string
	cmd        *exec.Cmd
	done       chan struct{}
}

func newProc(s *stack, name, path string, env []string, args ...string) *proc {
	return &proc{name: name, path: path, args: args, env: env, log: filepath.Join(s.dir, name+".log")}
}

func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return nil
}

// kill is a crash: SIGKILL, no chance to clean up.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// stop is a clean shutdown: SIGTERM, then SIGKILL after 15 s.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
	p.cmd = nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

// apiTokens maps the base URL of each api under test to its bearer token.
var apiTokens sync.Map

// registerAPI makes do send d's token with every request to d's api.
func registerAPI(d *deployment) { apiTokens.Store(d.apiURL, d.token) }

// authorize adds the bearer token of the api that url points to, if it
// is one of ours (the sims get none).
func authorize(req *http.Request) {
	base := req.URL.Scheme + "://" + req.URL.Host
	if tok, ok := apiTokens.Load(base); ok && tok.(string) != "" {
		req.Header.Set("Authorization", "Bearer "+tok.(string))
	}
}

// newToken makes a random bearer token: 64 hex characters.
func newToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// do sends a JSON request and decodes a JSON answer into out (if non-nil).
// A request to one of the apis under test carries that api's token.
func do(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

func uniqueNo(prefix string) string {
	return strings.ToUpper(prefix) + fmt.Sprint(time.Now().UnixNano())[6:]
}
