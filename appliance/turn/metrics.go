package turn

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Auth failure reasons, the values of the "reason" label of
// cxlab_turn_auth_failures_total.
const (
	reasonMalformed   = "malformed_username"
	reasonExpired     = "expired"
	reasonUnknownUser = "unknown_user"
	reasonRealm       = "wrong_realm"
	reasonBadPassword = "bad_password"
)

// metrics are the server's Prometheus collectors, all named cxlab_turn_*.
type metrics struct {
	allocationsTotal *prometheus.CounterVec
	relayedBytes     *prometheus.CounterVec
	relayedPackets   *prometheus.CounterVec
	authFailures     *prometheus.CounterVec
	quotaRefusals    prometheus.Counter
	peersRefused     prometheus.Counter
	relayFailures    prometheus.Counter
	current          prometheus.GaugeFunc
}

func newMetrics(current func() float64) *metrics {
	return &metrics{
		allocationsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlab_turn_allocations_total",
			Help: "TURN allocations created, by client transport (udp, tcp).",
		}, []string{"transport"}),
		relayedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlab_turn_relayed_bytes_total",
			Help: "Payload bytes relayed, by direction (to_peer, from_peer).",
		}, []string{"direction"}),
		relayedPackets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlab_turn_relayed_packets_total",
			Help: "Datagrams (UDP relays) or reads/writes (TCP relays) relayed, by direction (to_peer, from_peer).",
		}, []string{"direction"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlab_turn_auth_failures_total",
			Help: "Requests refused for bad credentials, by reason.",
		}, []string{"reason"}),
		quotaRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cxlab_turn_quota_refusals_total",
			Help: "Allocate requests refused with 486 because the user reached its allocation quota.",
		}),
		peersRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cxlab_turn_peer_refusals_total",
			Help: "CreatePermission, ChannelBind and Connect requests refused by the peer address policy, and datagrams dropped because they were sent to one of the appliance's own service ports.",
		}),
		relayFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cxlab_turn_relay_address_failures_total",
			Help: "Allocate requests refused with 508 because no relay address could be opened (the relay port range is full).",
		}),
		current: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cxlab_turn_allocations",
			Help: "TURN allocations currently active.",
		}, current),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{
		m.allocationsTotal, m.relayedBytes, m.relayedPackets, m.authFailures,
		m.quotaRefusals, m.peersRefused, m.relayFailures, m.current,
	}
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("register turn metrics: %w", err)
	}
	return nil
}

func (m *metrics) traffic() trafficCounters {
	return trafficCounters{
		toPeerBytes:     m.relayedBytes.WithLabelValues("to_peer"),
		toPeerPackets:   m.relayedPackets.WithLabelValues("to_peer"),
		fromPeerBytes:   m.relayedBytes.WithLabelValues("from_peer"),
		fromPeerPackets: m.relayedPackets.WithLabelValues("from_peer"),
	}
}
