package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.temporal.io/api/enums/v1"
	"gopkg.in/yaml.v3"

	"github.com/payflow/payflow/workflows"
)

const composeFile = "../docker-compose.yml"

// testEnv is the environment the stack is loaded with: every required
// variable set to a recognisable sentinel, nothing optional.
func testEnv() map[string]string {
	return map[string]string{
		"POSTGRES_PASSWORD":    "sentinel-orders-db-password",
		"TEMPORAL_DB_PASSWORD": "sentinel-temporal-db-password",
		"WECHATPAY_APPID":      "wx-sentinel-appid",
		"WECHATPAY_MCHID":      "sentinel-mchid",
		"WECHATPAY_API_KEY":    "sentinel-v2-api-key",
		"WECHATPAY_APIV3_KEY":  "sentinel-v3-api-key",
		"API_TOKENS":           "sentinel-api-token-0123456789",
	}
}

func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(".."),
		cli.WithName("payflow"),
		cli.WithEnv(list),
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoad(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, testEnv(), profiles...)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("no service %q", name)
	}
	return s
}

func envOf(s types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			m[k] = *v
		} else {
			m[k] = ""
		}
	}
	return m
}

var (
	longRunning = []string{"orders-db", "temporal-db", "temporal", "temporal-ui", "api", "proxy", "worker", "wechatpay-sim", "prometheus"}
	oneShots    = []string{"temporal-schema", "temporal-admin"}
)

func TestComposeServices(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	var got []string
	for name := range p.Services {
		got = append(got, name)
	}
	want := append(slices.Clone(longRunning), oneShots...)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
}

func TestComposeProfiles(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	for name, s := range p.Services {
		var want []string
		switch name {
		case "wechatpay-sim":
			want = []string{"dev"}
		case "prometheus":
			want = []string{"observability"}
		}
		if !slices.Equal(s.Profiles, want) {
			t.Errorf("%s: profiles %v, want %v", name, s.Profiles, want)
		}
	}
	// Without profiles: the production stack, no sandbox.
	prod := mustLoad(t)
	if _, ok := prod.Services["wechatpay-sim"]; ok {
		t.Error("wechatpay-sim runs without the dev profile")
	}
	if _, ok := prod.Services["prometheus"]; ok {
		t.Error("prometheus runs without the observability profile")
	}
	for _, name := range []string{"api", "worker", "proxy", "temporal", "temporal-admin"} {
		if _, ok := prod.Services[name]; !ok {
			t.Errorf("%s is missing from the production stack", name)
		}
	}
}

func TestComposeImagesPinned(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	want := map[string]string{
		"orders-db":   "postgres:15",
		"temporal-db": "postgres:15",
		"temporal":    "temporalio/server:1.29.1",
		"temporal-ui": "temporalio/ui:2.42.1",
	}
	for name, s := range p.Services {
		img := s.Image
		if img == "" {
			t.Errorf("%s: no image", name)
			continue
		}
		repo, tag, ok := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":")
		if !ok || tag == "" || tag == "latest" || strings.Contains(img, "${") {
			t.Errorf("%s: image %q is not pinned to a tag", name, img)
		}
		_ = repo
		if w, ok := want[name]; ok && img != w {
			t.Errorf("%s: image %q, want %q", name, img, w)
		}
		if s.Build != nil && !strings.HasPrefix(img, "payflow:") {
			t.Errorf("%s: built locally but tagged %q", name, img)
		}
	}
	for _, name := range oneShots {
		if img := service(t, p, name).Image; !strings.HasPrefix(img, "temporalio/admin-tools:1.29") {
			t.Errorf("%s: image %q, want temporalio/admin-tools:1.29…", name, img)
		}
	}
	for _, name := range []string{"api", "worker", "wechatpay-sim"} {
		if service(t, p, name).Build == nil {
			t.Errorf("%s: not built from the Dockerfile", name)
		}
	}
}

func TestComposeHealthchecksAndOneShots(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	for _, name := range longRunning {
		s := service(t, p, name)
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
			t.Errorf("%s: long-running service without a health check", name)
		}
		if s.Restart == types.RestartPolicyNo {
			t.Errorf("%s: long-running service with restart \"no\"", name)
		}
	}
	for _, name := range oneShots {
		s := service(t, p, name)
		if s.Restart != types.RestartPolicyNo {
			t.Errorf("%s: one-shot with restart %q, want \"no\"", name, s.Restart)
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s: one-shot publishes ports", name)
		}
	}
	// The app image is distroless: its probe is our own binary, which the
	// Dockerfile must build.
	built := dockerfileBuiltBinaries(t)
	for _, name := range []string{"api", "worker", "wechatpay-sim"} {
		test := service(t, p, name).HealthCheck.Test
		if len(test) < 3 || test[0] != "CMD" {
			t.Errorf("%s: health check %v must be exec form (no shell in the image)", name, test)
			continue
		}
		if !slices.Contains(built, filepath.Base(test[1])) {
			t.Errorf("%s: health check runs %s, which the Dockerfile does not build", name, test[1])
		}
	}
	for name, path := range map[string]string{"api": ":8080/readyz", "worker": ":8081/readyz"} {
		if test := strings.Join(service(t, p, name).HealthCheck.Test, " "); !strings.Contains(test, path) {
			t.Errorf("%s: health check %q does not probe %s", name, test, path)
		}
	}
}

