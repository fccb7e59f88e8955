package ges

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the ges_* series the real product exposes (reference §6).
type metrics struct {
	created       *prometheus.CounterVec
	callin        *prometheus.CounterVec
	callinMatched *prometheus.CounterVec
	requests      *prometheus.CounterVec
	failed        *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	monitorSize   *prometheus.GaugeVec
}

// newMetrics builds and registers the collectors; a nil registerer keeps them
// private. Collectors already registered (a second Service in one process) are reused.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ges_callbacks_created",
			Help: "Callbacks created."}, []string{"tenant"}),
		callin: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ges_callin_created",
			Help: "Click-to-Call-In requests created."}, []string{"tenant"}),
		callinMatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ges_callin_matched",
			Help: "Click-to-Call-In requests matched to a caller of the access number."}, []string{"tenant"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ges_http_requests_total",
			Help: "Engagement API requests."}, []string{"path", "tenant"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ges_http_failed_requests_total",
			Help: "Engagement API requests answered with an error status."}, []string{"path", "httpCode", "tenant"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ges_http_request_duration_seconds",
			Help: "Engagement API request duration.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}},
			[]string{"path"}),
		monitorSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ges_monitor_size",
			Help: "Live callbacks watched by the callback monitor, by state."}, []string{"type", "tenant"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.created = register(reg, m.created, &err)
	m.callin = register(reg, m.callin, &err)
	m.callinMatched = register(reg, m.callinMatched, &err)
	m.requests = register(reg, m.requests, &err)
	m.failed = register(reg, m.failed, &err)
	m.duration = register(reg, m.duration, &err)
	m.monitorSize = register(reg, m.monitorSize, &err)
	// The real service's process metrics carry its prefix (prom-client's
	// defaults with ges_), and its CPU and memory alerts read them.
	register[prometheus.Collector](reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "ges"}), &err)
	return m, err
}

// register registers c, returning the already registered twin if there is one.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = err
		}
	}
	return c
}
