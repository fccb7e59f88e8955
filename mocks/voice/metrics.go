package voice

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	registrations  prometheus.Gauge
	callsTotal     *prometheus.CounterVec
	queueWaiting   prometheus.Gauge
	sessionsActive prometheus.Gauge
	sessionsTotal  *prometheus.CounterVec
	reports        *prometheus.CounterVec
}

// agentCollector reports agents per state from the live table.
type agentCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (c agentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- activeCallsDesc
}

func (c agentCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[AgentState]int{LoggedOut: 0, NotReady: 0, Ready: 0, Busy: 0, AfterCallWork: 0}
	c.s.mu.Lock()
	for _, a := range c.s.agents {
		counts[a.state]++
	}
	active := len(c.s.calls)
	c.s.mu.Unlock()
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(st))
	}
	ch <- prometheus.MustNewConstMetric(activeCallsDesc, prometheus.GaugeValue, float64(active))
}

var activeCallsDesc = prometheus.NewDesc("voice_calls_active", "Calls in progress.", nil, nil)

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "voice_registrations",
			Help: "Registered SIP contacts (agent DNs and customer numbers)."}),
		callsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "voice_calls_total",
			Help: "Calls handled, by kind (internal, inbound, callin, callback, outbound)."}, []string{"kind"}),
		queueWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "voice_queue_waiting",
			Help: "Interactions waiting in virtual queues."}),
		sessionsActive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ors_sessions_active",
			Help: "ORS callback sessions running."}),
		sessionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ors_sessions_total",
			Help: "ORS callback sessions finished, by result."}, []string{"result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ors_state_reports_total",
			Help: "Callback state reports sent to GES, by state and HTTP status (0 = no answer)."}, []string{"state", "status"}),
	}
	ac := agentCollector{s: s, desc: prometheus.NewDesc("voice_agents", "Agent DNs by state.", []string{"state"}, nil)}
	for _, c := range []prometheus.Collector{m.registrations, m.callsTotal, m.queueWaiting, m.sessionsActive, m.sessionsTotal, m.reports, ac} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("voice metrics: %w", err)
		}
	}
	return m, nil
}
