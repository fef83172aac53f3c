// Package metrics is enrollflow's Prometheus instrumentation: one registry
// per node with the counters and histograms of every front door (HTTP
// requests, flow starts and actions, enrollments), of passcode deliveries,
// of the store, and the build information. The packages it observes know
// nothing of Prometheus: hal, engine and dispatch call small observer
// interfaces that *Metrics implements, and the store is wrapped (Store).
//
// No label ever holds an id, an address or any other value a client
// chooses: labels are route patterns, catalog names, codes and types, so
// every series set is bounded.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/enrollflow/enrollflow/delivery/dispatch"
	"github.com/enrollflow/enrollflow/mfa"
)

// Build identifies the running binary.
type Build struct {
	Version, Commit, GoVersion string
}

// Metrics holds one node's collectors.
type Metrics struct {
	registry *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	rateLimited     *prometheus.CounterVec
	starts          *prometheus.CounterVec
	actions         *prometheus.CounterVec
	enrollments     *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliveryTime    *prometheus.HistogramVec
	storeOps        *prometheus.CounterVec
	storeDuration   *prometheus.HistogramVec
	longPollsNow    prometheus.Gauge
	longPolls       *prometheus.CounterVec
	pairings        *prometheus.CounterVec

	// requestSeries caches the children of requests and requestDuration
	// by their labels: a map lookup instead of hashing three label values
	// twice on every request.
	requestSeries sync.Map // requestKey → *requestSeries
}

type requestKey struct {
	route, method string
	status        int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// Latency buckets, in seconds: requests take a fraction of a millisecond on
// memory and a few on Redis; one store call is a loopback round trip.
var (
	requestBuckets  = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	storeBuckets    = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}
	deliveryBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

// New creates the collectors in a registry of their own, with the Go
// runtime and process collectors beside them.
func New(b Build) *Metrics {
	m := &Metrics{
		registry:        prometheus.NewRegistry(),
		requests:        counter("enrollflow_http_requests_total", "HTTP requests by route pattern, method and status.", "route", "method", "status"),
		requestDuration: histogram("enrollflow_http_request_duration_seconds", "Time to answer an HTTP request, by route pattern and method.", requestBuckets, "route", "method"),
		rateLimited:     counter("enrollflow_rate_limited_requests_total", "Requests refused by the per-client rate limit, by route pattern.", "route"),
		starts:          counter("enrollflow_flow_starts_total", "Flow execution starts by outcome (ok, or the error's code).", "outcome"),
		actions:         counter("enrollflow_flow_actions_total", "Flow actions by action and outcome (ok, or the error's code; a refused passcode by its detail code).", "action", "outcome"),
		enrollments:     counter("enrollflow_enrollments_total", "Enrollment steps that ended, by device type (none when skipped) and result.", "type", "result"),
		deliveries:      counter("enrollflow_passcode_deliveries_total", "Passcode deliveries by method, channel type and outcome (sent, refused, failed).", "method", "channel", "outcome"),
		deliveryTime:    histogram("enrollflow_passcode_delivery_duration_seconds", "Time to hand a passcode to its provider, retries included, by method and channel type.", deliveryBuckets, "method", "channel"),
		storeOps:        counter("enrollflow_store_operations_total", "Store operations by operation and outcome.", "operation", "outcome"),
		storeDuration:   histogram("enrollflow_store_operation_duration_seconds", "Time of one store operation, by operation.", storeBuckets, "operation"),
		longPollsNow: prometheus.NewGauge(prometheus.GaugeOpts{Name: "enrollflow_long_polls_waiting",
			Help: "Execution polls with Prefer: wait held on this node now."}),
		longPolls: counter("enrollflow_long_polls_total", "Long polls answered, by result (changed, expired, timeout, canceled).", "result"),
		pairings:  counter("enrollflow_mobile_pairings_total", "Pairings from the mobile side by outcome (ok, or the error's code).", "outcome"),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "enrollflow_build_info",
		Help: "The running binary: always 1, with its version, commit and Go version as labels.",
	}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	m.registry.MustRegister(m.requests, m.requestDuration, m.rateLimited, m.starts, m.actions,
		m.enrollments, m.deliveries, m.deliveryTime, m.storeOps, m.storeDuration, build,
		m.longPollsNow, m.longPolls, m.pairings,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	// A scrape gathers every series: a few at once and a bounded time is
	// all a scraper needs, and all anyone else gets.
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry,
		MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// Registry is the node's registry, for tests and embedding.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Request counts one HTTP request (hal.Observer). route is the matched
// pattern ("" when nothing matched); method is folded to the standard ones,
// since any token is a valid method.
func (m *Metrics) Request(route, method string, status int, elapsed time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	key := requestKey{route, knownMethod(method), status}
	series, ok := m.requestSeries.Load(key)
	if !ok {
		series, _ = m.requestSeries.LoadOrStore(key, &requestSeries{
			count:    m.requests.WithLabelValues(key.route, key.method, strconv.Itoa(status)),
			duration: m.requestDuration.WithLabelValues(key.route, key.method),
		})
	}
	rs := series.(*requestSeries)
	rs.count.Inc()
	rs.duration.Observe(elapsed.Seconds())
}

// RateLimited counts one refusal of the rate limit (hal.Observer).
func (m *Metrics) RateLimited(route string) { m.rateLimited.WithLabelValues(route).Inc() }

// Started counts one flow start (hal.Observer).
func (m *Metrics) Started(outcome string) { m.starts.WithLabelValues(outcome).Inc() }

// Waiting moves the gauge of held long polls (hal.Observer).
func (m *Metrics) Waiting(delta int) { m.longPollsNow.Add(float64(delta)) }

// LongPolled counts one answered long poll (hal.Observer).
func (m *Metrics) LongPolled(result string) { m.longPolls.WithLabelValues(result).Inc() }

// Paired counts one pairing from the mobile side (hal.Observer).
func (m *Metrics) Paired(outcome string) { m.pairings.WithLabelValues(outcome).Inc() }

// Acted counts one action (hal.Observer).
func (m *Metrics) Acted(action, outcome string) { m.actions.WithLabelValues(action, outcome).Inc() }

// StepEnded counts an ended enrollment step (engine.Observer). Other step
// types are not enrollments and are not counted here.
func (m *Metrics) StepEnded(stepType, result string, outputs map[string]any) {
	if stepType != "MFA_DEVICE_ENROLLMENT" {
		return
	}
	deviceType := "none"
	if dev, ok := outputs["device"].(map[string]any); ok {
		if s, ok := dev["type"].(string); ok {
			if t, known := mfa.ParseDeviceType(s); known {
				deviceType = string(t)
			}
		}
	}
	m.enrollments.WithLabelValues(deviceType, result).Inc()
}

// Delivered counts one passcode delivery (dispatch.Observer).
func (m *Metrics) Delivered(o dispatch.Outcome) {
	m.deliveries.WithLabelValues(string(o.Method), o.Channel, o.Result).Inc()
	m.deliveryTime.WithLabelValues(string(o.Method), o.Channel).Observe(o.Duration.Seconds())
}

var _ dispatch.Observer = (*Metrics)(nil)

func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
