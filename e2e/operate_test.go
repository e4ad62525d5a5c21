package e2e

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// metricValue scrapes url and returns the value of the series whose line
// starts with name (labels included, as Prometheus prints them).
func metricValue(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMetricsCountPaymentsAndForgeries(t *testing.T) {
	d := st.v2
	apiMetrics, workerMetrics := d.apiURL+"/metrics", "http://"+d.workerAddr+"/metrics"
	acked := `payflow_notifications_acked_total{outcome="recorded",version="v2"}`
	forged := `payflow_notifications_rejected_total{reason="signature",version="v2"}`
	paidFinal := `payflow_orders_final_total{status="PAID"}`
	beforeAcked, beforeForged := metricValue(t, apiMetrics, acked), metricValue(t, apiMetrics, forged)
	beforePaid := metricValue(t, workerMetrics, paidFinal)

	no := uniqueNo("METRICS")
	d.createOrder(t, no, 600)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 600})
	assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)
	params := map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": appID, "mch_id": mchID,
		"nonce_str": "x", "out_trade_no": no, "transaction_id": paid.TransactionID, "total_fee": "600"}
	params["sign"], _ = apiv2.Sign(params, "11111111111111111111111111111111", apiv2.SignTypeMD5)
	if code, _ := d.postXML(t, params); code != http.StatusUnauthorized {
		t.Fatalf("forged = %d", code)
	}

	if got := metricValue(t, apiMetrics, acked); got < beforeAcked+1 {
		t.Fatalf("%s = %v, was %v", acked, got, beforeAcked)
	}
	if got := metricValue(t, apiMetrics, forged); got != beforeForged+1 {
		t.Fatalf("%s = %v, was %v", forged, got, beforeForged)
	}
	if got := metricValue(t, workerMetrics, paidFinal); got != beforePaid+1 {
		t.Fatalf("%s = %v, was %v", paidFinal, got, beforePaid)
	}
	if metricValue(t, apiMetrics, "payflow_notify_ack_seconds_count{version=\"v2\"}") == 0 {
		t.Fatal("no ack latency observed")
	}
	if metricValue(t, workerMetrics, `payflow_activity_attempts_total{activity="MarkPaid"}`) == 0 {
		t.Fatal("no MarkPaid activity attempts counted")
	}
	// The Temporal SDK's own metrics are bridged into the same registry.
	resp, err := http.Get(workerMetrics)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^temporal_request_total\{`).Match(b) {
		t.Fatal("the worker exposes no temporal_ SDK metrics")
	}
}

// An api whose PostgreSQL goes away stops being ready, and comes back.
func TestReadinessFollowsPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	dbURL, err := pg.CreateDatabase(ctx, "ready")
	if err != nil {
		t.Fatal(err)
	}
	// An api of the v2 deployment's configuration, but on a database of a
	// PostgreSQL of its own and a task queue of its own.
	api := st.v2.NewAPI("ready-api", freeAddr(t), "DATABASE_URL="+dbURL, "TEMPORAL_TASK_QUEUE=e2e-ready")
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	defer api.Stop()
	addr := api.Addr
	ready := func() int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, 60*time.Second, "the api to be ready", func() bool { return ready() == http.StatusOK })
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "readyz to answer 503 without PostgreSQL", func() bool { return ready() == http.StatusServiceUnavailable })
	if code := func() int {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}(); code != http.StatusOK {
		t.Fatalf("healthz = %d while PostgreSQL is down; the process is alive", code)
	}
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "readyz to recover", func() bool { return ready() == http.StatusOK })
}
