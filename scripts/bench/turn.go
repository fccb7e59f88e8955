package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// turnVsCoturn runs the same turnutils_uclient load (TURN REST credentials,
// 50 clients, UDP, echo peer turnutils_peer) against CX Lab's TURN server and
// against coturn's turnserver started on the same box, and compares relayed
// packets per second and server CPU per relayed packet.
func turnVsCoturn(ctx context.Context, bin string, _ int) ([]Row, error) {
	for _, tool := range []string{"turnutils_uclient", "turnutils_peer", "turnserver"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is needed (apt-get install coturn)", tool)
		}
	}
	root, err := os.MkdirTemp("", "cxlab-bench-turn-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711)

	peerPort, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	peer := exec.CommandContext(ctx, "turnutils_peer", "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = peer.Process.Kill(); _ = peer.Wait() }()

	// turnutils_uclient runs every client as one user: lift the per-user quota;
	// 50 clients need more relay ports than the default range's 41.
	cfgFile := filepath.Join(root, "cxlab.yaml")
	if err := os.WriteFile(cfgFile, []byte("turn:\n  user_quota: 1000\n  min_relay_port: 50000\n  max_relay_port: 50999\n"), 0o644); err != nil {
		return nil, err
	}
	in, err := startInstance(ctx, bin, filepath.Join(root, "data"), "--config", cfgFile)
	if err != nil {
		return nil, err
	}
	defer in.stop()
	secret, _ := in.endpoints["turn_secret"].(string)
	cxPort, err := turnPort(in.endpoints)
	if err != nil {
		return nil, err
	}
	const clients, messages = 50, 400
	cx, err := uclient(ctx, in.cmd.Process.Pid, cxPort, peerPort, secret, clients, messages)
	if err != nil {
		return nil, fmt.Errorf("against cxlab: %w", err)
	}

	coPort, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	co := exec.CommandContext(ctx, "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "-L", "127.0.0.1",
		"-p", strconv.Itoa(coPort), "--use-auth-secret", "--static-auth-secret="+secret, "--realm=cxlab",
		"--allow-loopback-peers", "--min-port=51000", "--max-port=51999", "--user-quota=1000", "--no-stdout-log", "--log-file=/dev/null",
		"--pidfile="+filepath.Join(root, "turnserver.pid"))
	if err := co.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = co.Process.Kill(); _ = co.Wait() }()
	if err := waitUDPServer(coPort); err != nil {
		return nil, err
	}
	coturn, err := uclient(ctx, co.Process.Pid, coPort, peerPort, secret, clients, messages)
	if err != nil {
		return nil, fmt.Errorf("against coturn: %w", err)
	}
	cond := fmt.Sprintf("turnutils_uclient -W <secret> -m %d -n %d -l 120 -z 5 -c, UDP, echo peer turnutils_peer, loopback", clients, messages)
	return []Row{
		{Area: "turn", Figure: "relayed packets/s, CX Lab TURN", Value: cx.perSec, Unit: "pkt/s", Conditions: cond + fmt.Sprintf("; %d lost", cx.lost)},
		{Area: "turn", Figure: "relayed packets/s, coturn turnserver", Value: coturn.perSec, Unit: "pkt/s", Conditions: cond + fmt.Sprintf("; %d lost", coturn.lost)},
		{Area: "turn", Figure: "throughput ratio CX Lab / coturn", Value: cx.perSec / coturn.perSec, Unit: "x", Target: ">= 1.0", Conditions: "same load, same box"},
		{Area: "turn", Figure: "server CPU per 1000 relayed packets, CX Lab / coturn", Value: cx.cpuPerK, Unit: fmt.Sprintf("ms / %.1f ms", coturn.cpuPerK), Conditions: "server process CPU time (utime+stime) over the run"},
	}, nil
}

type uclientResult struct {
	perSec, cpuPerK float64
	lost            int
}

func uclient(ctx context.Context, serverPID, serverPort, peerPort int, secret string, clients, messages int) (uclientResult, error) {
	c0 := processCPU(serverPID)
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "turnutils_uclient", "-W", secret, "-u", "bench",
		"-m", strconv.Itoa(clients), "-n", strconv.Itoa(messages), "-l", "120", "-z", "5", "-c",
		"-e", "127.0.0.1", "-r", strconv.Itoa(peerPort), "-p", strconv.Itoa(serverPort), "127.0.0.1").CombinedOutput()
	el := time.Since(t0)
	cpu := processCPU(serverPID) - c0
	if err != nil {
		return uclientResult{}, fmt.Errorf("turnutils_uclient: %w\n%s", err, tail(out))
	}
	recv, ok1 := lastMatch(out, `tot_recv_msgs=(\d+)`)
	lost, ok2 := lastMatch(out, `Total lost packets (\d+)`)
	if !ok1 || !ok2 {
		return uclientResult{}, fmt.Errorf("unexpected turnutils_uclient output:\n%s", tail(out))
	}
	relayed := float64(2 * recv) // each echoed message crosses the relay twice
	return uclientResult{perSec: relayed / el.Seconds(), cpuPerK: float64(cpu.Milliseconds()) / relayed * 1000, lost: lost}, nil
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
