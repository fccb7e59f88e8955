package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance/freeport"
)

// envFaults enables the tests; they take minutes and kill processes.
const envFaults = "CXLAB_FAULTS"

// envBin names a prebuilt cxlab binary; by default TestMain builds one.
const envBin = "CXLAB_BIN"

const apiKey = "cxlab-demo-api-key-0000000000000000"

// testEnv is what TestMain prepares for the tests (set once before m.Run).
type testEnv struct {
	bin string // the cxlab binary under test
}

var env testEnv //nolint:gochecknoglobals // set once by TestMain, read-only in tests

func TestMain(m *testing.M) {
	if os.Getenv(envFaults) != "1" {
		// Nothing to build: every test skips.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "cxlab-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env.bin = os.Getenv(envBin)
	if env.bin == "" {
		env.bin = filepath.Join(dir, "cxlab")
		// Built here (cached by go build) so the tests never run a stale bin/.
		build := exec.Command("go", "build", "-trimpath", "-o", env.bin, "../../cmd/cxlab")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build cxlab: %v\n%s", err, out)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// needFaults skips the test unless CXLAB_FAULTS=1.
// It also arms the goroutine-leak guard, checked when the test ends.
func needFaults(t *testing.T) {
	t.Helper()
	if os.Getenv(envFaults) != "1" {
		t.Skip("fault tests are long: run with CXLAB_FAULTS=1 (make faults)")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// labDir returns a data dir the unprivileged postgres account can traverse
// (t.TempDir's 0700 parents would keep it out when the tests run as root).
func labDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cxlab-fault-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}

// endpoints is the part of `cxlab up --endpoints-file` the tests use.
type endpoints struct {
	GESAPIURL   string `json:"ges_api_url"`
	RedisURL    string `json:"redis_url"`
	PostgresURL string `json:"postgres_url"`
	ReadyURL    string `json:"ready_url"`
	DataDir     string `json:"data_dir"`
	APIKey      string `json:"api_key"`
}

// base is the appliance's HTTP base URL.
func (e endpoints) base() string { return strings.TrimSuffix(e.ReadyURL, "/readyz") }

// freeArgs puts every port on 0 so runs never collide with anything.
var freeArgs = []string{"--http-port", "0", "--redis-port", "0", "--postgres-port", "0", "--sip-port", "0", "--turn-port", "0", "--media-port", "0"} //nolint:gochecknoglobals // constant list

// lab is one `cxlab up` process.
type lab struct {
	cmd    *exec.Cmd
	exited chan struct{}
	ep     endpoints
	out    *syncBuffer
	took   time.Duration // from exec to the endpoints file
}

// syncBuffer collects the process output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail returns the last n lines of the process output.
func (l *lab) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.out.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startLab runs cxlab up on dataDir and returns once it wrote its endpoints
// file (it does so only when every component is ready).
func startLab(t *testing.T, dataDir string, extra ...string) *lab {
	t.Helper()
	epFile := filepath.Join(filepath.Dir(dataDir), fmt.Sprintf("endpoints-%d.json", time.Now().UnixNano()))
	args := append(append([]string{"up", "--data-dir", dataDir, "--endpoints-file", epFile}, freeArgs...), extra...)
	cmd := exec.Command(env.bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Should the test binary die, cxlab goes too (and takes postgres along).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cxlab: %v", err)
	}
	l := &lab{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(l.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-l.exited
		if t.Failed() {
			t.Logf("cxlab output (last lines):\n%s", l.tail(60))
		}
	})
	deadline := time.After(90 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond) // polling a file the process writes, bounded by the deadline
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(epFile); err == nil {
			if err := json.Unmarshal(b, &l.ep); err != nil {
				t.Fatalf("endpoints file is not JSON: %v\n%s", err, b)
			}
			l.took = time.Since(t0)
			return l
		}
		select {
		case <-l.exited:
			t.Fatalf("cxlab exited before ready (code %d):\n%s", cmd.ProcessState.ExitCode(), l.tail(60))
		case <-deadline:
			t.Fatalf("cxlab not ready within 90 s:\n%s", l.tail(60))
		case <-tick.C:
		}
	}
}

// waitExit waits for the process to exit and returns its exit code and how
// long it took, failing the test past within.
func (l *lab) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-l.exited:
		return l.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("cxlab did not exit within %s:\n%s", within, l.tail(60))
		return -1
	}
}

// postmasterPID reads the embedded postgres' postmaster pid of a lab data dir.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "pgdata", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// postgresOf lists live postgres processes of a data dir: the postmaster
// (its command line names the dir) and backends (their cwd is inside it).
func postgresOf(dataDir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(b, []byte("postgres")) {
			continue
		}
		cl := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.Contains(cl, dataDir) || strings.HasPrefix(cwd, dataDir) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
				if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
					continue // a zombie waiting for init: not running
				}
			}
			out = append(out, e.Name()+": "+cl)
		}
	}
	return out
}

// waitNoPostgres fails unless every postgres process of dataDir is gone within.
func waitNoPostgres(t *testing.T, dataDir string, within time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		left := postgresOf(dataDir)
		if len(left) == 0 {
			return time.Since(t0)
		}
		if time.Since(t0) > within {
			t.Fatalf("postgres processes outlived cxlab by %s: %v", within, left)
		}
		time.Sleep(50 * time.Millisecond) // polling the process table, bounded above
	}
}

// gesClient calls the Engagement API with the demo key.
type gesClient struct {
	api string
	hc  *http.Client
}

func newGES(ep endpoints, conns int) *gesClient {
	return &gesClient{api: ep.GESAPIURL, hc: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true},
		Timeout:   10 * time.Second,
	}}
}

