package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TURN load: turnLoadProcs turnutils_uclient processes run at once, each with
// turnLoadClients UDP clients (channels, no RTCP) sending turnLoadMessages
// messages of turnLoadBytes bytes every turnLoadIntervalMS ms. uclient paces
// each client on a 1 ms timer and starts each one at random 1-6 s after the
// allocations, so over a whole run packets/s measures that random spread more
// than the server (runs of the same server differed by 30%). The figure is
// therefore taken over the steady window in which every client is sending:
// 150 clients offering 1,000 packets/s each, more than either server relays
// on this box, so it is the server's relay capacity under the same load.
const (
	turnLoadProcs      = 3
	turnLoadClients    = 50
	turnLoadMessages   = 10000
	turnLoadBytes      = 120
	turnLoadIntervalMS = 1
)

// turnVsCoturn runs the same turnutils_uclient load (TURN REST credentials,
// UDP, channels) against CX Lab's TURN server and against coturn's turnserver
// started on the same box, alternating, runs times each, and reports the
// medians of relayed packets per second and server CPU per relayed packet.
//
// Timing: the echo peer is in this process and stamps every datagram it
// receives. The relay rate counts client -> peer datagrams in the steady
// window (from the last relay's first datagram to the first relay's last
// one). CPU per relayed packet takes the server's CPU, sampled every 20 ms,
// from the first to the last datagram at the peer (allocation setup and
// uclient's 10 s wait for lost packets stay out), over the peer's count
// (client -> peer hops) plus the clients' received messages (peer -> client
// hops). With CXLAB_BENCH_PROFILE=dir, each CX Lab run writes a 12-s
// CPU profile from the load's start (it covers the staggered start too).
func turnVsCoturn(ctx context.Context, bin string, runs int) ([]Row, error) {
	for _, tool := range []string{"turnutils_uclient", "turnserver"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is needed (apt-get install coturn)", tool)
		}
	}
	runs = max(runs, 1)
	root, err := os.MkdirTemp("", "cxlab-bench-turn-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711)

	// turnutils_uclient runs every client as one user: lift the per-user quota;
	// its clients need more relay ports than the default range's 41.
	cfgFile := filepath.Join(root, "cxlab.yaml")
	if err := os.WriteFile(cfgFile, []byte("turn:\n  user_quota: 1000\n  min_relay_port: 40000\n  max_relay_port: 49999\n"), 0o644); err != nil {
		return nil, err
	}
	peer, err := startEchoPeer()
	if err != nil {
		return nil, err
	}
	defer peer.close()

	// Every attempt gets a freshly started server, cxlab and coturn alike:
	// uclient leaves without deleting its allocations, and a server keeps
	// them for their lifetime, so a later uclient whose client reuses a local
	// port gets 437 (allocation mismatch) and gives up, and relay ports run out.
	type server struct {
		pid, port int
		profile   string // console URL to profile, cxlab only
		stop      func()
	}
	// The TURN REST secret is cxlab's (kept in its data dir from the first
	// start on); coturn, started after cxlab in every run, is given it too.
	var secret string
	startCX := func() (server, error) {
		in, err := startInstance(ctx, bin, filepath.Join(root, "data"), "--config", cfgFile)
		if err != nil {
			return server{}, err
		}
		secret, _ = in.endpoints["turn_secret"].(string)
		port, err := turnPort(in.endpoints)
		if err != nil {
			in.stop()
			return server{}, err
		}
		return server{pid: in.cmd.Process.Pid, port: port, profile: in.consoleURL(), stop: in.stop}, nil
	}
	startCO := func() (server, error) {
		co, port, err := startCoturn(ctx, root, secret)
		if err != nil {
			return server{}, err
		}
		return server{pid: co.Process.Pid, port: port, stop: func() { _ = co.Process.Kill(); _ = co.Wait() }}, nil
	}
	// A run in which the clients' sending never overlapped for a second
	// (seen about once in 20 runs, cause not yet known: the message names
	// the relays that bound the window) is run once more, and the rows say so.
	repeated := 0
	measure := func(start func() (server, error), label string) (uclientResult, error) {
		attempt := func() (uclientResult, error) {
			srv, err := start()
			if err != nil {
				return uclientResult{}, err
			}
			defer srv.stop()
			profiled := func() {}
			if srv.profile != "" {
				profiled = profileCPU(ctx, srv.profile, 12*time.Second, label)
			}
			defer profiled()
			return uclientLoad(ctx, peer, srv.pid, srv.port, secret)
		}
		r, err := attempt()
		if errors.Is(err, errNoSteadyWindow) && repeated < runs {
			repeated++
			fmt.Fprintf(os.Stderr, "bench turn: %v; running it again\n", err)
			r, err = attempt()
		}
		return r, err
	}
	var cx, coturn []uclientResult
	for i := range runs {
		r, err := measure(startCX, fmt.Sprintf("turn-%d", i+1))
		if err != nil {
			return nil, fmt.Errorf("against cxlab (run %d): %w", i+1, err)
		}
		cx = append(cx, r)
		r, err = measure(startCO, "")
		if err != nil {
			return nil, fmt.Errorf("against coturn (run %d): %w", i+1, err)
		}
		coturn = append(coturn, r)
	}
	cxM, coM := medianResult(cx), medianResult(coturn)
	cond := fmt.Sprintf("%d x turnutils_uclient -W <secret> -m %d -n %d -l %d -z %d -c at once (%d UDP clients, channels, "+
		"%d packets/s offered while all send), echo peer in the bench, loopback, %d CPUs; median of %d runs; client -> peer packets "+
		"at the peer in the window where every client was sending",
		turnLoadProcs, turnLoadClients, turnLoadMessages, turnLoadBytes, turnLoadIntervalMS,
		turnLoadProcs*turnLoadClients, turnLoadProcs*turnLoadClients*1000/turnLoadIntervalMS, runtime.NumCPU(), runs)
	if repeated > 0 {
		cond += fmt.Sprintf(" (%d run(s) repeated: no steady window)", repeated)
	}
	return []Row{
		{Area: "turn", Figure: "relayed packets/s, every client sending, CX Lab TURN", Value: cxM.perSec, Unit: "pkt/s",
			Conditions: cond + fmt.Sprintf(" (%.1f s); uclient lost %.1f%%, RTT %.1f ms", cxM.windowS, cxM.lossPct, cxM.rttMS)},
		{Area: "turn", Figure: "relayed packets/s, every client sending, coturn turnserver", Value: coM.perSec, Unit: "pkt/s",
			Conditions: cond + fmt.Sprintf(" (%.1f s); uclient lost %.1f%%, RTT %.1f ms; coturn defaults (one relay thread per CPU)",
				coM.windowS, coM.lossPct, coM.rttMS)},
		{Area: "turn", Figure: "throughput ratio CX Lab / coturn", Value: cxM.perSec / coM.perSec, Unit: "x", Target: ">= 1.0",
			Conditions: "ratio of the two medians above; same load, same box"},
		{Area: "turn", Figure: "server CPU per 1000 relayed packets, CX Lab", Value: cxM.cpuPerK, Unit: "ms",
			Reference: fmt.Sprintf("coturn %.1f ms", coM.cpuPerK), Ratio: fmt.Sprintf("%.2fx", cxM.cpuPerK/coM.cpuPerK),
			Conditions: "server process CPU (utime+stime) from the first to the last datagram at the peer / packets relayed both ways, " +
				"same load; cxlab is the whole appliance process"},
	}, nil
}

