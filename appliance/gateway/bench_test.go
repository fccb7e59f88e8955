package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
	"github.com/cxlab/cxlab/appliance/media"
)

func drainRegs(l *lab) func() {
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-l.voice.regs:
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop) }
}

// BenchmarkSignIn measures legacy sign-in (HTTP + SIP REGISTER round trip)
// and the heap held per signed-in agent.
func BenchmarkSignIn(b *testing.B) {
	l := startLab(b, func(c *gateway.Config) { c.MaxClients = 1 << 20 }, nil)
	defer drainRegs(l)()
	hc := &http.Client{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	for b.Loop() {
		res, err := hc.Get(fmt.Sprintf("%s/webrtc/sign_in?%d", l.base, 100000+n))
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("sign-in %d: %v %v", n, err, res)
		}
		res.Body.Close()
		n++
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heapB/agent")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTranscodedCalls runs N concurrent Opus<->PCMU calls through the
// gateway (real pion agents, real RTP peers) and reports process CPU per call
// second, next to the codec-only cost of the same audio. The process CPU
// includes the headless agents' own Opus encode/decode and the RTP peers.
func BenchmarkTranscodedCalls(b *testing.B) {
	for _, n := range []int{10, 40} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) { benchCalls(b, n) })
	}
}

func benchCalls(b *testing.B, n int) {
	// Codec-only first, on a quiet process: one Transcoder, both directions, 50 frames per call second.
	tc, _ := media.NewTranscoder(media.PCMU, media.OpusConfig{})
	pcm := make([]int16, media.FrameSamples)
	media.ReadFrame(media.NewSine(1000, -20, 0), pcm)
	g := media.EncodeG711(media.PCMU, pcm, nil)
	op := make([]byte, media.MaxOpusPacket)
	out := make([]byte, media.MaxOpusFrameSamples)
	c1 := cpuTime()
	const frames = 2000
	for range frames {
		pkt, _ := tc.G711ToOpus(g, op)
		_, _ = tc.OpusToG711(pkt, out)
	}
	codec := (cpuTime() - c1).Seconds() * 1000 / (frames / 50.0)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	l := startLab(b, nil, nil)
	defer drainRegs(l)()
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan struct{}, n)
	agents := make([]*agent.Agent, n)
	for i := range n {
		a := agent.New(agent.Config{URL: l.base, DN: fmt.Sprint(8000 + i), Password: "x", AutoAnswer: true, PlayHz: 1000, BindIP: "127.0.0.1"})
		if err := a.SignIn(ctx); err != nil {
			b.Fatal(err)
		}
		agents[i] = a
		go func() { _ = a.Run(runCtx); done <- struct{}{} }()
	}
	defer func() {
		stopRun()
		for range n {
			<-done
		}
	}()
	eventually(b, 10*time.Second, "registrations", func() bool { _, ok := l.voice.binding(fmt.Sprint(8000 + n - 1)); return ok })
	for i := range n {
		l.voice.call(ctx, b, fmt.Sprint(8000+i), 440)
	}
	eventually(b, 20*time.Second, "all calls carry audio", func() bool {
		for _, a := range agents {
			if a.Heard().AudioMS < 200 {
				return false
			}
		}
		return true
	})
	start, c0 := time.Now(), cpuTime()
	for b.Loop() {
		time.Sleep(20 * time.Millisecond)
	}
	wall, cpu := time.Since(start), cpuTime()-c0
	callSeconds := wall.Seconds() * float64(n)
	b.ReportMetric(cpu.Seconds()*1000/callSeconds, "cpu-ms/call-s")

	b.ReportMetric(codec, "codec-cpu-ms/call-s")
}
