package metrics

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// temporalReportInterval is how often the tally scope copies the SDK's
// metrics into the Prometheus collectors; a scrape sees them this late at
// most.
const temporalReportInterval = time.Second

// TemporalBuckets are the histogram buckets, in seconds, of the Temporal
// SDK's latency metrics (workflow task, activity, request latencies).
var TemporalBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// TemporalHandler bridges the Temporal SDK's metrics into reg, for
// client.Options.MetricsHandler of both the api's and the worker's client.
// The SDK's metrics keep their own names in Prometheus form: counters end in
// _total (temporal_workflow_completed_total), latencies are histograms in
// seconds (temporal_activity_execution_latency_seconds_bucket). None of them
// starts with payflow_, so they cannot collide with New's collectors.
//
// Closing the returned Closer stops the periodic copy; close it after the
// Temporal client. A metric the bridge cannot register (say, one name seen
// with two different tag sets) is dropped and counted in
// payflow_temporal_metrics_errors_total rather than stopping the process.
// The error is non-nil when reg is nil or already holds that counter.
func TemporalHandler(reg prometheus.Registerer) (client.MetricsHandler, io.Closer, error) {
	if reg == nil {
		return nil, nil, errors.New("temporal metrics: nil registerer")
	}
	registerErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: TemporalMetricsErrorsName,
		Help: "Temporal SDK metrics that could not be registered in Prometheus and are not exported.",
	})
	if err := reg.Register(registerErrors); err != nil {
		return nil, nil, fmt.Errorf("temporal metrics: %w", err)
	}
	// The reporter's own gatherer is only used by its HTTP handler, which we
	// do not serve; never let it fall back to the global default.
	gatherer, ok := reg.(prometheus.Gatherer)
	if !ok {
		gatherer = prometheus.Gatherers{}
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		Gatherer:                gatherer,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: TemporalBuckets,
		OnRegisterError:         func(error) { registerErrors.Inc() },
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		// tally's own tally_internal_* gauges are of no use on our
		// dashboards.
		OmitCardinalityMetrics: true,
	}, temporalReportInterval)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), closer, nil
}
