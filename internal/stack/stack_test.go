package stack

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/sim"
)

// The stack's apis run as in production, with API_TOKENS: a token that
// bin/api accepts, and Authorize sends it the way the api checks it.
func TestAPITokenAndAuthorize(t *testing.T) {
	tok := NewToken()
	if len(tok) != 64 || tok == NewToken() {
		t.Fatalf("token %q: want 64 random hex characters", tok)
	}
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"WECHATPAY_APPID": AppID, "WECHATPAY_MCHID": MchID, "API_TOKENS": tok}[k]
	})
	if err != nil || len(cfg.APITokens) != 1 || cfg.APITokens[0].Reveal() != tok {
		t.Fatalf("bin/api would not take the token: %v", err)
	}
	d := &Deployment{APIToken: tok}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/orders", nil)
	d.Authorize(req)
	if got := req.Header.Get("Authorization"); got != "Bearer "+tok {
		t.Fatalf("Authorization = %q", got)
	}
}

// lookup is the value exec gives a process for key: the last one in env.
func lookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Each deployment has its own names, database, task queue, sim and token,
// and its processes the environment its options say, with the more
// specific settings last. Nothing is started.
func TestDeploymentsEnvironment(t *testing.T) {
	s := &Stack{Dir: "/stack", BinDir: "/stack/bin", TemporalAddress: "127.0.0.1:7",
		Keys: sim.KeyFiles{Dir: "/stack/keys", PlatformCertDir: "/stack/keys/platform"}, APIv3Key: "k3"}
	build := func(o DeploymentOptions, db string) *Deployment {
		if o.Workers == 0 {
			o.Workers = 1
		}
		d := &Deployment{Name: o.Name, TaskQueue: suffixed("payments", "-", o.Name), APIToken: "tok-" + o.Name, s: s, opts: o,
			DatabaseURL: "postgres://x/" + db, SimURL: "http://127.0.0.1:20" + o.Name[1:], APIURLs: []string{"http://127.0.0.1:30" + o.Name[1:]},
			NotifyBaseURL: "http://127.0.0.1:30" + o.Name[1:]}
		for range o.Workers {
			d.workerAddrs = append(d.workerAddrs, "127.0.0.1:40"+o.Name[1:])
		}
		if o.APIVersion == "" {
			d.opts.APIVersion = "v3"
		}
		d.build()
		return d
	}
	v2 := build(DeploymentOptions{Name: "v2", APIVersion: "v2", NotifyVersion: "v2", OrderQueryAfter: 3600e9, ReconcileGrace: 2e9,
		WorkerEnv: []string{"REFUND_QUERY_AFTER=3s"}, SimEnv: []string{"SIM_REFUND_PROCESSING=1s"}}, "payments_v2")
	v3 := build(DeploymentOptions{Name: "v3", PlatformCerts: true, Env: []string{"ORDER_QUERY_AFTER=5s"},
		APIEnv: []string{"X_API_ONLY=1"}}, "payments_v3")

	if got := []string{v2.Sim.Name, v2.Workers[0].Name, v2.APIs[0].Name}; !slices.Equal(got, []string{"v2-wechatpay-sim", "v2-worker-1", "v2-api-1"}) {
		t.Fatalf("names = %v", got)
	}
	if v2.APIs[0].LogFile != "/stack/logs/v2-api-1.log" || v2.Workers[0].Path != "/stack/bin/worker" || v2.Workers[0].Addr != "127.0.0.1:402" {
		t.Fatalf("api %+v, worker %+v", v2.APIs[0], v2.Workers[0])
	}
	for _, tt := range []struct {
		p         *Process
		key, want string
	}{
		{v2.Workers[0], "DATABASE_URL", "postgres://x/payments_v2"},
		{v3.Workers[0], "DATABASE_URL", "postgres://x/payments_v3"},
		{v2.Sim, "DATABASE_URL", "postgres://x/payments_v2"},
		{v2.APIs[0], "TEMPORAL_TASK_QUEUE", "payments-v2"},
		{v2.APIs[0], "TEMPORAL_ADDRESS", "127.0.0.1:7"},
		{v2.APIs[0], "API_TOKENS", "tok-v2"},
		{v3.APIs[0], "API_TOKENS", "tok-v3"},
		{v2.APIs[0], "WECHATPAY_API_VERSION", "v2"},
		{v2.APIs[0], "WECHATPAY_NOTIFY_URL", "http://127.0.0.1:302/wechatpay/notify"},
		{v3.Workers[0], "WECHATPAY_NOTIFY_URL", "http://127.0.0.1:303/wechatpay/v3/notify"},
		{v2.Workers[0], "WECHATPAY_BASE_URL", "http://127.0.0.1:202"},
		{v2.Workers[0], "ORDER_QUERY_AFTER", "1h0m0s"},
		{v2.Workers[0], "RECONCILE_GRACE", "2s"},
		{v2.Workers[0], "REFUND_QUERY_AFTER", "3s"},
		{v2.Workers[0], "WECHATPAY_REFUND_NOTIFY_URL", "http://127.0.0.1:302/wechatpay/v3/notify"},
		{v2.Sim, "SIM_REFUND_PROCESSING", "1s"},
		{v2.Sim, "SIM_NOTIFY_URL", "http://127.0.0.1:302/wechatpay/notify"},
		{v3.Workers[0], "WECHATPAY_PLATFORM_CERT_DIR", "/stack/keys/platform"},
		{v3.Workers[0], "ORDER_QUERY_AFTER", "5s"},
		{v3.APIs[0], "X_API_ONLY", "1"},
	} {
		if got, _ := lookup(tt.p.Env, tt.key); got != tt.want {
			t.Errorf("%s: %s = %q, want %q", tt.p.Name, tt.key, got, tt.want)
		}
	}
	for _, tt := range []struct {
		p   *Process
		key string
	}{
		{v2.APIs[0], "REFUND_QUERY_AFTER"}, {v2.APIs[0], "WECHATPAY_REFUND_NOTIFY_URL"}, {v3.Workers[0], "X_API_ONLY"}, {v2.Workers[0], "WECHATPAY_PLATFORM_CERT_DIR"},
		{v2.Sim, "TEMPORAL_ADDRESS"}, {v2.Workers[0], "API_TOKENS"},
	} {
		if v, ok := lookup(tt.p.Env, tt.key); ok {
			t.Errorf("%s has %s=%s", tt.p.Name, tt.key, v)
		}
	}
	// An extra api: the deployment's environment, then the overrides.
	extra := v2.NewAPI("loopback", "127.0.0.1:9", "API_TOKENS=")
	if extra.Name != "v2-loopback" || extra.Addr != "127.0.0.1:9" {
		t.Fatalf("extra api %+v", extra)
	}
	if v, _ := lookup(extra.Env, "API_TOKENS"); v != "" {
		t.Fatalf("override lost: API_TOKENS=%q", v)
	}
	if v, _ := lookup(extra.Env, "API_ADDR"); v != "127.0.0.1:9" {
		t.Fatalf("API_ADDR=%q", v)
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Deployments: []DeploymentOptions{{Name: "a"}, {Name: "a"}}},
		{Temporal: TemporalOptions{Server: TemporalExternal}},
		{Temporal: TemporalOptions{Server: TemporalPostgres, Address: "127.0.0.1:7233"}},
		{Temporal: TemporalOptions{Server: "sqlite"}},
	} {
		if s, err := Start(context.Background(), o); err == nil {
			s.Close()
			t.Fatalf("Start(%+v) succeeded", o)
		}
	}
}