func (g *gesClient) close() { g.hc.CloseIdleConnections() }

func (g *gesClient) post(ctx context.Context, path string, body any, out any) (int, error) {
	b, _ := json.Marshal(body) // maps of strings always marshal
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.api+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := g.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	rb, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode == http.StatusOK && out != nil {
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(rb, &env); err != nil {
			return res.StatusCode, fmt.Errorf("decode %s: %w", path, err)
		}
		if err := json.Unmarshal(env.Data, out); err != nil {
			return res.StatusCode, fmt.Errorf("decode %s data: %w", path, err)
		}
	}
	return res.StatusCode, nil
}

// create books a callback; desired nil books an immediate one.
func (g *gesClient) create(ctx context.Context, phone string, desired *time.Time) (string, int, error) {
	body := map[string]string{"serviceName": "CB_Support", "phoneNumber": phone}
	if desired != nil {
		body["desiredTime"] = desired.UTC().Format(time.RFC3339)
	}
	var out struct {
		ID string `json:"id"`
	}
	code, err := g.post(ctx, "/callbacks/create", body, &out)
	if err == nil && code == http.StatusOK && out.ID == "" {
		err = errors.New("create answered 200 without an id")
	}
	return out.ID, code, err
}

// callback is what retrieve tells about one callback.
type callback struct {
	ID     string `json:"id"`
	State  string `json:"callbackState"`
	Reason string `json:"callbackReason"`
}

func (g *gesClient) retrieve(ctx context.Context, id string) (callback, int, error) {
	var cb callback
	code, err := g.post(ctx, "/callbacks/retrieve", map[string]string{"id": id}, &cb)
	return cb, code, err
}

// retrieveAll retrieves every id with conc workers and returns the ids that
// did not answer 200, and the states seen.
func (g *gesClient) retrieveAll(ctx context.Context, ids []string, conc int) (missing []string, states map[string]int) {
	var mu sync.Mutex
	states = map[string]int{}
	work := make(chan string)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				var cb callback
				var code int
				var err error
				for try := 0; try < 3; try++ { // a transient transport error is not a lost callback
					if cb, code, err = g.retrieve(ctx, id); err == nil {
						break
					}
				}
				mu.Lock()
				if err != nil || code != http.StatusOK {
					missing = append(missing, fmt.Sprintf("%s (%d %v)", id, code, err))
				} else {
					states[cb.State]++
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return missing, states
}

// readyz reads /readyz: overall status and whether the named component is ready.
func readyz(ctx context.Context, url, component string) (ok bool, compReady bool, compErr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, false, "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, false, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var body struct {
		Components []struct {
			Name  string `json:"name"`
			Ready bool   `json:"ready"`
			Error string `json:"error"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return false, false, "", fmt.Errorf("readyz body %q: %w", b, err)
	}
	for _, c := range body.Components {
		if c.Name == component {
			return res.StatusCode == http.StatusOK, c.Ready, c.Error, nil
		}
	}
	return res.StatusCode == http.StatusOK, false, "", fmt.Errorf("readyz lists no %s: %s", component, b)
}

// streamTail reads NewCallbackStream as it grows and counts action=start
// entries per callback id, across reconnects.
type streamTail struct {
	mu      sync.Mutex
	starts  map[string]int
	entries int
	last    string // the last entry read
	// resume makes the next tailStream go on after last: the Redis outlived
	// the process (an embedded one is new, and read from the beginning).
	resume bool
	cancel context.CancelFunc
	done   chan struct{}
}

// tailStream follows the stream of the Redis at redisURL from its beginning
// until stop. Connection errors (the Redis went away) are retried.
func tailStream(redisURL string, into *streamTail) (*streamTail, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis url %q: %w", redisURL, err)
	}
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	if into == nil {
		into = &streamTail{starts: map[string]int{}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	into.cancel, into.done = cancel, make(chan struct{})
	go func() {
		defer close(into.done)
		defer rdb.Close()
		last := "0"
		if into.resume {
			last = into.last
		}
		for ctx.Err() == nil {
			res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{"NewCallbackStream", last}, Count: 1000, Block: 200 * time.Millisecond}).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond): // the Redis is away: retry
				}
				continue
			}
			into.mu.Lock()
			for _, s := range res {
				for _, m := range s.Messages {
					last, into.last = m.ID, m.ID
					into.entries++
					// One field, callback: a JSON object (README, "NewCallbackStream").
					var cb struct{ Action, ID string }
					raw, _ := m.Values["callback"].(string)
					if json.Unmarshal([]byte(raw), &cb) == nil && cb.Action == "start" {
						into.starts[cb.ID]++
					}
				}
			}
			into.mu.Unlock()
		}
	}()
	return into, nil
}

// stop ends the tail and waits for it.
func (s *streamTail) stop() {
	s.cancel()
	<-s.done
}

// snapshot copies the per-id start counts.
func (s *streamTail) snapshot() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.starts))
	for k, v := range s.starts {
		out[k] = v
	}
	return out, s.entries
}

// freePort returns a loopback TCP port free right now, below the ephemeral
// range: redis-server is restarted on it while cxlab connects out.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1", freeport.TCP, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// phone returns the n-th distinct demo phone number (10,000 per area code),
// so the per-number limit of active callbacks never refuses a create.
func phone(n int64) string {
	areas := []string{"202", "303", "415", "512", "617", "718", "801", "907"}
	return fmt.Sprintf("+1%s555%04d", areas[(n/10000)%int64(len(areas))], n%10000)
}

// firstLine returns the first line of s (for compact error reports).
func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	if sc.Scan() {
		return sc.Text()
	}
	return ""
}
