package gateway

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics carries the wrtc_* series of the real gateway (reference A.8).
type metrics struct {
	signIns       prometheus.Gauge
	maxClients    prometheus.Gauge
	byDomain      *prometheus.GaugeVec
	audioCalls    prometheus.Gauge
	peakAudio     prometheus.Gauge
	totalAudio    prometheus.Counter
	xcodingCalls  prometheus.Gauge
	peakXcoding   prometheus.Gauge
	totalXcoding  prometheus.Counter
	systemErrors  *prometheus.GaugeVec
	clientErrors  *prometheus.CounterVec
	rtpLost       prometheus.Counter
	rtpErrors     prometheus.Counter
	gatewayJitter *prometheus.CounterVec
	clientJitter  *prometheus.CounterVec

	mu             sync.Mutex
	curAudio, curX int
	peakA, peakX   int
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		signIns:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "wrtc_current_signins", Help: "Current sign-ins (registered DNs)."}), //nolint:misspell // the product's metric name
		maxClients:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "wrtc_max_clients_per_instance", Help: "Sign-in capacity of this instance."}),
		byDomain:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wrtc_registrations_by_domain", Help: "Registered DNs per SIP domain."}, []string{"domain"}),
		audioCalls:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "wrtc_current_audio_calls", Help: "Active audio calls."}),
		peakAudio:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "wrtc_peak_audio_calls", Help: "Peak concurrent audio calls."}),
		totalAudio:   prometheus.NewCounter(prometheus.CounterOpts{Name: "wrtc_total_audio_calls", Help: "Audio calls since start."}),
		xcodingCalls: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wrtc_current_xcoding_calls", Help: "Active transcoded calls."}),
		peakXcoding:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "wrtc_peak_xcoding_calls", Help: "Peak concurrent transcoded calls."}),
		totalXcoding: prometheus.NewCounter(prometheus.CounterOpts{Name: "wrtc_total_xcoding_calls", Help: "Transcoded calls since start."}),
		systemErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wrtc_system_error",
			Help: "1 while the connection to a dependency is lost (auth, env, cfg, es), else 0."}, []string{"type"}),
		clientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wrtc_client_errors", Help: "Sign-outs on timeout and calls dropped on sign-out."}, []string{"type"}),
		rtpLost:      prometheus.NewCounter(prometheus.CounterOpts{Name: "wrtc_rtp_losts", Help: "RTP packets lost (both legs)."}),
		rtpErrors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "wrtc_rtp_errors", Help: "RTP packets that could not be parsed, decoded or sent."}),
		gatewayJitter: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wrtc_rtp_gateway_jitter",
			Help: "Calls whose SIP-side interarrival jitter went over a threshold (ms)."}, []string{"over"}),
		clientJitter: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wrtc_rtp_client_jitter",
			Help: "Calls whose browser-side interarrival jitter went over a threshold (ms)."}, []string{"over"}),
	}
	for _, t := range []string{"auth", "env", "cfg", "es"} {
		m.systemErrors.WithLabelValues(t)
	}
	for _, t := range []string{"timeout", "dropped_on_signout"} {
		m.clientErrors.WithLabelValues(t)
	}
	for _, o := range jitterThresholds {
		m.gatewayJitter.WithLabelValues(o.label)
		m.clientJitter.WithLabelValues(o.label)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{m.signIns, m.maxClients, m.byDomain, m.audioCalls, m.peakAudio, m.totalAudio,
		m.xcodingCalls, m.peakXcoding, m.totalXcoding, m.systemErrors, m.clientErrors, m.rtpLost, m.rtpErrors,
		m.gatewayJitter, m.clientJitter} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// jitterThresholds are the `over` labels of the jitter counters.
var jitterThresholds = [...]struct {
	ms    float64
	label string
}{{100, "100"}, {300, "300"}, {500, "500"}}

// callStarted counts an established call.
func (m *metrics) callStarted(xcoding bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.curAudio++
	m.totalAudio.Inc()
	m.audioCalls.Set(float64(m.curAudio))
	if m.curAudio > m.peakA {
		m.peakA = m.curAudio
		m.peakAudio.Set(float64(m.peakA))
	}
	if xcoding {
		m.curX++
		m.totalXcoding.Inc()
		m.xcodingCalls.Set(float64(m.curX))
		if m.curX > m.peakX {
			m.peakX = m.curX
			m.peakXcoding.Set(float64(m.peakX))
		}
	}
}

// callEnded undoes callStarted.
func (m *metrics) callEnded(xcoding bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.curAudio--
	m.audioCalls.Set(float64(m.curAudio))
	if xcoding {
		m.curX--
		m.xcodingCalls.Set(float64(m.curX))
	}
}
