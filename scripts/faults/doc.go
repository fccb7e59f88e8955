// Package faults holds the long fault-injection tests of the appliance (kill -9
// under load, PostgreSQL killed, external Redis restarted, SIGTERM during live
// calls). They drive the real binary and run only when CXLAB_FAULTS=1:
//
//	make faults   # CXLAB_FAULTS=1 go test -count=1 -timeout 30m -run 'Fault' ./scripts/faults/...
//
// Each test prints a one-line summary with its figures.
package faults
