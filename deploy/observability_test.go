package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/payflow/payflow/metrics"
)

// specMetricNames are payflow's metric names as the dashboard, the alerts
// and the operators' runbooks know them. Renaming one is a breaking change:
// change the code, the dashboard, the alerts and this list together.
var specMetricNames = []string{
	"payflow_notifications_received_total",
	"payflow_notifications_acked_total",
	"payflow_notifications_rejected_total",
	"payflow_notify_ack_seconds",
	"payflow_signal_with_start_seconds",
	"payflow_signal_with_start_errors_total",
	"payflow_notification_backlog",
	"payflow_orders_final_total",
	"payflow_activity_attempts_total",
	"payflow_activity_failures_total",
	"payflow_reconciliation_found_total",
	"payflow_refunds_total",
	"payflow_refund_success_seconds",
	"payflow_refund_applies_total",
	"payflow_refunds_open",
	"payflow_wechat_faults_total",
	"payflow_inbox_parked",
	"payflow_inbox_relayed_total",
	"payflow_refund_oldest_processing_seconds",
	"payflow_bill_rows_total",
	"payflow_bill_differences_total",
	"payflow_bill_runs_total",
	"payflow_bill_last_reconciled_day_timestamp_seconds",
}

var histograms = []string{"payflow_notify_ack_seconds", "payflow_signal_with_start_seconds", "payflow_refund_success_seconds"}

func TestMetricsPackageKeepsTheNames(t *testing.T) {
	names := metrics.Names()
	for _, n := range specMetricNames {
		if !slices.Contains(names, n) {
			t.Errorf("package metrics no longer defines %s", n)
		}
	}
}

