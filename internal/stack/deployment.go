package stack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeploymentOptions describe one deployment: a bin/wechatpay-sim, its
// bin/worker(s) and bin/api(s), on a task queue and a database of their
// own. The zero value is one worker, one api and a sim, queries in API v3.
type DeploymentOptions struct {
	// Name tells deployments apart: it prefixes their processes' names
	// ("v2-api-1") and log files. "" is allowed for one deployment.
	Name string
	// Database is the deployment's database on the stack's cluster;
	// "" means "payments", or "payments_<Name>".
	Database string
	// TaskQueue defaults to "payments", or "payments-<Name>"; use a unique
	// one on a shared external Temporal.
	TaskQueue string

	Workers int // bin/worker processes (default 1)
	APIs    int // bin/api processes (default 1)

	// APIVersion is WECHATPAY_API_VERSION of api and worker (default v3).
	APIVersion string
	// NotifyVersion is SIM_NOTIFY_VERSION: the format of notifications for
	// trades not prepaid (default v2).
	NotifyVersion string
	// NotifyBaseURL is where notifications go (the sim's SIM_NOTIFY_URL and
	// the apps' WECHATPAY_NOTIFY_URL, with the /wechatpay/… paths
	// appended): a load balancer in front of the apis, say. "" is the first
	// api.
	NotifyBaseURL string
	// PlatformCerts makes api and worker also trust the sandbox's platform
	// certificate and second public key (WECHATPAY_PLATFORM_CERT_DIR): a
	// merchant in the middle of a key rotation.
	PlatformCerts bool

	SimTimeScale      float64       // SIM_TIME_SCALE (0: 0.001, retries almost at once)
	SimQueryDelay     time.Duration // SIM_QUERY_DELAY (0: none)
	OrderQueryAfter   time.Duration // ORDER_QUERY_AFTER (0: the service's default)
	ReconcileInterval time.Duration // RECONCILE_INTERVAL (0: the service's default)
	ReconcileGrace    time.Duration // RECONCILE_GRACE (0: the service's default)

	// APIToken is the bearer token the apis require (API_TOKENS), as in
	// production; "" makes a random one. Deployment.Authorize adds it to a
	// request.
	APIToken string

	Env       []string // more environment for api and worker (AppEnv)
	WorkerEnv []string // more environment for the workers only
	APIEnv    []string // more environment for the apis only
	SimEnv    []string // more environment for the sim
}

// Deployment is a running deployment. Its fields are set by Start; do not
// change them.
type Deployment struct {
	Name        string
	TaskQueue   string
	DatabaseURL string // the deployment's own database

	Workers []*Process // Addr is each one's WORKER_ADDR (/readyz, /metrics)
	APIs    []*Process
	Sim     *Process

	APIURLs       []string // http://host:port of each api, in APIs' order
	APIToken      string   // the apis' bearer token (API_TOKENS); see Authorize
	SimURL        string
	NotifyBaseURL string

	s           *Stack
	opts        DeploymentOptions
	workerAddrs []string
}

// newDeployment fills in the defaults, creates the database and picks the
// addresses; build makes the processes once Temporal's address is known.
func (s *Stack) newDeployment(ctx context.Context, o DeploymentOptions) (*Deployment, error) {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.APIs <= 0 {
		o.APIs = 1
	}
	if o.APIVersion == "" {
		o.APIVersion = "v3"
	}
	if o.NotifyVersion == "" {
		o.NotifyVersion = "v2"
	}
	if o.SimTimeScale == 0 {
		o.SimTimeScale = 0.001
	}
	if o.Database == "" {
		o.Database = suffixed("payments", "_", o.Name)
	}
	if o.TaskQueue == "" {
		o.TaskQueue = suffixed("payments", "-", o.Name)
	}
	d := &Deployment{Name: o.Name, TaskQueue: o.TaskQueue, APIToken: o.APIToken, s: s, opts: o}
	if d.APIToken == "" {
		d.APIToken = NewToken()
	}
	var err error
	if d.DatabaseURL, err = s.PG.CreateDatabase(ctx, o.Database); err != nil {
		return nil, err
	}
	for range o.APIs {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		d.APIURLs = append(d.APIURLs, "http://"+addr)
	}
	d.NotifyBaseURL = o.NotifyBaseURL
	if d.NotifyBaseURL == "" {
		d.NotifyBaseURL = d.APIURLs[0]
	}
	simAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	d.SimURL = "http://" + simAddr
	for range o.Workers {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		d.workerAddrs = append(d.workerAddrs, addr)
	}
	return d, nil
}

func suffixed(base, sep, name string) string {
	if name == "" {
		return base
	}
	return base + sep + name
}

// procName is a process's name within the stack: prefixed with the
// deployment's name.
func (d *Deployment) procName(role string) string {
	if d.Name == "" {
		return role
	}
	return d.Name + "-" + role
}

