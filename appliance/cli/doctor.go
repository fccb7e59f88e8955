package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/cxlab/cxlab/appliance/httpd"
	"github.com/cxlab/cxlab/appliance/internal/uring"
	"github.com/cxlab/cxlab/appliance/store/postgres"
	"github.com/cxlab/cxlab/appliance/turn"
)

// doctor checks this machine for what `cxlab up` and the test suite need and
// says how to fix each missing piece. It exits 1 when something required is missing.
func doctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := load("cxlab doctor", args, stderr)
	if !ok {
		return code
	}
	failed := false
	check := func(required bool, name string, err error, fix string) {
		switch {
		case err == nil:
			_, _ = fmt.Fprintf(stdout, "  ok    %s\n", name)
		case required:
			failed = true
			_, _ = fmt.Fprintf(stdout, "  FAIL  %s: %v\n        fix: %s\n", name, err, fix)
		default:
			_, _ = fmt.Fprintf(stdout, "  warn  %s: %v\n        fix: %s\n", name, err, fix)
		}
	}
	_, _ = fmt.Fprintln(stdout, "cxlab doctor")
	_, _ = fmt.Fprintln(stdout, "\nPostgreSQL:")
	if cfg.Postgres.URL != "" {
		check(true, "external PostgreSQL configured ("+redact(cfg.Postgres.URL)+")", nil, "")
	} else {
		d, err := postgres.Diagnose(ctx, postgres.Config{BinariesDir: cfg.Postgres.Binaries, RunAsUser: cfg.Postgres.RunAsUser})
		name := "binaries"
		if err == nil {
			name = fmt.Sprintf("binaries: PostgreSQL %s in %s (%s)", d.Version, d.Dir, d.Source)
			if d.RunAs != "" {
				name += fmt.Sprintf("; running as root, postgres will run as user %q", d.RunAs)
			}
		}
		check(true, name, err, "--postgres-binaries DIR, network access for the download, or apt-get install postgresql")
		if err == nil && d.RunAs != "" && !cfg.Ephemeral {
			check(true, fmt.Sprintf("user %s can reach the data dir %s", d.RunAs, cfg.DataDir), reachableBy(d.RunAs, cfg.DataDir),
				"choose a --data-dir that user can traverse (not under /root), or chmod o+x its parent directories")
		}
	}

	_, _ = fmt.Fprintln(stdout, "\nPorts (127.0.0.1 unless configured):")
	type port struct {
		setting, host string
		port          int
		udp           bool
	}
	ports := []port{
		{"--http-port", cfg.HTTP.Host, cfg.HTTP.Port, false},
		{"--sip-port", cfg.SIP.Host, cfg.SIP.Port, false},
		{"--sip-port (udp)", cfg.SIP.Host, cfg.SIP.Port, true},
		{"--turn-port", cfg.TURN.Host, cfg.TURN.Port, false},
		{"--turn-port (udp)", cfg.TURN.Host, cfg.TURN.Port, true},
		{"--media-port (udp)", "127.0.0.1", cfg.Gateway.MediaPort, true},
	}
	if cfg.Redis.URL == "" {
		ports = append(ports, port{"--redis-port", cfg.Redis.Host, cfg.Redis.Port, false})
	}
	if cfg.Postgres.URL == "" {
		ports = append(ports, port{"--postgres-port", "127.0.0.1", cfg.Postgres.Port, false})
	}
	for _, p := range ports {
		if p.port == 0 {
			continue
		}
		check(true, fmt.Sprintf("%s %d free", p.setting, p.port), portFree(p.host, p.port, p.udp, p.setting),
			fmt.Sprintf("stop what uses it, or choose another port with %s (0 picks a free one)", p.setting))
	}

	_, _ = fmt.Fprintln(stdout, "\nData dir:")
	if cfg.Ephemeral {
		check(true, "ephemeral (temp dir under "+os.TempDir()+")", writable(os.TempDir()), "make "+os.TempDir()+" writable")
	} else {
		check(true, cfg.DataDir+" writable", writable(cfg.DataDir), "choose another --data-dir")
	}

	_, _ = fmt.Fprintln(stdout, "\nTools the test suite uses (optional for `cxlab up`):")
	for _, t := range []struct{ bin, pkg string }{
		{"redis-server", "redis-server"}, {"sipp", "sip-tester"}, {"turnutils_uclient", "coturn"},
		{"turnserver", "coturn"}, {"chromium", "chromium"},
	} {
		_, err := exec.LookPath(t.bin)
		check(false, t.bin, err, "apt-get install "+t.pkg+"  (or: make deps)")
	}
	_, _ = fmt.Fprintln(stdout, "\nLoad tests (optional):")
	check(false, "io_uring (TURN channel data toward peers and the gateway's RTP toward SIP go in batches)", ioURing(),
		"allow io_uring (sysctl kernel.io_uring_disabled=0; containers: a seccomp profile that permits it); without it each datagram is sent on its own")
	check(false, fmt.Sprintf("UDP receive buffers up to %d MB (net.core.rmem_max)", turn.ListenerReceiveBuffer>>20), rmemMax(),
		fmt.Sprintf("sysctl -w net.core.rmem_max=%d", turn.ListenerReceiveBuffer))
	if failed {
		_, _ = fmt.Fprintln(stdout, "\nSome required pieces are missing; fix them and run `cxlab doctor` again.")
		return exitFailure
	}
	_, _ = fmt.Fprintln(stdout, "\nAll required pieces are here: `cxlab up` should start.")
	return exitOK
}

