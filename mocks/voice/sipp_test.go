package voice

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/freeport"
)

func sippPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sipp is required in CI: install with: apt-get install sip-tester")
		}
		t.Skip("sipp not installed; install with: apt-get install sip-tester")
	}
	return p
}

// freeUDPPort is a loopback UDP port for sipp, free now and below the
// ephemeral range.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1", freeport.UDP, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSippCallerReachesAgentThroughQueue drives the emulator with sipp's
// built-in UAC: a customer dials VQ_Sales's number and is answered by a
// Ready agent UA; sipp exits 0 only if the call set up and tore down cleanly.
func TestSippCallerReachesAgentThroughQueue(t *testing.T) {
	sipp := sippPath(t)
	l := newLab(t, nil)
	agent := newTestUA(t, l, "7001", 1000)
	if agent.registerBearer("tok-agent1", 60) != 200 {
		t.Fatal("register failed")
	}
	l.ready(t, "agent1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, "-sn", "uac", "-s", "+18005550100", l.sipAddr(),
		"-i", "127.0.0.1", "-p", fmt.Sprint(freeUDPPort(t)), "-m", "1", "-d", "1000",
		"-timeout", "30s", "-timeout_error", "-nostdin", "-nd")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sipp failed: %v\n%s", err, lastLines(out, 30))
	}
	inv := <-agent.invites
	if h := inv.GetHeader("X-Genesys-VirtualQueue"); h == nil || h.Value() != "VQ_Sales" {
		t.Fatalf("agent INVITE lacks the queue: %v", h)
	}
	eventually(t, 5*time.Second, "inbound call filed", func() bool {
		cs := l.v.Calls()
		return len(cs) == 1 && cs[0].Kind == kindInbound && cs[0].State == "ended" && cs[0].AgentDN == "7001"
	})
	eventually(t, 3*time.Second, "agent Ready after wrap-up", func() bool { return l.agentState("7001") == Ready })
	if st := l.v.QueueStats(ctx, testCCID, "VQ_Sales"); st.AverageHandlingTime <= 0 || math.IsNaN(st.AverageHandlingTime) {
		t.Fatalf("AHT not recorded: %+v", st)
	}
}

func lastLines(b []byte, n int) string {
	lines := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			lines++
			if lines > n {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

// TestSippCustomerReceivesCallback: sipp registers as customer number
// +12025550888 (digest), then a sipp UAS on that contact takes the callback:
// INVITE from the parking media, re-INVITE toward the agent, BYE.
func TestSippCustomerReceivesCallback(t *testing.T) {
	sipp := sippPath(t)
	l := newLab(t, nil)
	agent := newTestUA(t, l, "7001", 1000)
	if agent.registerBearer("tok-agent1", 60) != 200 {
		t.Fatal("register failed")
	}
	l.ready(t, "agent1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	port := fmt.Sprint(freeUDPPort(t))
	wd, _ := os.Getwd()
	reg := exec.CommandContext(ctx, sipp, "-sf", wd+"/testdata/sipp_register.xml", l.sipAddr(), "-i", "127.0.0.1",
		"-p", port, "-m", "1", "-timeout", "10s", "-timeout_error", "-nostdin", "-nd")
	reg.Dir = t.TempDir()
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("sipp register: %v\n%s", err, lastLines(out, 30))
	}
	if _, ok := l.v.lookupBinding(bindKey{user: "+12025550888"}); !ok {
		t.Fatal("sipp customer not registered")
	}
	uas := exec.CommandContext(ctx, sipp, "-sf", wd+"/testdata/sipp_customer_uas.xml", "-i", "127.0.0.1",
		"-p", port, "-mp", fmt.Sprint(freeUDPPort(t)), "-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin", "-nd")
	uas.Dir = t.TempDir()
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = uas.CombinedOutput()
		done <- err
	}()
	const id = "77777777-7777-7777-7777-777777777777"
	// sipp has no readiness signal: dial retries (5 attempts, 1 s apart)
	// cover a UAS that is not listening yet.
	l.xadd(startEntry(id, "+12025550888", 5, 1))
	eventually(t, 20*time.Second, "callback PROCESSING", func() bool { return l.ges.last(id).State == stProcessing })
	cs := l.v.Calls()
	if code, body := l.api2("POST", "/voice/v1/calls/"+string(cs[0].ID)+"/hangup", "tok-agent1", ""); code != 200 {
		t.Fatalf("hangup %d %v", code, body)
	}
	if err := <-done; err != nil {
		t.Fatalf("sipp customer: %v\n%s", err, lastLines(out, 40))
	}
	eventually(t, 5*time.Second, "callback COMPLETED", func() bool {
		r := l.ges.last(id)
		return r.State == stCompleted && r.Reason == reasonAgentConnected
	})
}
