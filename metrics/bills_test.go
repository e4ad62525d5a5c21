package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/payflow/payflow/metrics"
)

func TestBillMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	// Series exist at zero before the first event, so alerts see it.
	assertLines(t, scrape(t, reg),
		`payflow_bill_differences_total{kind="refund_status"} 0`,
		`payflow_bill_runs_total{status="FAILED"} 0`,
		`payflow_bill_rows_total{kind="revoked"} 0`,
	)
	m.BillRows("payment", 1_000_000)
	m.BillRows("refund", 0)
	m.BillDifferences("amount_mismatch", 2)
	m.BillRun("DIFFERENCES")
	bj := time.FixedZone("CST", 8*3600)
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, bj)
	m.BillReconciled(day)
	m.BillReconciled(day.AddDate(0, 0, -3)) // a day caught up later does not move the gauge back
	assertLines(t, scrape(t, reg),
		`payflow_bill_rows_total{kind="payment"} 1e+06`,
		`payflow_bill_rows_total{kind="refund"} 0`,
		`payflow_bill_differences_total{kind="amount_mismatch"} 2`,
		`payflow_bill_runs_total{status="DIFFERENCES"} 1`,
		`payflow_bill_last_reconciled_day_timestamp_seconds 1.795536e+09`,
	)
	var nilM *metrics.Metrics
	nilM.BillRows("payment", 1)
	nilM.BillDifferences("unknown_order", 1)
	nilM.BillRun("MATCHED")
	nilM.BillReconciled(day)
}
