// Package proctest runs the test binary itself again as a helper process: a server (a
// JetStream server, an OTLP sink) that a benchmark wants in a process of its own, so that
// what it measures pays for crossing processes and shares neither its scheduler nor its heap
// with the server. The binary's TestMain tells the two apart by an environment variable.
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Start runs the test binary again with env (KEY=value) added to its environment, and
// returns the first line the helper prints (its address, see Serve). The helper stops when
// tb ends: its standard input closes, and Start's cleanup waits for it to exit.
func Start(tb testing.TB, env string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close() // the helper's signal to stop
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("helper process %s: %v", env, err)
	}
	return strings.TrimSpace(line)
}

// Serve is the helper's side of Start: it prints addr for Start to return, then waits until
// its standard input closes, which is Start's signal to stop.
func Serve(addr string) {
	fmt.Println(addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
}