// startCoturn starts turnserver with the settings CX Lab's TURN has here.
func startCoturn(ctx context.Context, root, secret string) (*exec.Cmd, int, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, 0, err
	}
	co := exec.CommandContext(ctx, "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "-L", "127.0.0.1",
		"-p", strconv.Itoa(port), "--use-auth-secret", "--static-auth-secret="+secret, "--realm=cxlab",
		"--allow-loopback-peers", "--min-port=50000", "--max-port=59999", "--user-quota=1000", "--no-stdout-log", "--log-file=/dev/null",
		"--pidfile="+filepath.Join(root, "turnserver.pid"))
	if err := co.Start(); err != nil {
		return nil, 0, err
	}
	if err := waitUDPServer(port); err != nil {
		_ = co.Process.Kill()
		_ = co.Wait()
		return nil, 0, err
	}
	return co, port, nil
}

// errNoSteadyWindow: the clients' sending never overlapped for a second.
var errNoSteadyWindow = errors.New("no steady window")

type uclientResult struct {
	perSec, cpuPerK, lossPct, rttMS, windowS float64
}

// medianResult takes each figure's median on its own.
func medianResult(rs []uclientResult) uclientResult {
	pick := func(f func(uclientResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return uclientResult{
		perSec:  pick(func(r uclientResult) float64 { return r.perSec }),
		cpuPerK: pick(func(r uclientResult) float64 { return r.cpuPerK }),
		lossPct: pick(func(r uclientResult) float64 { return r.lossPct }),
		rttMS:   pick(func(r uclientResult) float64 { return r.rttMS }),
		windowS: pick(func(r uclientResult) float64 { return r.windowS }),
	}
}

// uclientLoad runs the turnutils_uclient processes against one server and
// measures its relay rate over the steady window (every client sending) and
// its CPU per relayed packet over the whole run.
func uclientLoad(ctx context.Context, peer *echoPeer, serverPID, serverPort int, secret string) (uclientResult, error) {
	peer.reset()
	cpu := startCPUSampler(serverPID)
	outs := make([][]byte, turnLoadProcs)
	errs := make([]error, turnLoadProcs)
	var wg sync.WaitGroup
	for i := range turnLoadProcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = exec.CommandContext(ctx, "turnutils_uclient", "-W", secret, "-u", "bench",
				"-m", strconv.Itoa(turnLoadClients), "-n", strconv.Itoa(turnLoadMessages), "-l", strconv.Itoa(turnLoadBytes),
				"-z", strconv.Itoa(turnLoadIntervalMS), "-c",
				"-e", "127.0.0.1", "-r", strconv.Itoa(peer.port()), "-p", strconv.Itoa(serverPort), "127.0.0.1").CombinedOutput()
		}()
	}
	wg.Wait()
	samples := cpu.stop()
	var sent, recv int
	var rtt float64
	for i, out := range outs {
		if errs[i] != nil {
			return uclientResult{}, fmt.Errorf("turnutils_uclient: %w\n%s", errs[i], tail(out))
		}
		s, ok1 := lastMatch(out, `tot_send_msgs=(\d+), tot_recv_msgs=`)
		r, ok2 := lastMatch(out, `tot_recv_msgs=(\d+)`)
		d, ok3 := lastFloat(out, `Average round trip delay ([0-9.]+) ms`)
		if !ok1 || !ok2 || !ok3 {
			return uclientResult{}, fmt.Errorf("unexpected turnutils_uclient output:\n%s", tail(out))
		}
		sent, recv = sent+s, recv+r
		rtt += d * float64(r)
	}
	first, last, atPeer := peer.window()
	if atPeer == 0 || recv == 0 || !last.After(first) {
		return uclientResult{}, fmt.Errorf("nothing relayed (%d at the peer, %d back at the clients)", atPeer, recv)
	}
	from, to, inWindow := peer.steady()
	steady := to.Sub(from)
	if steady < time.Second {
		return uclientResult{}, fmt.Errorf("every client was sending for only %v: %w; %s",
			steady.Round(time.Millisecond), errNoSteadyWindow, peer.outliers())
	}
	relayed := float64(atPeer + recv)
	used := cpuBetween(samples, first, last)
	return uclientResult{
		perSec:  float64(inWindow) / steady.Seconds(),
		windowS: steady.Seconds(),
		cpuPerK: float64(used.Microseconds()) / 1000 / relayed * 1000,
		lossPct: 100 * float64(sent-min(recv, sent)) / float64(sent),
		rttMS:   rtt / float64(recv),
	}, nil
}