func TestComposeDependsOn(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	want := map[string]map[string]string{
		"temporal-schema": {"temporal-db": types.ServiceConditionHealthy},
		"temporal":        {"temporal-schema": types.ServiceConditionCompletedSuccessfully},
		"temporal-admin":  {"temporal": types.ServiceConditionHealthy},
		"temporal-ui":     {"temporal": types.ServiceConditionHealthy},
		"api": {
			"orders-db":      types.ServiceConditionHealthy,
			"temporal":       types.ServiceConditionHealthy,
			"temporal-admin": types.ServiceConditionCompletedSuccessfully,
		},
		"worker": {
			"orders-db":      types.ServiceConditionHealthy,
			"temporal":       types.ServiceConditionHealthy,
			"temporal-admin": types.ServiceConditionCompletedSuccessfully,
		},
		"proxy":         {"api": types.ServiceConditionHealthy},
		"wechatpay-sim": {"proxy": types.ServiceConditionHealthy},
		"prometheus":    {"api": types.ServiceConditionHealthy, "worker": types.ServiceConditionHealthy},
	}
	for name, deps := range want {
		s := service(t, p, name)
		for dep, cond := range deps {
			got, ok := s.DependsOn[dep]
			if !ok {
				t.Errorf("%s does not depend on %s", name, dep)
				continue
			}
			if got.Condition != cond {
				t.Errorf("%s → %s: condition %q, want %q", name, dep, got.Condition, cond)
			}
		}
	}
	// Every dependency waits for something real: health of a service that
	// has a health check, or success of a one-shot.
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target := service(t, p, dep)
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil {
					t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !slices.Contains(oneShots, dep) {
					t.Errorf("%s waits for %s to complete, which is not a one-shot", name, dep)
				}
			default:
				t.Errorf("%s → %s: condition %q, want service_healthy or service_completed_successfully", name, dep, d.Condition)
			}
		}
	}
}

// contractVars are the interface's configuration variables of bin/api and
// bin/worker, with the defaults the stack must keep ("" = no default to
// check).
var contractVars = map[string]string{
	"DATABASE_URL":                   "",
	"TEMPORAL_ADDRESS":               "temporal:7233",
	"TEMPORAL_NAMESPACE":             "default",
	"TEMPORAL_TASK_QUEUE":            "payments",
	"WECHATPAY_APPID":                "",
	"WECHATPAY_MCHID":                "",
	"WECHATPAY_API_KEY":              "",
	"WECHATPAY_APIV3_KEY":            "",
	"WECHATPAY_PUBLIC_KEY_FILE":      "",
	"WECHATPAY_PUBLIC_KEY_ID":        "",
	"WECHATPAY_MCH_PRIVATE_KEY_FILE": "",
	"WECHATPAY_MCH_CERT_SERIAL":      "",
	"WECHATPAY_API_VERSION":          "",
	"WECHATPAY_BASE_URL":             "https://api.mch.weixin.qq.com",
	"WECHATPAY_NOTIFY_URL":           "",
	"ORDER_TIMEOUT":                  "30m",
	"ORDER_QUERY_AFTER":              "1m",
}

