package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	stacklib "github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/sim"
)

// Test merchant settings shared by the api, the worker and the sim.
const (
	appID  = stacklib.AppID
	mchID  = stacklib.MchID
	apiKey = stacklib.APIKey
)

// suite is the system under test (internal/stack): one PostgreSQL and one
// Temporal dev server shared by two deployments of our processes on
// loopback ports, each with its own task queue and database.
type suite struct {
	*stacklib.Stack
	tc       client.Client
	keys     sim.KeyFiles
	apiV3Key string

	// v2 queries WeChat with API v2 and trusts only the primary WeChat Pay
	// public key; v3 queries with API v3 and also trusts a second public
	// key and a platform certificate (a merchant mid-rotation).
	v2, v3 *deployment
}

// deployment is one sim + worker + api of the stack, on its own task queue
// and database. The api requires a bearer token (API_TOKENS), as in
// production.
type deployment struct {
	*stacklib.Deployment
	name        string
	dbURL       string // the deployment's own database
	taskQueue   string
	apiURL      string
	token       string // the api's bearer token; do sends it to apiURL
	simURL      string
	workerAddr  string
	api, worker *process
	sim         *process
	temporal    client.Client // where its workflows run, to explain a failed wait; nil: the shared stack's
}

// process is one of the stack's processes as the tests drive it.
type process struct{ *stacklib.Process }

// start starts the process again (it does not wait until it is ready).
func (p *process) start() error { return p.Start() }

// stop is a clean shutdown: SIGTERM, then SIGKILL after 15 s.
func (p *process) stop() { _ = p.Stop() }

// kill is a crash: SIGKILL, no chance to clean up.
func (p *process) kill() { _ = p.Kill() }

var st *suite

func TestMain(m *testing.M) {
	flag.Parse() // testing.Verbose, below, needs the flags
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
	s, err := startSuite(ctx)
	if err != nil {
		return 1, err // Start stopped what it started, and its error has the log's tail
	}
	defer s.Close()
	st = s
	code := m.Run()
	if code != 0 {
		s.DumpLogs(os.Stderr, 8000)
	}
	return code, nil
}

// startSuite brings up the two deployments, built from this tree.
func startSuite(ctx context.Context) (*suite, error) {
	common := stacklib.DeploymentOptions{
		// The safety net hands over what is older than this: short, so the
		// tests need not wait a minute for stranded notifications.
		ReconcileGrace: 2 * time.Second,
		SimEnv:         []string{"SIM_REFUND_PROCESSING=1s"}, // scaled: a refund is PROCESSING for 1 ms at the sandbox
		WorkerEnv:      []string{"REFUND_QUERY_AFTER=3s"},
	}
	v2, v3 := common, common
	v2.Name, v2.TaskQueue, v2.APIVersion, v2.NotifyVersion = "v2", "e2e-v2", "v2", "v2"
	v2.OrderQueryAfter = time.Hour
	v3.Name, v3.TaskQueue, v3.APIVersion, v3.NotifyVersion = "v3", "e2e-v3", "v3", "v3"
	v3.OrderQueryAfter = 2 * time.Second
	v3.PlatformCerts = true
	s, err := stacklib.Start(ctx, stacklib.Options{
		Keep:        os.Getenv("E2E_KEEP") != "",
		Temporal:    stacklib.TemporalOptions{UI: true}, // TestTemporalUIFindsPaymentByOutTradeNo
		Deployments: []stacklib.DeploymentOptions{v2, v3},
		Logf: func(format string, args ...any) {
			if testing.Verbose() {
				fmt.Fprintf(os.Stderr, format+"\n", args...)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	su := &suite{Stack: s, tc: s.Client, keys: s.Keys, apiV3Key: s.APIv3Key}
	for _, p := range []struct {
		d **deployment
		n string
	}{{&su.v2, "v2"}, {&su.v3, "v3"}} {
		*p.d = newDeployment(s.Deployment(p.n))
		registerAPI(*p.d)
	}
	return su, nil
}

func newDeployment(d *stacklib.Deployment) *deployment {
	return &deployment{
		Deployment: d, name: d.Name, dbURL: d.DatabaseURL, taskQueue: d.TaskQueue,
		apiURL: d.APIURLs[0], token: d.APIToken, simURL: d.SimURL, workerAddr: d.Workers[0].Addr,
		api: &process{d.APIs[0]}, worker: &process{d.Workers[0]}, sim: &process{d.Sim},
	}
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
func newToken() string { return stacklib.NewToken() }

// freeAddr is a free loopback host:port for a process a test starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := stacklib.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
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
