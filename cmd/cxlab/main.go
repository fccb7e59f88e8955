// Command cxlab runs the CX Lab appliance.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cxlab/cxlab/appliance/cli"
	"github.com/cxlab/cxlab/appliance/store/postgres"
	"github.com/cxlab/cxlab/appliance/store/redisstore"
)

func main() {
	if ran, code := postgres.RunSupervisorIfRequested(); ran {
		os.Exit(code)
	}
	redisstore.RouteLibraryLogs(slog.Default())
	// One channel for both signals: the first stops gracefully, the second
	// (even at once after it) exits now.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "cxlab: second signal, exiting now")
		cli.ForceExit()
		os.Exit(130)
	}()
	os.Exit(cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
