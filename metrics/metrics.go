// Package metrics holds payflow's Prometheus metrics: the notify endpoints'
// decisions and latency, the hand-off to Temporal, final order statuses,
// activity attempts and reconciliation findings. It also bridges the
// Temporal SDK's own metrics into the same registry.
//
// Every collector lives on the registry given to New; the package registers
// nothing globally, so tests and processes each bring their own.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names. The Grafana dashboard and the alerting rules in deploy/
// refer to these; deploy's tests fail when one of them drifts.
const (
	NotificationsReceivedName  = "payflow_notifications_received_total"
	NotificationsAckedName     = "payflow_notifications_acked_total"
	NotificationsRejectedName  = "payflow_notifications_rejected_total"
	NotifyAckSecondsName       = "payflow_notify_ack_seconds"
	SignalWithStartSecondsName = "payflow_signal_with_start_seconds"
	SignalWithStartErrorsName  = "payflow_signal_with_start_errors_total"
	OrdersFinalName            = "payflow_orders_final_total"
	ActivityAttemptsName       = "payflow_activity_attempts_total"
	ActivityFailuresName       = "payflow_activity_failures_total"
	ReconciliationFoundName    = "payflow_reconciliation_found_total"
	TemporalMetricsErrorsName  = "payflow_temporal_metrics_errors_total"
	WeChatFaultsName           = "payflow_wechat_faults_total"
	InboxParkedName            = "payflow_inbox_parked"
	InboxRelayedName           = "payflow_inbox_relayed_total"
	NotificationBacklogName    = "payflow_notification_backlog"

	// Daily bill reconciliation.
	BillRowsName           = "payflow_bill_rows_total"
	BillDifferencesName    = "payflow_bill_differences_total"
	BillRunsName           = "payflow_bill_runs_total"
	BillLastReconciledName = "payflow_bill_last_reconciled_day_timestamp_seconds"
)

// Names lists every metric name this package defines (histograms by their
// base name, without _bucket/_sum/_count).
func Names() []string {
	return append([]string{
		NotificationsReceivedName, NotificationsAckedName, NotificationsRejectedName,
		NotifyAckSecondsName, SignalWithStartSecondsName, SignalWithStartErrorsName,
		OrdersFinalName, ActivityAttemptsName, ActivityFailuresName,
		ReconciliationFoundName, TemporalMetricsErrorsName, WeChatFaultsName,
		InboxParkedName, InboxRelayedName, NotificationBacklogName,
		BillRowsName, BillDifferencesName, BillRunsName, BillLastReconciledName,
	}, refundNames()...)
}

// LatencyBuckets are the histogram buckets of the notify acknowledgement
// and SignalWithStart latencies, in seconds: fine below a second, then
// every second up to WeChat Pay's 5 s limit for answering a notification.
var LatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 4, 5}

// Label values known in advance. Their series are created at zero, so a
// rate() or increase() in an alert sees the first event, not only the
// second.
var (
	versions = []string{"v2", "v3"}
	outcomes = []string{"recorded", "already_paid", "recorded_again", "inbox", "ignored"}
	reasons  = RejectReasons
	statuses = []string{"PAID", "CLOSED", "REVIEW", "REFUNDED"}
	// WeChat calls and fault kinds (wechatpay.Fault's labels).
	wechatCalls  = []string{"query", "close", "prepay", "refund", "refund_query"}
	wechatFaults = []string{"network", "timeout", "http_5xx", "rate_limited", "accepted", "unsigned", "bad_signature",
		"unknown_key", "clock_skew", "system_error", "config", "malformed"}

	billRowKinds  = []string{"payment", "refund", "revoked"}
	billDiffKinds = []string{"paid_at_wechat_only", "paid_here_only", "amount_mismatch", "unknown_order", "refund_unknown", "refund_status"}
	billStatuses  = []string{"MATCHED", "DIFFERENCES", "NO_BILL", "FAILED"}
)

// Metrics records payflow's own metrics. A nil *Metrics records nothing, so
// code under test may leave it out.
type Metrics struct {
	received       *prometheus.CounterVec
	acked          *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	ackLatency     *prometheus.HistogramVec
	swsLatency     prometheus.Histogram
	swsErrors      prometheus.Counter
	ordersFinal    *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	failures       *prometheus.CounterVec
	reconciliation prometheus.Counter
	wechatFaults   *prometheus.CounterVec
	inboxParked    prometheus.Gauge
	backlog        prometheus.Gauge
	inboxRelayed   *prometheus.CounterVec
	refunds        *refundMetrics

	billRows       *prometheus.CounterVec
	billDiffs      *prometheus.CounterVec
	billRuns       *prometheus.CounterVec
	billLastDay    prometheus.Gauge
	billLastDayMu  sync.Mutex
	billLastDaySec float64
}