func portFree(host string, port int, udp bool, setting string) error {
	if udp {
		c, err := listenUDP(host, port)
		if err != nil {
			return httpd.ListenError(setting, port, err)
		}
		return c.Close()
	}
	ln, err := httpd.Listen(host, port, setting)
	if err != nil {
		return err
	}
	return ln.Close()
}

func writable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			f, err := os.CreateTemp(d, ".cxlab-doctor-*")
			if err != nil {
				return fmt.Errorf("can't write in %s: %w", d, err)
			}
			_ = f.Close()
			return os.Remove(f.Name())
		}
		if d == filepath.Dir(d) {
			return fmt.Errorf("no existing parent of %s", dir)
		}
	}
}

// reachableBy reports whether the user named name may traverse every
// existing directory on the way to dir (the directories cxlab creates are
// made for it), by their permission bits: PostgreSQL runs as that user when
// cxlab runs as root, and a data dir under /root (0700) is out of its reach.
func reachableBy(name, dir string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gids := map[uint64]bool{}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				gids[n] = true
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var parents []string
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		parents = append(parents, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for _, d := range parents {
		st, err := os.Stat(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue // made by cxlab, traversable
		}
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		mode := st.Mode().Perm()
		switch {
		case uint64(sys.Uid) == uid:
			if mode&0o100 == 0 {
				return fmt.Errorf("%s (%s) is not searchable by its owner %s", d, mode, name)
			}
		case gids[uint64(sys.Gid)]:
			if mode&0o010 == 0 {
				return fmt.Errorf("%s (%s) is not searchable by group members such as %s", d, mode, name)
			}
		case mode&0o001 == 0:
			return fmt.Errorf("%s (%s) is not searchable by %s", d, mode, name)
		}
	}
	return nil
}

// ioURing sets up and closes a small io_uring.
func ioURing() error {
	r, err := uring.New(2)
	if err != nil {
		return err
	}
	return r.Close()
}

// rmemMax reports a cap below what the TURN listener asks for (Linux only; elsewhere nil).
func rmemMax() error {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("net.core.rmem_max: %w", err)
	}
	if n < turn.ListenerReceiveBuffer {
		return fmt.Errorf("capped at %d bytes: under load the TURN listener drops bursts", n)
	}
	return nil
}
