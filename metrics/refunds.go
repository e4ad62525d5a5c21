package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Refund metric names (issue #13). The alerting rules for ABNORMAL
// refunds, NOT_ENOUGH and refunds stuck PROCESSING use them.
const (
	// RefundsName counts refund status changes this process made, by
	// status: PROCESSING (a refund recorded here), SUCCESS, CLOSED,
	// ABNORMAL, FAILED. Never a repeat that changed nothing.
	RefundsName = "payflow_refunds_total"
	// RefundSuccessSecondsName observes the time from a refund's record
	// here to WeChat's success_time.
	RefundSuccessSecondsName = "payflow_refund_success_seconds"
	// RefundAppliesName counts WeChat's answers to refund requests, by
	// outcome: accepted, not_enough (the merchant's balance is short),
	// refused, ambiguous (a fault: the refund may or may not exist).
	RefundAppliesName = "payflow_refund_applies_total"
	// RefundsOpenName is the number of refunds not final, by status
	// (PROCESSING, ABNORMAL), read from PostgreSQL at each scrape of the
	// worker: the same in every worker, so aggregate with max, not sum.
	RefundsOpenName = "payflow_refunds_open"
	// RefundOldestProcessingName is the age of the oldest PROCESSING
	// refund (since WeChat accepted it), 0 when none; read like
	// RefundsOpenName.
	RefundOldestProcessingName = "payflow_refund_oldest_processing_seconds"
)

func refundNames() []string {
	return []string{RefundsName, RefundSuccessSecondsName, RefundAppliesName, RefundsOpenName, RefundOldestProcessingName}
}

// RefundSuccessBuckets span a balance refund (seconds to minutes) to a
// bank card refund (1 to 3 working days) and beyond.
var RefundSuccessBuckets = []float64{
	1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600,
	24 * 3600, 2 * 24 * 3600, 3 * 24 * 3600, 5 * 24 * 3600, 7 * 24 * 3600,
}

var (
	refundStatuses = []string{"PROCESSING", "SUCCESS", "CLOSED", "ABNORMAL", "FAILED"}
	applyOutcomes  = []string{"accepted", "not_enough", "refused", "ambiguous"}
)

type refundMetrics struct {
	changes *prometheus.CounterVec
	success prometheus.Histogram
	applies *prometheus.CounterVec
}

func newRefundMetrics(f promauto.Factory) *refundMetrics {
	r := &refundMetrics{
		changes: f.NewCounterVec(prometheus.CounterOpts{
			Name: RefundsName,
			Help: "Refund status changes, by status (PROCESSING: recorded here; SUCCESS, CLOSED, ABNORMAL, FAILED).",
		}, []string{"status"}),
		success: f.NewHistogram(prometheus.HistogramOpts{
			Name:    RefundSuccessSecondsName,
			Help:    "Time from a refund's record here to WeChat's success_time.",
			Buckets: RefundSuccessBuckets,
		}),
		applies: f.NewCounterVec(prometheus.CounterOpts{
			Name: RefundAppliesName,
			Help: "WeChat's answers to refund requests, by outcome (accepted, not_enough, refused, ambiguous).",
		}, []string{"outcome"}),
	}
	for _, s := range refundStatuses {
		r.changes.WithLabelValues(s)
	}
	for _, o := range applyOutcomes {
		r.applies.WithLabelValues(o)
	}
	return r
}

// RefundStatus counts a refund reaching status (PROCESSING when recorded
// here); call it only for a change that was made.
func (m *Metrics) RefundStatus(status string) {
	if m == nil {
		return
	}
	m.refunds.changes.WithLabelValues(status).Inc()
}

// RefundSucceeded observes how long a refund took from its record here to
// WeChat's success time; a negative duration (clock skew) counts as 0.
func (m *Metrics) RefundSucceeded(d time.Duration) {
	if m == nil {
		return
	}
	m.refunds.success.Observe(max(d, 0).Seconds())
}

// RefundApplied counts WeChat's answer to a refund request: accepted,
// not_enough, refused or ambiguous.
func (m *Metrics) RefundApplied(outcome string) {
	if m == nil {
		return
	}
	m.refunds.applies.WithLabelValues(outcome).Inc()
}

// OpenRefunds are the refunds that are not final, as the database holds them.
type OpenRefunds struct {
	Processing, Abnormal int64
	OldestProcessing     time.Time // zero when none
}

// OpenRefundsCollector reports RefundsOpenName and
// RefundOldestProcessingName from read (a PostgreSQL query) at each
// scrape, bounded by a 2 s timeout; when read fails the two are left out
// of that scrape. Register it in one process kind (the worker).
func OpenRefundsCollector(read func(context.Context) (OpenRefunds, error), now func() time.Time) prometheus.Collector {
	if now == nil {
		now = time.Now
	}
	return &openRefundsCollector{
		read: read, now: now,
		open: prometheus.NewDesc(RefundsOpenName,
			"Refunds not final, by status (PROCESSING, ABNORMAL); the same in every worker: aggregate with max.", []string{"status"}, nil),
		oldest: prometheus.NewDesc(RefundOldestProcessingName,
			"Age of the oldest PROCESSING refund since WeChat accepted it; 0 when none.", nil, nil),
	}
}

type openRefundsCollector struct {
	read         func(context.Context) (OpenRefunds, error)
	now          func() time.Time
	open, oldest *prometheus.Desc
}

func (c *openRefundsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.oldest
}

func (c *openRefundsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.read(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Processing), "PROCESSING")
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Abnormal), "ABNORMAL")
	age := 0.0
	if !st.OldestProcessing.IsZero() {
		age = max(c.now().Sub(st.OldestProcessing), 0).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