// New creates the collectors and registers them on reg. It panics if reg
// already holds collectors of these names (a programming error, as with
// prometheus.MustRegister). A nil reg registers nothing.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: NotificationsReceivedName,
			Help: "Payment notifications received from WeChat Pay, by API version.",
		}, []string{"version"}),
		acked: f.NewCounterVec(prometheus.CounterOpts{
			Name: NotificationsAckedName,
			Help: "Notifications acknowledged with SUCCESS, by API version and outcome (recorded, already_paid, recorded_again, inbox; ignored: a verified event of another type, audited only).",
		}, []string{"version", "outcome"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: NotificationsRejectedName,
			Help: "Notifications answered with FAIL, by API version and reason (unrecorded and overloaded mean a 5xx: WeChat retries).",
		}, []string{"version", "reason"}),
		ackLatency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NotifyAckSecondsName,
			Help:    "Time from receiving a notification to answering it (acknowledged or rejected); WeChat Pay waits 5 s.",
			Buckets: LatencyBuckets,
		}, []string{"version"}),
		swsLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    SignalWithStartSecondsName,
			Help:    "Latency of SignalWithStart calls handing a notification to its order's workflow.",
			Buckets: LatencyBuckets,
		}),
		swsErrors: f.NewCounter(prometheus.CounterOpts{
			Name: SignalWithStartErrorsName,
			Help: "SignalWithStart calls that failed.",
		}),
		ordersFinal: f.NewCounterVec(prometheus.CounterOpts{
			Name: OrdersFinalName,
			Help: "Changes of an order to PAID, CLOSED, REVIEW or REFUNDED, whatever path made them; a retry that changed nothing is not counted.",
		}, []string{"status"}),
		attempts: f.NewCounterVec(prometheus.CounterOpts{
			Name: ActivityAttemptsName,
			Help: "Activity executions (every attempt, retries included), by activity type.",
		}, []string{"activity"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: ActivityFailuresName,
			Help: "Activity executions that returned an error, by activity type.",
		}, []string{"activity"}),
		reconciliation: f.NewCounter(prometheus.CounterOpts{
			Name: ReconciliationFoundName,
			Help: "Notifications, orders and refunds the safety net found stranded and handed to a new run of their order's workflow.",
		}),
		wechatFaults: f.NewCounterVec(prometheus.CounterOpts{
			Name: WeChatFaultsName,
			Help: "WeChat Pay calls that got no trustworthy answer (the wire, 5xx, 429, an unsigned answer, our keys or clock), by call and kind; retried, never decided on.",
		}, []string{"call", "kind"}),
		backlog: f.NewGauge(prometheus.GaugeOpts{
			Name: NotificationBacklogName,
			Help: "Notifications handed to workflows in the last minute (by any api) that no workflow examined within 2 s: how far the workers are behind. Above NOTIFY_SHED_BACKLOG an api sheds new notifications (rejected, reason overloaded).",
		}),
		inboxParked: f.NewGauge(prometheus.GaugeOpts{
			Name: InboxParkedName,
			Help: "Inbox rows parked after too many failed deliveries: acknowledged notifications waiting for an operator to re-drive them.",
		}),
		inboxRelayed: f.NewCounterVec(prometheus.CounterOpts{
			Name: InboxRelayedName,
			Help: "Inbox rows the relay handled, by result (delivered, failed: tried again later, parked).",
		}, []string{"result"}),
		refunds: newRefundMetrics(f),
		billRows: f.NewCounterVec(prometheus.CounterOpts{
			Name: BillRowsName,
			Help: "Rows of WeChat's daily trade bills loaded for reconciliation, by kind (payment, refund, revoked).",
		}, []string{"kind"}),
		billDiffs: f.NewCounterVec(prometheus.CounterOpts{
			Name: BillDifferencesName,
			Help: "Differences between WeChat's trade bill and our books, counted when first found, by kind.",
		}, []string{"kind"}),
		billRuns: f.NewCounterVec(prometheus.CounterOpts{
			Name: BillRunsName,
			Help: "Bill reconciliation runs that finished, by status (MATCHED, DIFFERENCES, NO_BILL, FAILED).",
		}, []string{"status"}),
		billLastDay: f.NewGauge(prometheus.GaugeOpts{
			Name: BillLastReconciledName,
			Help: "Start (00:00 Beijing, Unix seconds) of the latest day reconciled against WeChat's bill (MATCHED, DIFFERENCES or NO_BILL).",
		}),
	}
	for _, v := range versions {
		m.received.WithLabelValues(v)
		m.ackLatency.WithLabelValues(v)
		for _, o := range outcomes {
			m.acked.WithLabelValues(v, o)
		}
		for _, r := range reasons {
			m.rejected.WithLabelValues(v, r)
		}
	}
	for _, s := range statuses {
		m.ordersFinal.WithLabelValues(s)
	}
	for _, r := range []string{"delivered", "failed", "parked"} {
		m.inboxRelayed.WithLabelValues(r)
	}
	for _, c := range wechatCalls {
		for _, k := range wechatFaults {
			m.wechatFaults.WithLabelValues(c, k)
		}
	}
	for _, k := range billRowKinds {
		m.billRows.WithLabelValues(k)
	}
	for _, k := range billDiffKinds {
		m.billDiffs.WithLabelValues(k)
	}
	for _, s := range billStatuses {
		m.billRuns.WithLabelValues(s)
	}
	return m
}