func TestComposeAppEnvironment(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	sentinel := testEnv()
	for name, addr := range map[string][2]string{
		"api":    {"API_ADDR", "0.0.0.0:8080"},
		"worker": {"WORKER_ADDR", "0.0.0.0:8081"},
	} {
		env := envOf(service(t, p, name))
		for k, def := range contractVars {
			v, ok := env[k]
			if !ok {
				t.Errorf("%s: no %s", name, k)
				continue
			}
			if def != "" && v != def {
				t.Errorf("%s: %s=%q, want the documented default %q", name, k, v, def)
			}
		}
		if env[addr[0]] != addr[1] {
			t.Errorf("%s: %s=%q, want %q", name, addr[0], env[addr[0]], addr[1])
		}
		if v := env["WECHATPAY_API_VERSION"]; v != "v2" && v != "v3" {
			t.Errorf("%s: WECHATPAY_API_VERSION=%q", name, v)
		}
		// Secrets and ids come through from the environment.
		for _, k := range []string{"WECHATPAY_APPID", "WECHATPAY_MCHID", "WECHATPAY_API_KEY", "WECHATPAY_APIV3_KEY"} {
			if env[k] != sentinel[k] {
				t.Errorf("%s: %s=%q, want the environment's %q", name, k, env[k], sentinel[k])
			}
		}
		if want := "postgres://postgres:" + sentinel["POSTGRES_PASSWORD"] + "@orders-db:5432/payments?sslmode=disable"; env["DATABASE_URL"] != want {
			t.Errorf("%s: DATABASE_URL=%q, want %q", name, env["DATABASE_URL"], want)
		}
	}
	// The order API's tokens go to the api alone.
	if got := envOf(service(t, p, "api"))["API_TOKENS"]; got != sentinel["API_TOKENS"] {
		t.Errorf("api: API_TOKENS=%q, want the environment's", got)
	}
	for name, s := range p.Services {
		if _, ok := envOf(s)["API_TOKENS"]; ok && name != "api" {
			t.Errorf("%s gets API_TOKENS", name)
		}
	}
	// Overrides reach the processes.
	env := testEnv()
	env["TEMPORAL_NAMESPACE"], env["TEMPORAL_TASK_QUEUE"] = "payments-prod", "pay-q"
	p2, err := loadCompose(t, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "worker"} {
		e := envOf(service(t, p2, name))
		if e["TEMPORAL_NAMESPACE"] != "payments-prod" || e["TEMPORAL_TASK_QUEUE"] != "pay-q" {
			t.Errorf("%s: overrides not applied: %v %v", name, e["TEMPORAL_NAMESPACE"], e["TEMPORAL_TASK_QUEUE"])
		}
	}
	if got := envOf(service(t, p2, "temporal-admin"))["TEMPORAL_NAMESPACE"]; got != "payments-prod" {
		t.Errorf("temporal-admin creates namespace %q, the apps use payments-prod", got)
	}
}

func TestComposeRequiredSecrets(t *testing.T) {
	for _, k := range []string{"POSTGRES_PASSWORD", "TEMPORAL_DB_PASSWORD", "WECHATPAY_APPID", "WECHATPAY_MCHID", "API_TOKENS"} {
		env := testEnv()
		delete(env, k)
		if _, err := loadCompose(t, env); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("loading without %s: err %v, want one naming it", k, err)
		}
	}
}

// TestComposeNoHardcodedSecrets reads the file as written: every secret is
// a ${VAR…} reference to itself, never a literal.
func TestComposeNoHardcodedSecrets(t *testing.T) {
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	// Each secret variable and the environment variables it may come from.
	secretVars := map[string][]string{
		"WECHATPAY_API_KEY":   {"WECHATPAY_API_KEY"},
		"WECHATPAY_APIV3_KEY": {"WECHATPAY_APIV3_KEY"},
		"POSTGRES_PASSWORD":   {"POSTGRES_PASSWORD", "TEMPORAL_DB_PASSWORD"},
		"POSTGRES_PWD":        {"TEMPORAL_DB_PASSWORD"},
		"SQL_PASSWORD":        {"TEMPORAL_DB_PASSWORD"},
		"API_TOKENS":          {"API_TOKENS"},
	}
	seen := 0
	for name, s := range doc.Services {
		for k, v := range s.Environment {
			val, _ := v.(string)
			if refs, ok := secretVars[k]; ok {
				seen++
				fromEnv := false
				for _, ref := range refs {
					fromEnv = fromEnv || strings.HasPrefix(val, "${"+ref+":") || val == "${"+ref+"}"
				}
				if !fromEnv {
					t.Errorf("%s: %s=%q is not taken from ${%s}", name, k, val, strings.Join(refs, "} or ${"))
				}
				if strings.Contains(val, ":-") && !strings.HasSuffix(val, ":-}") {
					t.Errorf("%s: %s=%q has a default value", name, k, val)
				}
			}
			if k == "API_TOKENS" && !strings.HasPrefix(val, "${API_TOKENS:?") {
				t.Errorf("%s: API_TOKENS=%q, want it required: ${API_TOKENS:?…}", name, val)
			}
			if k == "DATABASE_URL" && !strings.Contains(val, "${POSTGRES_PASSWORD:?") {
				t.Errorf("%s: DATABASE_URL=%q does not take its password from ${POSTGRES_PASSWORD:?…}", name, val)
			}
		}
	}
	if seen < 8 {
		t.Errorf("only %d secret variables found; the file's shape changed?", seen)
	}
}

