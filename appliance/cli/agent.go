package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// runAgent is `cxlab agent`: a headless agent (pion) against a running
// appliance that signs in to the gateway, goes Ready, answers, plays and
// analyses audio, until a signal.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if err := agent.RunCLI(ctx, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, context.Canceled) {
			return exitOK
		}
		_, _ = fmt.Fprintf(stderr, "cxlab agent: %v\n", err)
		if errors.Is(err, agent.ErrUsage) {
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}
