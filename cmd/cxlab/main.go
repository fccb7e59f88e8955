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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // the next signal takes the default action...
		force := make(chan os.Signal, 1)
		signal.Notify(force, os.Interrupt, syscall.SIGTERM)
		<-force // ...but we say why before going.
		fmt.Fprintln(os.Stderr, "cxlab: second signal, exiting now")
		os.Exit(130)
	}()
	os.Exit(cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
