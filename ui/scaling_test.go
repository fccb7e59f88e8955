package ui

import (
	"strings"
	"testing"
)

func TestDecideGatewayScale(t *testing.T) {
	seed := SeedHelmScaling()
	if seed.GatewayThresholdSignin != 25 || seed.GatewayThresholdCPU != 60 || seed.GatewayMaxReplicas != 100 {
		t.Fatalf("seed values = %+v", seed)
	}
	cases := []struct {
		name          string
		h             HelmScaling
		replicas      int
		signIns       int
		cpu, mem      float64
		want          int
		reasonContain string
	}{
		{"idle stays at one", seed, 1, 0, 5, 10, 1, "minimum is 1"},
		{"26 sign-ins are within the HPA tolerance", seed, 1, 26, 10, 10, 1, "stay at 1"},
		{"28 sign-ins need a second pod", seed, 1, 28, 10, 10, 2, signInMetric + " asks for 2"},
		{"60 sign-ins on 3 pods hold", seed, 3, 60, 10, 10, 3, "stay at 3"},
		{"within tolerance keeps count", seed, 2, 52, 10, 10, 2, "stay at 2"},
		{"cpu drives when higher", seed, 2, 30, 90, 20, 3, "cpu asks for 3"},
		{"memory drives", seed, 4, 10, 10, 120, 8, "memory asks for 8"},
		{"scale in", seed, 5, 20, 10, 10, 1, "scale in 5 -> 1"},
		{"capped by maxReplicaCount", seed, 10, 5000, 10, 10, 100, "capped by maxReplicaCount 100"},
		{"keda off fixes replicas", HelmScaling{KEDA: false, GatewayReplicas: 2, GatewayThresholdSignin: 25}, 2, 500, 99, 99, 2, "deployment.keda is false"},
		{"zero values mean the seed", HelmScaling{}, 1, 51, 0, 0, 3, "scale out 1 -> 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := DecideGatewayScale(c.h, c.replicas, c.signIns, c.cpu, c.mem)
			if d.Desired != c.want {
				t.Errorf("desired = %d, want %d (%s)", d.Desired, c.want, d.Reason)
			}
			if !strings.Contains(d.Reason, c.reasonContain) {
				t.Errorf("reason %q lacks %q", d.Reason, c.reasonContain)
			}
		})
	}
}

func TestDecideCoturnScaleIgnoresSignins(t *testing.T) {
	d := DecideCoturnScale(SeedHelmScaling(), 1, 30, 30)
	if d.Desired != 1 || len(d.Proposals) != 2 {
		t.Fatalf("coturn = %+v", d)
	}
	d = DecideCoturnScale(SeedHelmScaling(), 2, 150, 30)
	if d.Desired != 5 {
		t.Errorf("coturn at 150%% cpu on 2 = %d, want 5 (%s)", d.Desired, d.Reason)
	}
}
