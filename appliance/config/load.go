package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Bind defines the command-line flags of `cxlab up` on fs, writing into c.
// Every flag can also be given as an environment variable: --redis-url is
// CXLAB_REDIS_URL.
func Bind(fs *flag.FlagSet, c *Config) {
	fs.String("config", "", "YAML config file (unknown keys are errors)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for persistent state")
	fs.BoolVar(&c.Ephemeral, "ephemeral", c.Ephemeral, "keep all state in a temp dir removed on exit")
	fs.StringVar(&c.EndpointsFile, "endpoints-file", c.EndpointsFile, "write a JSON document of endpoints and demo credentials here once ready")
	fs.StringVar(&c.Seed, "seed", c.Seed, "YAML tenant seed file applied on start (idempotent)")
	fs.Var((*listValue)(&c.Components), "components", "comma-separated components to run (all, "+strings.Join(knownComponents, ", ")+")")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound on a graceful stop")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "Go garbage collector target percentage (the GOGC variable wins)")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "level of the per-component log files")
	fs.StringVar(&c.Log.ConsoleLevel, "console-log-level", c.Log.ConsoleLevel, "level of log lines echoed to stderr")
	fs.StringVar(&c.HTTP.Host, "http-host", c.HTTP.Host, "HTTP bind address (non-loopback requires TLS)")
	fs.IntVar(&c.HTTP.Port, "http-port", c.HTTP.Port, "HTTP port for console, APIs and emulators (0 = free port)")
	fs.StringVar(&c.HTTP.TLS, "tls", c.HTTP.TLS, "auto, on or off")
	fs.Var((*listValue)(&c.HTTP.CORSOrigins), "cors-origins", "comma-separated web origins allowed to call the APIs from a browser (this machine's always are)")
	fs.StringVar(&c.Redis.URL, "redis-url", c.Redis.URL, "external Redis URL instead of the embedded one")
	fs.IntVar(&c.Redis.Port, "redis-port", c.Redis.Port, "embedded Redis port (0 = free port)")
	fs.StringVar(&c.Postgres.URL, "postgres-url", c.Postgres.URL, "external PostgreSQL URL instead of the embedded one")
	fs.IntVar(&c.Postgres.Port, "postgres-port", c.Postgres.Port, "embedded PostgreSQL port (0 = free port)")
	fs.StringVar(&c.Postgres.Binaries, "postgres-binaries", c.Postgres.Binaries, "directory with PostgreSQL bin/ (initdb, pg_ctl)")
	fs.StringVar(&c.Postgres.RunAsUser, "postgres-user", c.Postgres.RunAsUser, "unprivileged user running PostgreSQL when cxlab runs as root")
	fs.StringVar(&c.SIP.Host, "sip-host", c.SIP.Host, "SIP bind address")
	fs.IntVar(&c.SIP.Port, "sip-port", c.SIP.Port, "SIP port, UDP and TCP (0 = free port)")
	fs.StringVar(&c.TURN.Host, "turn-host", c.TURN.Host, "TURN bind address")
	fs.StringVar(&c.TURN.RelayIP, "turn-relay-ip", c.TURN.RelayIP, "address relayed sockets bind to and clients are told (required with --turn-host 0.0.0.0)")
	fs.IntVar(&c.TURN.Port, "turn-port", c.TURN.Port, "TURN port, UDP and TCP (0 = free port)")
	fs.IntVar(&c.TURN.UserQuota, "turn-user-quota", c.TURN.UserQuota, "concurrent TURN allocations per user")
	fs.StringVar(&c.TURN.Secret, "turn-secret", c.TURN.Secret, "TURN REST shared secret (empty = generated and kept)")
	fs.IntVar(&c.Gateway.MediaPort, "media-port", c.Gateway.MediaPort, "WebRTC media UDP port shared by all sessions (0 = free port)")
	fs.IntVar(&c.GES.TenantCreatesPerSec, "ges-tenant-creates-per-sec", c.GES.TenantCreatesPerSec, "callback creations per tenant and second; more get 429")
	fs.IntVar(&c.GES.TenantCreateBurst, "ges-tenant-create-burst", c.GES.TenantCreateBurst, "callback creations a tenant may make at once")
	fs.IntVar(&c.GES.MaxActivePerNumber, "ges-max-active-per-number", c.GES.MaxActivePerNumber, "callbacks not yet COMPLETED per phone number; more get 429")
	fs.DurationVar(&c.GES.StrandedAfter, "ges-stranded-after", c.GES.StrandedAfter, "how long a callback a dead process left half handed over to ORS waits before another hands it over")
	fs.BoolVar(&c.Gateway.EnableTranscoding, "enable-transcoding", c.Gateway.EnableTranscoding, "allow Opus on the browser leg")
}

