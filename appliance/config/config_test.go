package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLayeringDefaultsYAMLEnvFlags(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "cxlab.yaml")
	if err := os.WriteFile(yml, []byte("http:\n  port: 9000\nredis:\n  port: 9001\nlog:\n  level: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load([]string{"--config", yml, "--redis-port", "9101"}, env(map[string]string{
		"CXLAB_HTTP_PORT":  "9200", // env beats YAML
		"CXLAB_REDIS_PORT": "9201", // flag beats env
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Port != 9200 || cfg.Redis.Port != 9101 || cfg.Log.Level != "debug" || cfg.SIP.Port != Default().SIP.Port {
		t.Fatalf("layering wrong: http %d redis %d log %s sip %d", cfg.HTTP.Port, cfg.Redis.Port, cfg.Log.Level, cfg.SIP.Port)
	}
}

func TestUnknownYAMLKeyIsAnErrorNamingIt(t *testing.T) {
	yml := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(yml, []byte("http:\n  prot: 9000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{"--config", yml}, env(nil), io.Discard)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 2: unknown key prot") || strings.Contains(err.Error(), "config.HTTP") {
		t.Fatalf("want invalid config naming the key 'prot' and its line (not a Go type), got %v", err)
	}
}

// A value of the wrong type in the YAML file names its key, not only a line.
func TestYAMLTypeErrorNamesTheKey(t *testing.T) {
	yml := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(yml, []byte("http:\n  port: abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{"--config", yml}, env(nil), io.Discard)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "http.port: line 2: cannot unmarshal") {
		t.Fatalf("want invalid config naming http.port, got %v", err)
	}
}

// A bad flag is a one-line error; the flag list is printed only for -h.
func TestBadFlagIsOneLine(t *testing.T) {
	var usage strings.Builder
	_, err := LoadCommand("cxlab up", []string{"--http-port", "abc"}, env(nil), &usage)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cxlab up -h") {
		t.Errorf("bad flag: %v, want an invalid-config error pointing at -h", err)
	}
	if usage.Len() != 0 {
		t.Errorf("a bad flag printed %d bytes of usage", usage.Len())
	}
	_, err = LoadCommand("cxlab doctor", []string{"-h"}, env(nil), &usage)
	if !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(usage.String(), "Usage: cxlab doctor") || !strings.Contains(usage.String(), "-http-port") {
		t.Errorf("-h: %v, usage %q", err, usage.String())
	}
}

// `cxlab config print` output is a config file, with secrets as placeholders:
// read back, a placeholder must not become the secret.
func TestConfigPrintPlaceholdersAreRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--turn-secret", "abc"},
		{"--redis-url", "redis://u:pw@127.0.0.1:6379/0"},
		{"--postgres-url", "postgres://cxlab:pw@127.0.0.1:5432/cxlab"},
	} {
		cfg, err := Load(args, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cfg.YAML()
		if err != nil {
			t.Fatal(err)
		}
		yml := filepath.Join(t.TempDir(), "printed.yaml")
		if err := os.WriteFile(yml, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = Load([]string{"--config", yml}, env(nil), io.Discard)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "placeholder") {
			t.Errorf("printed config of %v read back: %v, want the placeholder refused", args, err)
		}
	}
}

func TestBadSettingsAreNamed(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--redis-url", "http://x"}, "redis.url (--redis-url)"},
		{[]string{"--postgres-url", "postgres://"}, "postgres.url (--postgres-url)"},
		{[]string{"--http-port", "70000"}, "http.port (--http-port)"},
		{[]string{"--http-host", "0.0.0.0", "--tls", "off"}, "http.tls (--tls)"},
		{[]string{"--tls", "maybe"}, "http.tls (--tls)"},
		{[]string{"--components", "ges,bogus"}, "components (--components)"},
		{[]string{"--components", "gateway,turn"}, "gateway needs gauth, gws and voice in the same process"},
		{[]string{"--components", "gauth,gws,ges,turn,gateway"}, "gateway needs voice"},
		{[]string{"--log-level", "loud"}, "log.level"},
		{[]string{"--postgres-binaries", "/nonexistent/dir"}, "postgres.binaries (--postgres-binaries)"},
		{[]string{"--postgres-binaries", os.TempDir()}, "holds no bin/pg_ctl"},
		{[]string{"--postgres-user", "no-such-user-here"}, "postgres.run_as_user (--postgres-user)"},
		{[]string{"--turn-host", "0.0.0.0"}, "turn.relay_ip (--turn-relay-ip): required with --turn-host 0.0.0.0"},
		{[]string{"--turn-relay-ip", "0.0.0.0"}, "turn.relay_ip (--turn-relay-ip)"},
		{[]string{"--redis-url", "redis://127.0.0.1:99999/0"}, "port 99999 out of range"},
		{[]string{"--postgres-url", "postgres://u:secret@127.0.0.1:99x/db"}, `invalid port ":99x" after host`},
		{[]string{"--http-port", "x"}, "http-port"},
		{[]string{"--data-dir", ""}, "data_dir (--data-dir)"},
	}
	for _, c := range cases {
		_, err := Load(c.args, env(nil), io.Discard)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%v) = %v, want an invalid-config error naming %q", c.args, err, c.want)
		}
	}
	for _, subset := range []string{"gauth,gws,ges", "turn", "gauth,gws,ges,voice,gateway"} {
		if _, err := Load([]string{"--components", subset}, env(nil), io.Discard); err != nil {
			t.Errorf("--components %s refused: %v", subset, err)
		}
	}
	if _, err := Load([]string{"--postgres-url", "postgres://u:secret@127.0.0.1:99x/db"}, env(nil), io.Discard); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a bad postgres URL's error shows its password: %v", err)
	}
	for name, content := range map[string]string{
		"two documents":        "http:\n  port: 9000\n---\nhttp:\n  port: 9001\n",
		"no rotated log files": "log:\n  max_files: 0\n",
	} {
		f := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load([]string{"--config", f}, env(nil), io.Discard); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want an invalid-config error", name, err)
		}
	}
	// A TURN peer policy the server could not parse fails here, before
	// anything starts, naming its key.
	yml := filepath.Join(t.TempDir(), "peers.yaml")
	if err := os.WriteFile(yml, []byte("turn:\n  allowed_peers: [local, bogus]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]string{"--config", yml}, env(nil), io.Discard); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "turn.allowed_peers") || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("a bad turn.allowed_peers entry: %v", err)
	}
	for _, good := range []string{"[any]", "[local, 10.0.0.0/8, 192.0.2.7, '2001:db8::/32']"} {
		if err := os.WriteFile(yml, []byte("turn:\n  allowed_peers: "+good+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load([]string{"--config", yml}, env(nil), io.Discard); err != nil {
			t.Errorf("turn.allowed_peers %s refused: %v", good, err)
		}
	}
	_, err := Load(nil, env(map[string]string{"CXLAB_HTTP_PORT": "x"}), io.Discard)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `CXLAB_HTTP_PORT="x"`) {
		t.Errorf("an env value that does not parse is not named with its value: %v", err)
	}
	_, err = Load(nil, env(map[string]string{"CXLAB_SIP_PORT": "-1"}), io.Discard)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "sip.port") {
		t.Errorf("bad env value: %v", err)
	}
}

