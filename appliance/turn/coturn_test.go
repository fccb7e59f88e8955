package turn

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

const (
	uclientPath = "/usr/bin/turnutils_uclient"
	peerPath    = "/usr/bin/turnutils_peer"
)

// TestCoturnClientsWithRESTCredentials drives the server with coturn's own test
// client: 50 concurrent clients using TURN REST credentials derived from the
// shared secret (-W), each relaying a bounded number of messages through the
// server to turnutils_peer and back.
func TestCoturnClientsWithRESTCredentials(t *testing.T) {
	requireTool(t, uclientPath, "coturn")
	requireTool(t, peerPath, "coturn")
	if testing.Short() {
		t.Skip("drives 50 external clients")
	}

	const clients, messages = 50, 20
	srv := startServer(t, func(c *Config) { c.UserQuota = -1 })
	peerPort := startCoturnPeer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	serverPort := srv.UDPAddr().(*net.UDPAddr).Port
	cmd := exec.CommandContext(ctx, uclientPath,
		"-W", srv.cfg.AuthSecret, "-u", "loadtest",
		"-m", strconv.Itoa(clients), "-n", strconv.Itoa(messages), "-l", "120", "-z", "5",
		"-c", // no RTCP allocations: one relay per client
		"-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-p", strconv.Itoa(serverPort),
		"127.0.0.1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("turnutils_uclient: %v\n%s", err, out)
	}

	sent := lastInt(t, out, `tot_send_msgs=(\d+)`)
	recv := lastInt(t, out, `tot_recv_msgs=(\d+)`)
	lost := lastInt(t, out, `Total lost packets (\d+)`)
	if sent != clients*messages || recv != sent || lost != 0 {
		t.Fatalf("sent %d, received %d, lost %d; want %d each way and no loss\n%s",
			sent, recv, lost, clients*messages, out)
	}
	if got := metricValue(srv.m.allocationsTotal); got < clients {
		t.Errorf("cxlab_turn_allocations_total = %v, want >= %d", got, clients)
	}
	if got := metricValue(srv.m.relayedPackets.WithLabelValues("from_peer")); got < clients*messages {
		t.Errorf("from_peer packets = %v, want >= %d", got, clients*messages)
	}
	t.Logf("turnutils_uclient: %d clients x %d messages, %d received, %d lost", clients, messages, recv, lost)
}

// startCoturnPeer runs turnutils_peer (a UDP echo) on a free loopback port and
// waits until it echoes.
func startCoturnPeer(t *testing.T) int {
	t.Helper()
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	_ = probe.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, peerPath, "-L", "127.0.0.1", "-p", strconv.Itoa(port))
	var logBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start turnutils_peer: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})

	conn, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 16)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, _ = conn.Write([]byte("ping"))
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && string(buf[:n]) == "ping" {
			return port
		}
	}
	t.Fatalf("turnutils_peer on port %d never echoed\n%s", port, logBuf.String())
	return 0
}

// lastInt returns the last match of re's first group in out.
func lastInt(t *testing.T, out []byte, re string) int {
	t.Helper()
	m := regexp.MustCompile(re).FindAllSubmatch(out, -1)
	if len(m) == 0 {
		t.Fatalf("no %q in turnutils_uclient output:\n%s", re, out)
	}
	n, err := strconv.Atoi(string(m[len(m)-1][1]))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
