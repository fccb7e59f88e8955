// Package postgres runs the appliance's PostgreSQL: an embedded server kept
// alive by a supervisor child process (so no postgres outlives the appliance,
// even after kill -9, and so it works when the appliance runs as root), or an
// external server reached by DSN. It also applies goose migrations per schema.
//
// Crash handling of the embedded server: the supervisor watches the postmaster
// and, when it dies unexpectedly (kill -9, OOM killer), waits for its orphaned
// backends to detach from shared memory and starts it again on the same data
// dir and port; PostgreSQL's crash recovery replays the WAL, so nothing
// committed is lost. Meanwhile Embedded.Ready fails, so /readyz reports
// postgres not ready until the restart is done. Restarts are bounded
// (Config.MaxRestarts within Config.RestartWindow, default 5 in 5 minutes):
// past that the supervisor gives up and exits with an error, Ready keeps
// failing with that error, and Embedded.Failed delivers it once so that the
// appliance can log it and exit rather than run without its database.
package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
)

// Flag and environment names quoted in error messages, so that a user reading
// an error knows exactly which setting to change.
const (
	FlagDataDir  = "--data-dir"
	FlagPort     = "--postgres-port"
	FlagBinaries = "--postgres-binaries"
	FlagURL      = "--postgres-url"
	EnvBinaries  = "CXLAB_POSTGRES_BINARIES"
)

// DefaultRepositoryURL is the Maven repository embedded-postgres downloads its
// binaries from (the library's own default).
const DefaultRepositoryURL = "https://repo1.maven.org/maven2"

// DownloadOff, as Config.RepositoryURL, disables the binaries download.
const DownloadOff = "off"

// Config configures the embedded PostgreSQL server.
type Config struct {
	// DataDir is the server's own directory (a subdirectory of the appliance
	// data dir); it holds pgdata/, run/ (sockets), tmp/ and downloaded binaries.
	// Required.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one. Default 0.
	Port int
	// BinariesDir is a directory holding bin/pg_ctl, bin/initdb and bin/postgres
	// (flag --postgres-binaries, env CXLAB_POSTGRES_BINARIES). Default "": use the
	// download cache, then PostgreSQL installed on the machine.
	BinariesDir string
	// CacheDir holds downloaded binary archives, shared by every data dir.
	// Default: the library's cache, ~/.embedded-postgres-go.
	CacheDir string
	// RepositoryURL is the Maven repository to download binaries from; "off"
	// disables the download. Default DefaultRepositoryURL.
	RepositoryURL string
	// DownloadVersion is the PostgreSQL version to download. Default "18.3.0".
	DownloadVersion string
	// DownloadTimeout bounds the whole download, so that a hanging network
	// cannot stall start. Default 60s.
	DownloadTimeout time.Duration
	// User is the database superuser created at initdb. Default "cxlab".
	User string
	// Password is User's password, fixed when the data dir is initialised.
	// Default "cxlab".
	Password string
	// Database is the database created for the appliance. Default "cxlab".
	Database string
	// RunAsUser is the account that owns the data dir and runs postgres when the
	// appliance runs as root (PostgreSQL refuses root). Default "": the
	// "postgres" account when it exists (the distribution's dedicated owner of
	// cluster files), else "nobody".
	RunAsUser string
	// StartTimeout bounds start, initdb included (not the download). Default 30s.
	StartTimeout time.Duration
	// MaxRestarts is how many times the supervisor restarts a postmaster that
	// died unexpectedly within RestartWindow before giving up; -1 disables
	// restarts. Default 5.
	MaxRestarts int
	// RestartWindow is the sliding window MaxRestarts counts in. Default 5m.
	RestartWindow time.Duration

	// systemRoots are scanned for <root>/<version>/bin/pg_ctl; tests replace
	// them. Default /usr/lib/postgresql.
	systemRoots []string
}

