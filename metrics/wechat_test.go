package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/payflow/payflow/metrics"
)

func TestWeChatFaults(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.WeChatFault("query", "unsigned")
	m.WeChatFault("query", "unsigned")
	m.WeChatFault("close", "rate_limited")
	assertLines(t, scrape(t, reg),
		`payflow_wechat_faults_total{call="query",kind="unsigned"} 2`,
		`payflow_wechat_faults_total{call="close",kind="rate_limited"} 1`,
		`# TYPE payflow_wechat_faults_total counter`,
	)
	var none *metrics.Metrics
	none.WeChatFault("query", "timeout") // nil records nothing
	metrics.New(nil).WeChatFault("query", "timeout")
}