// echoPeer echoes every datagram back to its sender (turnutils_peer's job)
// and notes when the first and last one arrived, from each relay and in all,
// and how many arrived in each millisecond.
type echoPeer struct {
	conn *net.UDPConn
	done chan struct{}

	mu          sync.Mutex
	first, last time.Time
	count       int
	relays      map[netip.AddrPort]*relaySeen
	perMS       []int32 // arrivals per millisecond since first
}

// relaySeen is what the peer saw from one relayed address.
type relaySeen struct {
	first, last time.Time
	count       int
}

func startEchoPeer() (*echoPeer, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	// Bursts from 200 relays must not overflow the peer's queue.
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	p := &echoPeer{conn: c, done: make(chan struct{}), relays: make(map[netip.AddrPort]*relaySeen)}
	go p.run()
	return p, nil
}

func (p *echoPeer) run() {
	defer close(p.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		now := time.Now()
		p.mu.Lock()
		if p.count == 0 {
			p.first = now
		}
		p.last = now
		p.count++
		r := p.relays[from]
		if r == nil {
			r = &relaySeen{first: now}
			p.relays[from] = r
		}
		r.last = now
		r.count++
		ms := int(now.Sub(p.first) / time.Millisecond)
		for len(p.perMS) <= ms {
			p.perMS = append(p.perMS, 0)
		}
		p.perMS[ms]++
		p.mu.Unlock()
		_, _ = p.conn.WriteToUDPAddrPort(buf[:n], from)
	}
}

