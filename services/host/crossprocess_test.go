//go:build linux

package host_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
)

// serveEnv, set to an identity's folder, makes this test binary the server of
// BenchmarkEmptyCallAcrossProcesses instead of running tests (see TestMain).
const serveEnv = "HOST_BENCH_SERVE_IDENTITY"

func TestMain(m *testing.M) {
	if os.Getenv(sysmonEnv) != "" {
		if err := sysmonChild(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(fitProcsEnv) != "" {
		if err := fitProcsChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if dir := os.Getenv(serveEnv); dir != "" {
		if err := serveForBenchmark(dir, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveForBenchmark serves health with the host's server options and the identity in dir on
// 127.0.0.1, writes its address to out, answers each line read from in with the process's
// CPU time so far (nanoseconds), and stops at the end of in: when its parent goes.
func serveForBenchmark(dir string, in io.Reader, out io.Writer) error {
	sec, err := host.Secure(dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := host.NewServer(slog.New(slog.DiscardHandler), sec)
	defer srv.Stop()
	healthpb.RegisterHealthServer(srv, deadlineProbe{deadlines: make(chan time.Duration, 1)})
	go func() { _ = srv.Serve(ln) }()
	if _, err := fmt.Fprintln(out, ln.Addr()); err != nil {
		return err
	}
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		if _, err := fmt.Fprintln(out, int64(cpuNow())); err != nil {
			return err
		}
	}
	return lines.Err()
}

// cpuNow is this process's user and system CPU so far.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEmptyCallAcrossProcesses is BenchmarkEmptyCall (secure) with the server in a
// process of its own, as every hop between services is: the CPU of both processes per call,
// each process with as many Ps as this one has, and with one. What it adds to
// BenchmarkEmptyCall is what a process boundary costs beyond the socket: a sleeping process
// woken for each message, and the Go runtime of each waking more threads to look for work
// (spinning) than one message needs.
func BenchmarkEmptyCallAcrossProcesses(b *testing.B) {
	for _, procs := range slices.Compact([]int{runtime.GOMAXPROCS(0), 1}) {
		b.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			benchmarkAcrossProcesses(b, procs)
		})
	}
}

func benchmarkAcrossProcesses(b *testing.B, procs int) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+hosttest.IdentityDir(b, "catalog"), "GOMAXPROCS="+strconv.Itoa(procs))
	cmd.Stderr = os.Stderr
	toServer, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	fromServer, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = toServer.Close() // the server's signal to stop
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := bufio.NewScanner(fromServer)
	next := func() string {
		if !lines.Scan() {
			b.Fatalf("the server process said nothing: %v", lines.Err())
		}
		return strings.TrimSpace(lines.Text())
	}
	serverCPU := func() time.Duration {
		if _, err := io.WriteString(toServer, "cpu\n"); err != nil {
			b.Fatal(err)
		}
		ns, err := strconv.ParseInt(next(), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return time.Duration(ns)
	}
	addr := next()

	conn, err := host.Dial(addr, `{}`, 0, hosttest.Security(b, "orders").ClientCredentials(""))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for range 100 { // connected, handshaken and warm before the clock starts
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	client0, server0 := processCPU(b), serverCPU()
	timeCalls(b, func() error {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	})
	client, server := processCPU(b)-client0, serverCPU()-server0
	perCall := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
	b.ReportMetric(perCall(client), "client-cpu-µs/op")
	b.ReportMetric(perCall(server), "server-cpu-µs/op")
	b.ReportMetric(perCall(client+server), "cpu-µs/op")
}