// EnvName is the environment variable standing for a flag.
func EnvName(flagName string) string {
	return "CXLAB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load layers defaults, the YAML file, CXLAB_* environment variables and the
// flags in args, then validates. It returns flag.ErrHelp for -h, after
// writing the flags of `cxlab up` to usage.
func Load(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	return LoadCommand("cxlab up", args, getenv, usage)
}

// LoadCommand is Load for the command named command (cxlab up, cxlab config
// print, cxlab doctor), which -h names. A bad flag is a one-line error: the
// full list is what -h is for.
func LoadCommand(command string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	probe := Default()
	fs1 := flag.NewFlagSet(command, flag.ContinueOnError)
	fs1.SetOutput(io.Discard)
	Bind(fs1, &probe)
	if err := fs1.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = fmt.Fprintf(usage, "Usage: %s [flags]\n\nEvery flag is also an environment variable (--redis-url is CXLAB_REDIS_URL); the --config\nYAML file takes the same settings under the keys `cxlab config print` shows (redis.url).\n\n", command)
			fs1.SetOutput(usage)
			fs1.PrintDefaults()
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w (%s -h lists the flags)", ErrInvalid, err, command)
	}
	if fs1.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrInvalid, fs1.Arg(0))
	}
	given := map[string]string{}
	fs1.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })

	cfg := Default()
	path := given["config"]
	if path == "" {
		path = getenv(EnvName("config"))
	}
	if path != "" {
		if err := loadYAML(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	fs2 := flag.NewFlagSet("cxlab up", flag.ContinueOnError)
	fs2.SetOutput(io.Discard)
	Bind(fs2, &cfg)
	var err error
	fs2.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" && f.Name != "config" && err == nil {
			if e := fs2.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%w: %s=%q: %w", ErrInvalid, EnvName(f.Name), v, e)
			}
		}
	})
	if err != nil {
		return Config{}, err
	}
	for name, v := range given {
		if name != "config" {
			if e := fs2.Set(name, v); e != nil {
				return Config{}, fmt.Errorf("%w: --%s: %w", ErrInvalid, name, e)
			}
		}
	}
	return cfg, cfg.Validate()
}

func loadYAML(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: config (--config): can't read %q: %w", ErrInvalid, path, errors.Unwrap(err))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err = dec.Decode(cfg)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		// A second document (after ---) would be passed over without a word.
		var more yaml.Node
		if dec.Decode(&more) == nil {
			return fmt.Errorf("%w: config file %s: holds more than one YAML document (---); cxlab reads one", ErrInvalid, path)
		}
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%w: config file %s: %w", ErrInvalid, path, err)
	}
	// yaml.v3 names the Go type an unknown key was not found in, and only
	// the line of a value of the wrong type; a user knows the file's keys,
	// which `cxlab config print` lists.
	keys := keysByLine(b)
	msgs := make([]string, len(te.Errors))
	hint := ""
	for i, m := range te.Errors {
		msgs[i] = unknownField.ReplaceAllString(m, "unknown key $1")
		if msgs[i] != m {
			hint = " (`cxlab config print` shows every key)"
		}
		if sm := lineOf.FindStringSubmatch(m); sm != nil && msgs[i] == m {
			if k, ok := keys[sm[1]]; ok {
				msgs[i] = k + ": " + lineOf.ReplaceAllString(m, "line $1: ")
			}
		}
	}
	return fmt.Errorf("%w: config file %s: %s%s", ErrInvalid, path, strings.Join(msgs, "; "), hint)
}

// unknownField matches yaml.v3's message for a key with no matching field.
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// lineOf matches the line number yaml.v3 puts first in a type error.
var lineOf = regexp.MustCompile(`^line (\d+): `)

// keysByLine maps the line of each scalar value in a YAML document to its
// dotted key (http.port), so that a type error can name the key.
func keysByLine(b []byte) map[string]string {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return nil
	}
	out := map[string]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if prefix != "" {
					key = prefix + "." + key
				}
				walk(n.Content[i+1], key)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.ScalarNode:
			out[fmt.Sprint(n.Line)] = prefix
		}
	}
	walk(&doc, "")
	return out
}

// YAML renders the configuration as `cxlab config print` shows it.
// Secrets and URL passwords are redacted.
func (c Config) YAML() ([]byte, error) {
	if c.TURN.Secret != "" {
		c.TURN.Secret = redacted
	}
	if c.Redis.URL != "" {
		c.Redis.URL = RedactURL(c.Redis.URL)
	}
	if c.Postgres.URL != "" {
		c.Postgres.URL = RedactURL(c.Postgres.URL)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// redacted stands for a secret in `cxlab config print`.
const redacted = "<redacted>"

type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

func (l *listValue) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return errors.New("empty list")
	}
	*l = out
	return nil
}