func TestPlainHTTPAllowedOnlyOnLoopback(t *testing.T) {
	if _, err := Load([]string{"--http-host", "127.0.0.1", "--tls", "off"}, env(nil), io.Discard); err != nil {
		t.Errorf("loopback plain HTTP refused: %v", err)
	}
	if _, err := Load([]string{"--http-host", "0.0.0.0"}, env(nil), io.Discard); err != nil {
		t.Errorf("non-loopback with tls=auto refused: %v", err)
	}
}

func TestConfigPrintGolden(t *testing.T) {
	cfg := Default()
	cfg.DataDir = "/var/lib/cxlab" // the default depends on the user
	cfg.TURN.Secret = "s3cret"
	cfg.Redis.URL = "redis://:hunter2@db:6379/0"
	b, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "s3cret") {
		t.Fatalf("config print leaks a secret:\n%s", b)
	}
	golden := filepath.Join("testdata", "config-print.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != string(b) {
		t.Fatalf("config print differs from %s (run go test -update if intended):\n%s", golden, b)
	}
	// Without secrets, the printed document loads back: it is a valid config
	// file (with them, their placeholders are refused: see
	// TestConfigPrintPlaceholdersAreRefused).
	plain := Default()
	plain.DataDir = "/var/lib/cxlab"
	b, err = plain.YAML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]string{"--config", path}, env(nil), io.Discard); err != nil {
		t.Fatalf("printed config does not load back: %v", err)
	}
}

func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte("http:\n  port: 1\n"))
	f.Add([]byte("components: [ges, voice]\nturn: {min_relay_port: 5, max_relay_port: 4}\n"))
	f.Add([]byte("shutdown_timeout: -3s\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load([]string{"--config", path}, env(nil), io.Discard)
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Load accepted a config Validate refuses: %v", verr)
			}
		} else if !errors.Is(err, ErrInvalid) {
			t.Fatalf("config error not marked invalid: %v", err)
		}
	})
}
