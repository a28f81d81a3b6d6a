// Command mitosis builds the shop's images and runs its architectures side by side: as Podman
// pods (through Podman's API) or, where no Podman answers, as local processes.
//
//	mitosis build   [-t both|monolith|services] [--platform os/arch]... [--force] [image...]
//	mitosis up      [-t ...] [--runtime auto|podman|process]
//	mitosis down    [-t ...] [--runtime ...]
//	mitosis status  [--json]
//	mitosis logs    [-f] [--tail N] [service|arch/service]...
//	mitosis push    --to REGISTRY/PREFIX [--tag T]... [image...]
//	mitosis events  dead-letters [--consumer NAME] [-t ...] | replay [--consumer NAME] [-t ...]
//	mitosis kill    SERVICE|ARCH/SERVICE... [-t ...]
//	mitosis start   SERVICE|ARCH/SERVICE... [-t ...]
//	mitosis advise  [--run DIR] [--isolate C] [--together A,B] [--max-groups N] [--objective cpu|latency|balanced] [--json] [--verify]
//	mitosis certs   issue|nats-users|rotate|aws-secret ...
//	mitosis deploy  render [--out DIR] | check [--dir DIR]
//	mitosis kube    render|play|down|load [--arch ARCH] [--prefix P]
//	mitosis traces  compare [TRACE_ID_A TRACE_ID_B] [--last N] [--format table|json|html]
//
// Each command is a file of its own here; what it does lives in the platform's packages.
//
// Exit codes: 0 success; 1 failure; 2 bad usage; 3 `status` found a service not running or
// not ready; 4 `status`, `logs`, `events`, `kill` or `start` found nothing up.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by the build from git (-X main.version=...: the Makefile, the image build).
var version = "dev"

// Exit codes scripts can rely on.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitUnready = 3
	exitNothing = 4
)

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the CLI with args and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRoot(&app{out: stdout, errOut: stderr})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "mitosis:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "mitosis:", err)
	if isUsage(err) {
		return exitUsage
	}
	return exitFailure
}