// temporalSDKMetricNames reads the metric names the Temporal SDK in the
// module graph defines, as the tally bridge exports them: counters gain
// _total, timers _seconds (histograms: _bucket, _sum, _count).
func temporalSDKMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/sdk").Output()
	if err != nil {
		t.Fatalf("locate go.temporal.io/sdk: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal", "common", "metrics", "constants.go"))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{"TemporalMetricsPrefix": "temporal_"}
	re := regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*(\w+)\s*\+\s*"([a-z_]+)"`)
	// Constants may build on constants defined before them.
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		if base, ok := consts[m[2]]; ok {
			consts[m[1]] = base + m[3]
		}
	}
	names := map[string]bool{}
	for _, v := range consts {
		if v == "temporal_" {
			continue
		}
		for _, suffix := range []string{"", "_total", "_seconds", "_seconds_bucket", "_seconds_sum", "_seconds_count"} {
			names[v+suffix] = true
		}
	}
	if !names["temporal_workflow_completed_total"] || !names["temporal_activity_execution_latency_seconds_bucket"] {
		t.Fatalf("could not read the SDK's metric names from its constants (%d found)", len(consts))
	}
	return names
}

// allowedMetricNames are the series names a query may use.
func allowedMetricNames(t *testing.T) map[string]bool {
	allowed := temporalSDKMetricNames(t)
	for _, n := range metrics.Names() {
		allowed[n] = true
		if slices.Contains(histograms, n) || strings.HasSuffix(n, "_seconds") {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				allowed[n+s] = true
			}
		}
	}
	allowed["up"] = true // Prometheus' own
	return allowed
}

var metricToken = regexp.MustCompile(`\b(?:payflow|temporal)_[a-zA-Z0-9_:]+|\bup\b`)

// metricNamesIn lists the metric names a PromQL expression uses; label
// values in quotes are left out.
func metricNamesIn(expr string) []string {
	unquoted := regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	return metricToken.FindAllString(unquoted, -1)
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(t *testing.T) alertRules {
	t.Helper()
	raw, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return rules
}

func TestAlertsUseKnownMetrics(t *testing.T) {
	allowed := allowedMetricNames(t)
	rules := loadAlerts(t)
	exprs := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert name or expr", g.Name)
				continue
			}
			if _, dup := exprs[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			exprs[r.Alert] = r.Expr
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: needs a severity label and a summary", r.Alert)
			}
			names := metricNamesIn(r.Expr)
			if len(names) == 0 {
				t.Errorf("alert %s uses no known metric: %s", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !allowed[n] {
					t.Errorf("alert %s uses unknown metric %s", r.Alert, n)
				}
			}
		}
	}
	// The alerts operators rely on.
	has := func(substrs ...string) bool {
		for _, e := range exprs {
			e = strings.Join(strings.Fields(e), " ")
			ok := true
			for _, s := range substrs {
				ok = ok && strings.Contains(e, s)
			}
			if ok {
				return true
			}
		}
		return false
	}
	for _, want := range [][]string{
		{`increase(payflow_orders_final_total{status="REVIEW"}[10m])`, "> 0"},
		{`payflow_notifications_rejected_total{reason="unrecorded"}`},
		{`payflow_notifications_rejected_total`, `payflow_notifications_received_total`},
		{`histogram_quantile(0.99`, `payflow_notify_ack_seconds_bucket`, "> 3"},
		{`payflow_signal_with_start_errors_total`},
		{`payflow_activity_failures_total`, `payflow_activity_attempts_total`},
		{`max(payflow_refunds_open{status="ABNORMAL"})`, "> 0"},
		{`payflow_refund_applies_total{outcome="not_enough"}`},
		{`max(payflow_refund_oldest_processing_seconds)`, "3 * 86400"},
		{`payflow_bill_last_reconciled_day_timestamp_seconds`, `time() - 129600`},
		{`increase(payflow_bill_differences_total[1h])`, "> 0"},
	} {
		if !has(want...) {
			t.Errorf("no alert expression contains all of %q", want)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	raw, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			MetricsPath  string `yaml:"metrics_path"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.RuleFiles, "/etc/prometheus/alerts.yml") {
		t.Errorf("rule_files %v does not load alerts.yml (mounted at /etc/prometheus)", cfg.RuleFiles)
	}
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("%s scrapes %s", sc.JobName, sc.MetricsPath)
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				targets[n+":"+itoa(d.Port)] = true
			}
		}
		for _, s := range sc.StaticConfigs {
			for _, tg := range s.Targets {
				targets[tg] = true
			}
		}
	}
	for _, want := range []string{"api:8080", "worker:8081"} {
		if !targets[want] {
			t.Errorf("prometheus does not scrape %s (has %v)", want, targets)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

type panel struct {
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) (dash struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}) {
	t.Helper()
	raw, err := os.ReadFile("grafana/payflow-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return dash
}

func TestDashboardUsesKnownMetrics(t *testing.T) {
	dash := loadDashboard(t)
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("dashboard has no Prometheus datasource variable named datasource")
	}
	allowed := allowedMetricNames(t)
	used := map[string]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if !strings.Contains(string(p.Datasource), "${datasource}") {
				t.Errorf("panel %q does not use the datasource variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			for _, tg := range p.Targets {
				names := metricNamesIn(tg.Expr)
				if len(names) == 0 {
					t.Errorf("panel %q: query uses no known metric: %s", p.Title, tg.Expr)
				}
				for _, n := range names {
					if !allowed[n] {
						t.Errorf("panel %q uses unknown metric %s", p.Title, n)
					}
					used[n] = true
				}
			}
		}
	}
	walk(dash.Panels)
	// Every payflow metric is on the dashboard.
	for _, n := range specMetricNames {
		if !used[n] && !used[n+"_bucket"] {
			t.Errorf("no panel shows %s", n)
		}
	}
	for _, n := range []string{
		"temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
		"temporal_workflow_task_execution_latency_seconds_bucket",
		"temporal_activity_execution_latency_seconds_bucket",
	} {
		if !used[n] {
			t.Errorf("no panel shows the SDK metric %s", n)
		}
	}
}

func TestMetricNamesInIgnoresLabelValues(t *testing.T) {
	got := metricNamesIn(`sum(rate(payflow_x_total{job="payflow_fake_total"}[5m])) / up{job=~"payflow-.*"}`)
	if !slices.Equal(got, []string{"payflow_x_total", "up"}) {
		t.Errorf("got %v", got)
	}
}