// withDefaults returns c with every zero field set to its documented default.
func (c Config) withDefaults() Config {
	if c.BinariesDir == "" {
		c.BinariesDir = os.Getenv(EnvBinaries)
	}
	if c.CacheDir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			c.CacheDir = filepath.Join(home, ".embedded-postgres-go")
		} else {
			c.CacheDir = filepath.Join(os.TempDir(), "embedded-postgres-go")
		}
	}
	if c.RepositoryURL == "" {
		c.RepositoryURL = DefaultRepositoryURL
	}
	if c.DownloadVersion == "" {
		c.DownloadVersion = string(embeddedpostgres.V18)
	}
	if c.DownloadTimeout == 0 {
		c.DownloadTimeout = 60 * time.Second
	}
	if c.User == "" {
		c.User = "cxlab"
	}
	if c.Password == "" {
		c.Password = "cxlab"
	}
	if c.Database == "" {
		c.Database = "cxlab"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.MaxRestarts == 0 {
		c.MaxRestarts = 5
	}
	if c.RestartWindow == 0 {
		c.RestartWindow = 5 * time.Minute
	}
	if c.systemRoots == nil {
		c.systemRoots = []string{"/usr/lib/postgresql"}
	}
	return c
}

// validate reports the first invalid setting, named as the user sets it.
func (c Config) validate() error {
	if c.DataDir == "" {
		return errors.New("postgres: data dir is required (" + FlagDataDir + ")")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("postgres: %s %d is out of range", FlagPort, c.Port)
	}
	for name, v := range map[string]string{"user": c.User, "database": c.Database} {
		if !isIdent(v) {
			return fmt.Errorf("postgres: %s %q must match [a-z_][a-z0-9_]*", name, v)
		}
	}
	return nil
}

// isIdent reports whether s is a plain lower-case SQL identifier, which needs
// no quoting anywhere (DSNs, CREATE DATABASE, search_path).
func isIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// layout names the directories under Config.DataDir.
type layout struct {
	root    string // Config.DataDir, absolute
	pgdata  string // the PostgreSQL cluster
	run     string // embedded-postgres' runtime dir: it wipes it at every start
	sock    string // unix sockets: run, or a short dir if run's path is too long
	tmp     string // TMPDIR of the supervisor (embedded-postgres' temp logs)
	binRoot string // extracted downloaded binaries, one dir per version
}

func newLayout(root string) layout {
	run := filepath.Join(root, "run")
	return layout{
		root:    root,
		pgdata:  filepath.Join(root, "pgdata"),
		run:     run,
		sock:    socketDir(run, root),
		tmp:     filepath.Join(root, "tmp"),
		binRoot: filepath.Join(root, "binaries"),
	}
}

// maxSocketPath is the longest unix socket path Linux takes (sun_path holds
// 108 bytes with the terminating NUL); PostgreSQL refuses to start when it
// cannot create its socket, and names this limit in its log.
const maxSocketPath = 107

// socketDir is where PostgreSQL puts its unix socket: run, unless the
// socket's path there would be too long (a deep data dir, as CI workspaces
// and test temp dirs often are). Then it is a short directory in the system's
// temp dir named after root, so that every start of the same data dir finds
// the same one (and the socket locks a killed run left there).
func socketDir(run, root string) string {
	const socketName = "/.s.PGSQL.65535"
	if len(run)+len(socketName) <= maxSocketPath {
		return run
	}
	sum := sha256.Sum256([]byte(root))
	name := "cxlab-pg-" + hex.EncodeToString(sum[:6])
	if dir := filepath.Join(os.TempDir(), name); len(dir)+len(socketName) <= maxSocketPath {
		return dir
	}
	return filepath.Join("/tmp", name)
}

// ensureSocketDir creates the short socket directory, readable by this
// process's user alone. One that already exists must be a directory (not a
// link) owned by this user with no access for others: it is in a directory
// every user can write to, and whoever owns it could stand in for the server.
func ensureSocketDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("postgres socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("postgres socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("postgres socket directory %s exists but is not a private directory of uid %d; "+
			"remove it (it is used because the data dir's path is too long for a unix socket in it)", dir, os.Geteuid())
	}
	return nil
}