// build describes the deployment's processes (not started).
func (d *Deployment) build() {
	o := d.opts
	simAddr := strings.TrimPrefix(d.SimURL, "http://")
	d.Sim = d.process("wechatpay-sim", "wechatpay-sim", simAddr, "/healthz", slices.Concat(d.commonEnv(), []string{
		"SIM_ADDR=" + simAddr,
		"SIM_KEYS_DIR=" + d.s.Keys.Dir,
		"SIM_NOTIFY_VERSION=" + o.NotifyVersion,
		"SIM_NOTIFY_URL=" + d.NotifyBaseURL + "/wechatpay/notify",
		"SIM_NOTIFY_URL_V3=" + d.NotifyBaseURL + "/wechatpay/v3/notify",
		"SIM_TIME_SCALE=" + strconv.FormatFloat(o.SimTimeScale, 'f', -1, 64),
		"SIM_QUERY_DELAY=" + o.SimQueryDelay.String(),
	}, o.SimEnv))
	// Refunds are asked with API v3 whatever WECHATPAY_API_VERSION says, so
	// WeChat notifies them in v3 format, at the v3 endpoint.
	for i, addr := range d.workerAddrs {
		d.Workers = append(d.Workers, d.process(fmt.Sprintf("worker-%d", i+1), "worker", addr, "/readyz",
			slices.Concat(d.AppEnv(), []string{
				"WORKER_ADDR=" + addr,
				"WECHATPAY_REFUND_NOTIFY_URL=" + d.NotifyBaseURL + notifyPath("v3"),
			}, o.WorkerEnv)))
	}
	for i, u := range d.APIURLs {
		d.APIs = append(d.APIs, d.NewAPI(fmt.Sprintf("api-%d", i+1), strings.TrimPrefix(u, "http://")))
	}
}

// NewAPI describes one more bin/api of the deployment, not started: named
// name (prefixed with the deployment's), listening on addr, with the
// deployment's api environment followed by env (a later KEY=value wins).
// Start it, WaitReady (/readyz) and Stop it yourself.
func (d *Deployment) NewAPI(name, addr string, env ...string) *Process {
	return d.process(name, "api", addr, "/readyz", slices.Concat(d.AppEnv(),
		[]string{"API_ADDR=" + addr, "API_TOKENS=" + d.APIToken}, d.opts.APIEnv, env))
}

// process describes one of the deployment's processes: binary bin of the
// stack's, listening on addr, ready when readyPath there answers 200.
func (d *Deployment) process(name, bin, addr, readyPath string, env []string) *Process {
	name = d.procName(name)
	return &Process{
		Name: name, Path: filepath.Join(d.s.BinDir, bin), Env: env, Addr: addr,
		LogFile: filepath.Join(d.s.Dir, "logs", name+".log"),
		Ready:   HTTPReady("http://" + addr + readyPath),
	}
}

// AppEnv is the environment of the deployment's bin/api and bin/worker
// (without their listen address and the api's tokens): the merchant's v2
// and v3 keys, the deployment's database and task queue, the sim as
// WeChat Pay, DeploymentOptions.Env last.
func (d *Deployment) AppEnv() []string {
	o := d.opts
	env := slices.Concat(d.commonEnv(), []string{
		"TEMPORAL_ADDRESS=" + d.s.TemporalAddress,
		"TEMPORAL_NAMESPACE=default",
		"TEMPORAL_TASK_QUEUE=" + d.TaskQueue,
		"WECHATPAY_API_VERSION=" + o.APIVersion,
		"WECHATPAY_BASE_URL=" + d.SimURL,
		"WECHATPAY_NOTIFY_URL=" + d.NotifyBaseURL + notifyPath(o.APIVersion),
	})
	if o.PlatformCerts {
		env = append(env, "WECHATPAY_PLATFORM_CERT_DIR="+d.s.Keys.PlatformCertDir)
	}
	for _, kv := range []struct {
		name string
		d    time.Duration
	}{
		{"ORDER_QUERY_AFTER", o.OrderQueryAfter},
		{"RECONCILE_INTERVAL", o.ReconcileInterval},
		{"RECONCILE_GRACE", o.ReconcileGrace},
	} {
		if kv.d > 0 {
			env = append(env, kv.name+"="+kv.d.String())
		}
	}
	return append(env, o.Env...)
}

// commonEnv is what every process of the deployment gets: its database,
// the merchant and its keys.
func (d *Deployment) commonEnv() []string {
	k := d.s.Keys
	return []string{
		"DATABASE_URL=" + d.DatabaseURL,
		"WECHATPAY_APPID=" + AppID,
		"WECHATPAY_MCHID=" + MchID,
		"WECHATPAY_API_KEY=" + APIKey,
		"WECHATPAY_APIV3_KEY=" + d.s.APIv3Key,
		"WECHATPAY_PUBLIC_KEY_FILE=" + k.PublicKeyFile,
		"WECHATPAY_PUBLIC_KEY_ID=" + k.PublicKeyID,
		"WECHATPAY_MCH_PRIVATE_KEY_FILE=" + k.MchPrivateKeyFile,
		"WECHATPAY_MCH_CERT_SERIAL=" + k.MchCertSerial,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
	}
}

func notifyPath(version string) string {
	if version == "v3" {
		return "/wechatpay/v3/notify"
	}
	return "/wechatpay/notify"
}

// Authorize adds the apis' bearer token to a request of the order API
// (everything but the notify endpoints and the probes needs it).
func (d *Deployment) Authorize(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+d.APIToken)
}

// Processes is the deployment's sim, workers and apis, in that order.
func (d *Deployment) Processes() []*Process {
	var ps []*Process
	if d.Sim != nil {
		ps = append(ps, d.Sim)
	}
	return slices.Concat(ps, d.Workers, d.APIs)
}
