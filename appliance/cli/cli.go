// Package cli is the cxlab command line: up, config print, version, doctor,
// agent. main() only builds the signal context and calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/cxlab/cxlab/appliance"
	"github.com/cxlab/cxlab/appliance/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `CX Lab: a Genesys-style contact-center stack (WebRTC gateway, TURN, Engagement/callback
service, GAuth/GWS/Voice emulators, Redis, PostgreSQL) in one binary.

Usage:
  cxlab up [flags]            start the appliance and stay up until a signal
  cxlab config print [flags]  print the effective configuration
  cxlab doctor [flags]        explain what is missing on this machine and how to fix it
  cxlab agent [flags]         a headless agent: sign in, go Ready, answer, play and analyse audio
  cxlab version               print the version

Run "cxlab up -h" for the flags; every flag is also an environment variable
(--redis-url is CXLAB_REDIS_URL), and the --config YAML file takes the same
settings under the keys "cxlab config print" shows (redis.url).
`

// Main runs the command in args and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "up":
		return up(ctx, args[1:], stdout, stderr)
	case "config":
		const configUsage = "usage: cxlab config print [flags]: print the effective configuration (defaults, --config file, CXLAB_* variables, flags) as YAML, secrets redacted; cxlab config print --help lists the flags"
		if len(args) == 2 && isHelp(args[1]) {
			_, _ = fmt.Fprintln(stdout, configUsage)
			return exitOK
		}
		if len(args) < 2 || args[1] != "print" {
			_, _ = fmt.Fprintln(stderr, configUsage)
			return exitUsage
		}
		return configPrint(args[2:], stdout, stderr)
	case "doctor":
		return doctor(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		if len(args) == 2 && isHelp(args[1]) {
			_, _ = fmt.Fprintln(stdout, "usage: cxlab version: print the version, the Go version and the platform")
			return exitOK
		}
		if len(args) > 1 {
			_, _ = fmt.Fprintf(stderr, "cxlab: version takes no arguments, got %q\n", args[1])
			return exitUsage
		}
		_, _ = fmt.Fprintf(stdout, "cxlab %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "--help":
		_, _ = fmt.Fprint(stdout, usage)
		return exitOK
	case "agent":
		return runAgent(ctx, args[1:], stdout, stderr)
	default:
		_, _ = fmt.Fprintf(stderr, "cxlab: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// ForceExit undoes what must not outlive the process before it exits
// without stopping: the endpoints file of a running appliance, which tells
// scripts it is up. PostgreSQL's processes end by themselves when cxlab's do.
func ForceExit() { appliance.RemoveEndpointsFile() }

func up(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := load("cxlab up", args, stderr)
	if !ok {
		return code
	}
	if err := appliance.Run(ctx, cfg, stdout, stderr); err != nil {
		return reportErr(stderr, err)
	}
	return exitOK
}

func configPrint(args []string, stdout, stderr io.Writer) int {
	cfg, code, ok := load("cxlab config print", args, stderr)
	if !ok {
		return code
	}
	b, err := cfg.YAML()
	if err != nil {
		return reportErr(stderr, err)
	}
	_, _ = stdout.Write(b)
	return exitOK
}

func load(command string, args []string, stderr io.Writer) (config.Config, int, bool) {
	cfg, err := config.LoadCommand(command, args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cfg, exitOK, false
	}
	for _, w := range config.UnknownEnv(os.Environ()) {
		_, _ = fmt.Fprintf(stderr, "cxlab: warning: %s\n", w)
	}
	if err != nil {
		return cfg, reportErr(stderr, err), false
	}
	return cfg, exitOK, true
}

// reportErr prints a one-line error; configuration errors exit with 2.
func reportErr(stderr io.Writer, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " | ")
	_, _ = fmt.Fprintf(stderr, "cxlab: %s\n", msg)
	if errors.Is(err, config.ErrInvalid) {
		return exitUsage
	}
	return exitFailure
}

func version() string {
	if appliance.Version != "dev" {
		return appliance.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
