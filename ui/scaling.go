package ui

import (
	"fmt"
	"math"
	"strings"
)

// HelmScaling holds the scaling values of the WebRTC Helm chart (seed 000):
// deployment.keda, gateway.scaling.* and coturn.scaling.*.
type HelmScaling struct {
	KEDA                   bool // deployment.keda
	GatewayReplicas        int  // gateway.replicas: the fixed count when KEDA is off
	GatewayMaxReplicas     int  // gateway.scaling.maxReplicaCount
	GatewayThresholdSignin int  // gateway.scaling.thresholdSignins
	GatewayThresholdCPU    int  // gateway.scaling.thresholdCpu (percent)
	GatewayThresholdMemory int  // gateway.scaling.thresholdMemory (percent)
	CoturnReplicas         int  // coturn.replicas
	CoturnMaxReplicas      int  // coturn.scaling.maxReplicaCount
	CoturnThresholdCPU     int  // coturn.scaling.thresholdCpu
	CoturnThresholdMemory  int  // coturn.scaling.thresholdMemory
	PollingIntervalSec     int  // *.scaling.pollingInterval
}

// SeedHelmScaling returns the values seed 000 shows (KEDA on, as in its
// auto-scaling section; thresholdSignins 25, CPU and memory 60 %, max 100).
func SeedHelmScaling() HelmScaling {
	return HelmScaling{KEDA: true, GatewayReplicas: 1, GatewayMaxReplicas: 100, GatewayThresholdSignin: 25,
		GatewayThresholdCPU: 60, GatewayThresholdMemory: 60, CoturnReplicas: 1, CoturnMaxReplicas: 100,
		CoturnThresholdCPU: 60, CoturnThresholdMemory: 60, PollingIntervalSec: 30}
}

func (h HelmScaling) orSeed() HelmScaling {
	if h == (HelmScaling{}) {
		return SeedHelmScaling()
	}
	return h
}

// signInMetric is the gateway gauge the sign-in trigger reads (seed 000).
const signInMetric = "wrtc_current_signins" //nolint:misspell // the product's metric name

// hpaTolerance is the Kubernetes HPA's default: ratios within 10 % of 1 keep
// the current replica count.
const hpaTolerance = 0.1

// MetricProposal is what one KEDA trigger asks for.
type MetricProposal struct {
	Metric   string  // the sign-in gauge, "cpu" or "memory"
	Value    float64 // the live value (a total for sign-ins, a percent for cpu/memory)
	Target   float64 // the threshold
	Replicas int     // replicas this trigger alone asks for
}

// ScaleDecision is the replica count KEDA's HPA would settle on, and why.
type ScaleDecision struct {
	Current   int
	Desired   int
	Proposals []MetricProposal
	Reason    string
}

// DecideGatewayScale applies KEDA's rules to the gateway: one Prometheus
// trigger on the gateways' summed sign-in gauge with target thresholdSignins per
// replica (an AverageValue target), and CPU and memory triggers with
// utilization targets. The HPA takes the largest proposal and clamps it to
// [1, maxReplicaCount]. With deployment.keda false the count stays fixed.
func DecideGatewayScale(h HelmScaling, replicas, signIns int, cpuPct, memPct float64) ScaleDecision {
	h = h.orSeed()
	if !h.KEDA {
		n := max(h.GatewayReplicas, 1)
		return ScaleDecision{Current: replicas, Desired: n,
			Reason: fmt.Sprintf("deployment.keda is false: no autoscaling, gateway.replicas fixes %d", n)}
	}
	props := []MetricProposal{
		averageValueProposal(signInMetric, float64(signIns), float64(h.GatewayThresholdSignin), replicas),
		utilizationProposal("cpu", cpuPct, float64(h.GatewayThresholdCPU), replicas),
		utilizationProposal("memory", memPct, float64(h.GatewayThresholdMemory), replicas),
	}
	return settle(replicas, h.GatewayMaxReplicas, props)
}

// DecideCoturnScale applies KEDA's rules to coturn: CPU and memory only (seed 000).
func DecideCoturnScale(h HelmScaling, replicas int, cpuPct, memPct float64) ScaleDecision {
	h = h.orSeed()
	if !h.KEDA {
		n := max(h.CoturnReplicas, 1)
		return ScaleDecision{Current: replicas, Desired: n,
			Reason: fmt.Sprintf("deployment.keda is false: no autoscaling, coturn.replicas fixes %d", n)}
	}
	props := []MetricProposal{
		utilizationProposal("cpu", cpuPct, float64(h.CoturnThresholdCPU), replicas),
		utilizationProposal("memory", memPct, float64(h.CoturnThresholdMemory), replicas),
	}
	return settle(replicas, h.CoturnMaxReplicas, props)
}

// averageValueProposal: desired = ceil(total / target), unless the per-replica
// average is within the tolerance of the target.
func averageValueProposal(name string, total, target float64, replicas int) MetricProposal {
	p := MetricProposal{Metric: name, Value: total, Target: target, Replicas: replicas}
	if target <= 0 {
		return p
	}
	cur := max(replicas, 1)
	ratio := total / float64(cur) / target
	if math.Abs(1-ratio) <= hpaTolerance {
		p.Replicas = cur
		return p
	}
	p.Replicas = int(math.Ceil(total / target))
	return p
}

// utilizationProposal: desired = ceil(replicas × current / target).
func utilizationProposal(name string, pct, target float64, replicas int) MetricProposal {
	p := MetricProposal{Metric: name, Value: pct, Target: target, Replicas: replicas}
	if target <= 0 {
		return p
	}
	cur := max(replicas, 1)
	ratio := pct / target
	if math.Abs(1-ratio) <= hpaTolerance {
		p.Replicas = cur
		return p
	}
	p.Replicas = int(math.Ceil(ratio * float64(cur)))
	return p
}

func settle(replicas, maxReplicas int, props []MetricProposal) ScaleDecision {
	d := ScaleDecision{Current: replicas, Proposals: props}
	best := props[0]
	for _, p := range props[1:] {
		if p.Replicas > best.Replicas {
			best = p
		}
	}
	want := best.Replicas
	below := true
	for _, p := range props {
		v := p.Value
		if p.Metric == signInMetric {
			v /= float64(max(replicas, 1))
		}
		below = below && v < p.Target
	}
	var why []string
	switch {
	case want <= 1 && below:
		want = 1
		why = append(why, "every trigger is below its target; the minimum is 1 replica")
	default:
		why = append(why, fmt.Sprintf("%s asks for %d (%s against target %s)", best.Metric, best.Replicas,
			fmtMetric(best.Metric, best.Value), fmtMetric(best.Metric, best.Target)))
	}
	want = max(want, 1)
	if maxReplicas > 0 && want > maxReplicas {
		why = append(why, fmt.Sprintf("capped by maxReplicaCount %d", maxReplicas))
		want = maxReplicas
	}
	d.Desired = want
	switch {
	case want > replicas:
		why = append([]string{fmt.Sprintf("scale out %d -> %d", replicas, want)}, why...)
	case want < replicas:
		why = append([]string{fmt.Sprintf("scale in %d -> %d", replicas, want)}, why...)
	default:
		why = append([]string{fmt.Sprintf("stay at %d", want)}, why...)
	}
	d.Reason = strings.Join(why, "; ")
	return d
}

func fmtMetric(metric string, v float64) string {
	if metric == "cpu" || metric == "memory" {
		return fmt.Sprintf("%.0f%%", v)
	}
	return fmt.Sprintf("%.0f", v)
}