func TestComposeReplicasAndProxy(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	for _, name := range []string{"api", "worker"} {
		s := service(t, p, name)
		if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != 2 {
			t.Errorf("%s: want deploy.replicas 2", name)
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s: replicas cannot publish a fixed host port", name)
		}
	}
	proxy := service(t, p, "proxy")
	if !strings.HasPrefix(proxy.Image, "nginx:1.27") {
		t.Errorf("proxy image %q", proxy.Image)
	}
	// The proxy publishes its TLS listener, and nothing else.
	if len(proxy.Ports) != 1 || proxy.Ports[0].Target != 8443 || proxy.Ports[0].Published != "443" {
		t.Errorf("proxy publishes %+v, want 443 → 8443 (TLS) alone", proxy.Ports)
	}
	conf, err := os.ReadFile("nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"upstream api", "server api:8080", "proxy_pass http://api", "listen 8443 ssl", "listen 8080"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if sim := envOf(service(t, p, "wechatpay-sim")); sim["SIM_NOTIFY_URL"] != "http://proxy:8080/wechatpay/notify" {
		t.Errorf("wechatpay-sim notifies %q, want the proxy", sim["SIM_NOTIFY_URL"])
	}
}

// TestComposeMountsExist: every bind mount from the repository points at a
// file or directory that is there.
func TestComposeMountsExist(t *testing.T) {
	p := mustLoad(t, "dev", "observability")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if !strings.HasPrefix(v.Source, root) {
				t.Errorf("%s: bind mount %s from outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source: %v", name, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable", name, v.Source)
			}
		}
	}
}

// contractSearchAttributes are the interface's custom search attributes.
var contractSearchAttributes = map[string]string{
	"OutTradeNo":    "Keyword",
	"PaymentStatus": "Keyword",
	"TransactionId": "Keyword",
	"AmountFen":     "Int",
	"PaymentSource": "Keyword",
	"RefundedFen":   "Int", // addition of 2026-11-26
}

func adminSearchAttributes(t *testing.T, p *types.Project) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, f := range strings.Fields(envOf(service(t, p, "temporal-admin"))["SEARCH_ATTRIBUTES"]) {
		name, typ, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("SEARCH_ATTRIBUTES entry %q is not Name=Type", f)
		}
		if _, dup := got[name]; dup {
			t.Errorf("search attribute %s listed twice", name)
		}
		got[name] = typ
	}
	return got
}

func TestComposeAdminCreatesContractSearchAttributes(t *testing.T) {
	p := mustLoad(t)
	got := adminSearchAttributes(t, p)
	// The contract's, and the others the worker registers (BillDate,
	// BillStatus), checked below.
	for name, typ := range contractSearchAttributes {
		if got[name] != typ {
			t.Errorf("search attribute %s: type %q, want %q", name, got[name], typ)
		}
	}
	// The same set the worker registers at start.
	cliType := map[enums.IndexedValueType]string{
		enums.INDEXED_VALUE_TYPE_KEYWORD:  "Keyword",
		enums.INDEXED_VALUE_TYPE_INT:      "Int",
		enums.INDEXED_VALUE_TYPE_TEXT:     "Text",
		enums.INDEXED_VALUE_TYPE_DOUBLE:   "Double",
		enums.INDEXED_VALUE_TYPE_BOOL:     "Bool",
		enums.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
	}
	keys := workflows.SearchAttributeKeys()
	if len(keys) != len(got) {
		t.Errorf("the workflow has %d search attributes, temporal-admin creates %d", len(keys), len(got))
	}
	for _, k := range keys {
		if got[k.GetName()] != cliType[k.GetValueType()] {
			t.Errorf("workflow attribute %s (%v): temporal-admin creates type %q", k.GetName(), k.GetValueType(), got[k.GetName()])
		}
	}
	admin := service(t, p, "temporal-admin")
	if !strings.Contains(strings.Join(admin.Entrypoint, " "), "create-namespace.sh") {
		t.Errorf("temporal-admin entrypoint %v does not run create-namespace.sh", admin.Entrypoint)
	}
	script, err := os.ReadFile("temporal/create-namespace.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"for sa in $SEARCH_ATTRIBUTES", "temporal operator search-attribute create", "temporal operator namespace create"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("create-namespace.sh lacks %q", want)
		}
	}
	schema := service(t, p, "temporal-schema")
	if !strings.Contains(strings.Join(schema.Entrypoint, " "), "setup-schema.sh") {
		t.Errorf("temporal-schema entrypoint %v does not run setup-schema.sh", schema.Entrypoint)
	}
	sql, err := os.ReadFile("temporal/setup-schema.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"temporal-sql-tool --plugin postgres12", "setup-schema -v 0.0", "update-schema -d", "temporal_visibility"} {
		if !strings.Contains(string(sql), want) {
			t.Errorf("setup-schema.sh lacks %q", want)
		}
	}
}