func (p *echoPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *echoPeer) reset() {
	p.mu.Lock()
	p.first, p.last, p.count = time.Time{}, time.Time{}, 0
	p.relays, p.perMS = make(map[netip.AddrPort]*relaySeen), p.perMS[:0]
	p.mu.Unlock()
}

func (p *echoPeer) window() (first, last time.Time, count int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first, p.last, p.count
}

// steady returns the window in which every relay was sending (from the
// latest first datagram to the earliest last one) and how many datagrams
// arrived in it, to the millisecond.
func (p *echoPeer) steady() (from, to time.Time, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.relays {
		if from.IsZero() || r.first.After(from) {
			from = r.first
		}
		if to.IsZero() || r.last.Before(to) {
			to = r.last
		}
	}
	lo, hi := int(from.Sub(p.first)/time.Millisecond), int(to.Sub(p.first)/time.Millisecond)
	for ms := max(lo, 0); ms <= hi && ms < len(p.perMS); ms++ {
		n += int(p.perMS[ms])
	}
	return from, to, n
}

// outliers describes the relays that bound the steady window (the latest
// to start, the earliest to stop) beside the median relay, with times from
// the run's first datagram at the peer.
func (p *echoPeer) outliers() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := make([]*relaySeen, 0, len(p.relays))
	for _, r := range p.relays {
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return "no relay seen"
	}
	desc := func(r *relaySeen) string {
		return fmt.Sprintf("%.2f-%.2f s, %d datagrams", r.first.Sub(p.first).Seconds(), r.last.Sub(p.first).Seconds(), r.count)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].first.Before(rs[j].first) })
	latest := rs[len(rs)-1]
	sort.Slice(rs, func(i, j int) bool { return rs[i].last.Before(rs[j].last) })
	earliest := rs[0]
	sort.Slice(rs, func(i, j int) bool { return rs[i].count < rs[j].count })
	return fmt.Sprintf("%d relays; latest to start %s; earliest to stop %s; median relay %d datagrams, fewest %d",
		len(rs), desc(latest), desc(earliest), rs[len(rs)/2].count, rs[0].count)
}

func (p *echoPeer) close() {
	_ = p.conn.Close()
	<-p.done
}

type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

type cpuSampler struct {
	stopc   chan struct{}
	done    chan struct{}
	samples []cpuSample
}

// startCPUSampler reads pid's CPU time every 20 ms until stop.
func startCPUSampler(pid int) *cpuSampler {
	s := &cpuSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			s.samples = append(s.samples, cpuSample{at: time.Now(), cpu: processCPU(pid)})
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *cpuSampler) stop() []cpuSample {
	close(s.stopc)
	<-s.done
	return s.samples
}

// cpuBetween is the CPU used from the last sample at or before from to the
// first sample at or after to.
func cpuBetween(samples []cpuSample, from, to time.Time) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	lo, hi := samples[0].cpu, samples[len(samples)-1].cpu
	for _, s := range samples {
		if !s.at.After(from) {
			lo = s.cpu
		}
	}
	for i := len(samples) - 1; i >= 0; i-- {
		if !samples[i].at.Before(to) {
			hi = samples[i].cpu
		}
	}
	return hi - lo
}

func lastFloat(out []byte, re string) (float64, bool) {
	m := regexp.MustCompile(re).FindAllSubmatch(out, -1)
	if len(m) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[len(m)-1][1]), 64)
	return v, err == nil
}

func lastMatch(out []byte, re string) (int, bool) {
	m := regexp.MustCompile(re).FindAllSubmatch(out, -1)
	if len(m) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(m[len(m)-1][1]))
	return n, err == nil
}

func tail(b []byte) string {
	s := string(b)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

func turnPort(ep map[string]any) (int, error) {
	urls, _ := ep["turn_urls"].([]any)
	for _, u := range urls {
		s, _ := u.(string)
		if strings.Contains(s, "transport=udp") {
			// turn:127.0.0.1:3478?transport=udp
			hostport := strings.TrimPrefix(strings.SplitN(s, "?", 2)[0], "turn:")
			_, p, err := net.SplitHostPort(hostport)
			if err != nil {
				return 0, err
			}
			return strconv.Atoi(p)
		}
	}
	return 0, errors.New("no UDP TURN URL in the endpoints file")
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// waitUDPServer waits until the port is bound (a second bind fails).
func waitUDPServer(port int) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil
		}
		_ = c.Close()
		time.Sleep(20 * time.Millisecond) // waiting for a child process to bind; bounded
	}
	return errors.New("turnserver did not bind its port")
}