// NotificationReceived counts a notification as it arrives; version is
// "v2" or "v3".
func (m *Metrics) NotificationReceived(version string) {
	if m == nil {
		return
	}
	m.received.WithLabelValues(version).Inc()
}

// NotificationAcked counts a notification answered with SUCCESS and
// observes how long the answer took. outcome is recorded, already_paid,
// recorded_again, inbox or ignored (a verified event of a type nothing
// handles, kept in the audit trail only).
func (m *Metrics) NotificationAcked(version, outcome string, latency time.Duration) {
	if m == nil {
		return
	}
	m.acked.WithLabelValues(version, outcome).Inc()
	m.ackLatency.WithLabelValues(version).Observe(latency.Seconds())
}

// RejectReasons are the reasons a notification is answered with FAIL, the
// label values of payflow_notifications_rejected_total; each series exists
// from the start, so that an alert on its rate sees the first one.
var RejectReasons = []string{"signature", "stale", "probe", "unknown_key", "foreign_id", "malformed", "decrypt", "unrecorded", "unconfigured", "overloaded"}

// NotificationRejected counts a notification answered with FAIL and
// observes how long the answer took; reason is one of RejectReasons.
func (m *Metrics) NotificationRejected(version, reason string, latency time.Duration) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(version, reason).Inc()
	m.ackLatency.WithLabelValues(version).Observe(latency.Seconds())
}

// SignalWithStart observes one SignalWithStart call's latency and counts it
// as an error when err is not nil.
func (m *Metrics) SignalWithStart(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.swsLatency.Observe(d.Seconds())
	if err != nil {
		m.swsErrors.Inc()
	}
}

// OrderFinal counts an order reaching a final status: PAID, CLOSED,
// REVIEW or REFUNDED.
func (m *Metrics) OrderFinal(status string) {
	if m == nil {
		return
	}
	m.ordersFinal.WithLabelValues(status).Inc()
}

// NotificationBacklog sets the backlog the api's backpressure last read.
func (m *Metrics) NotificationBacklog(n int) {
	if m == nil {
		return
	}
	m.backlog.Set(float64(n))
}

// InboxParked sets the number of parked inbox rows.
func (m *Metrics) InboxParked(n int) {
	if m == nil {
		return
	}
	m.inboxParked.Set(float64(n))
}

// InboxRelayed counts a relay batch's results.
func (m *Metrics) InboxRelayed(delivered, failed, parked int) {
	if m == nil {
		return
	}
	m.inboxRelayed.WithLabelValues("delivered").Add(float64(delivered))
	m.inboxRelayed.WithLabelValues("failed").Add(float64(failed))
	m.inboxRelayed.WithLabelValues("parked").Add(float64(parked))
}

// ActivityAttempt counts one execution of an activity, and a failure when
// err is not nil. ActivityInterceptor calls it for every activity.
func (m *Metrics) ActivityAttempt(activity string, err error) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(activity).Inc()
	if err != nil {
		m.failures.WithLabelValues(activity).Inc()
	}
}

// ReconciliationFound counts n discrepancies found by a reconciliation run.
func (m *Metrics) ReconciliationFound(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.reconciliation.Add(float64(n))
}

// WeChatFault counts a call to WeChat Pay (call: e.g. query, prepay,
// close) that ended in a fault of kind (wechatpay.Fault's label: network,
// timeout, http_5xx, rate_limited, accepted, unsigned, bad_signature,
// unknown_key, clock_skew, system_error, config, malformed).
func (m *Metrics) WeChatFault(call, kind string) {
	if m == nil {
		return
	}
	m.wechatFaults.WithLabelValues(call, kind).Inc()
}

// BillRows counts n rows of a trade bill of the kind payment, refund or
// revoked.
func (m *Metrics) BillRows(kind string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.billRows.WithLabelValues(kind).Add(float64(n))
}

// BillDifferences counts n differences of kind found for the first time.
func (m *Metrics) BillDifferences(kind string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.billDiffs.WithLabelValues(kind).Add(float64(n))
}

// BillRun counts a reconciliation run that finished with status.
func (m *Metrics) BillRun(status string) {
	if m == nil {
		return
	}
	m.billRuns.WithLabelValues(status).Inc()
}

// BillReconciled records that the day starting at dayStart is reconciled;
// the gauge keeps the latest such day.
func (m *Metrics) BillReconciled(dayStart time.Time) {
	if m == nil || dayStart.IsZero() {
		return
	}
	v := float64(dayStart.Unix())
	m.billLastDayMu.Lock()
	defer m.billLastDayMu.Unlock()
	if v > m.billLastDaySec {
		m.billLastDaySec = v
		m.billLastDay.Set(v)
	}
}

// Handler serves the metrics gathered by g in the Prometheus text format,
// for GET /metrics.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
