package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/services/launch"
)

// binDir holds the binaries, built once per test binary into a directory TestMain removes.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mitosis-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// programs are the packages built for the tests, by binary name.
func programs() map[string]string {
	out := map[string]string{"monolith": "github.com/mitosis-dev/mitosis/monolith"}
	for _, name := range []string{"catalog", "cart", "inventory", "payments", "orders", "shipping", "notify", "gateway"} {
		out[name] = "github.com/mitosis-dev/mitosis/services/" + name
	}
	return out
}

var (
	buildOnce sync.Once
	buildErr  error
)

// build builds every binary (once per test binary) and returns their directory.
func build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		var pkgs []string
		for _, p := range programs() {
			pkgs = append(pkgs, p)
		}
		start := time.Now()
		cmd := exec.Command(goTool, append([]string{"build", "-o", binDir + string(filepath.Separator)}, pkgs...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
			return
		}
		t.Logf("built %d binaries in %s", len(pkgs), time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

const testToken = "e2e-admin-token"

// startStack builds the binaries and starts NATS and the eight processes on free loopback
// ports, stopped when t ends. Warnings and errors of the processes go to the test log.
// Log lines containing any of quiet are expected and not passed on.
func startStack(t *testing.T, quiet ...string) *launch.Stack {
	t.Helper()
	return startStackEnv(t, nil, quiet...)
}

// startStackEnv is startStack with env added to every process's environment.
func startStackEnv(t *testing.T, env []string, quiet ...string) *launch.Stack {
	t.Helper()
	dir := build(t)
	addrs := map[string]string{}
	for _, name := range []string{"catalog", "cart", "inventory", "payments", "orders", "shipping", "notify"} {
		addrs[name] = "127.0.0.1:0"
	}
	logs := &logWriter{t: t, quiet: quiet}
	t.Cleanup(logs.stop) // runs after stack.Stop below: cleanups run last first
	stack, err := launch.Start(t.Context(), launch.Config{
		BinDir:      dir,
		DataDir:     t.TempDir(),
		Addrs:       addrs,
		GatewayAddr: "127.0.0.1:0",
		AdminToken:  testToken,
		Output:      logs,
		Env:         env,
	})
	if err != nil {
		t.Fatalf("start the services: %v", err)
	}
	t.Cleanup(func() {
		if err := stack.Stop(); err != nil {
			t.Errorf("a process did not stop cleanly on SIGTERM: %v", err)
		}
	})
	return stack
}

// logWriter passes the processes' warnings, errors and recoveries to the test log, until the
// test ends.
type logWriter struct {
	mu    sync.Mutex
	t     *testing.T
	quiet []string
	done  bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	s := string(p)
	for _, q := range w.quiet {
		if strings.Contains(s, q) {
			return len(p), nil
		}
	}
	if strings.Contains(s, `"level":"WARN"`) || strings.Contains(s, `"level":"ERROR"`) || strings.Contains(s, `"msg":"recovered interrupted`) || !strings.HasPrefix(s, "{") {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.done {
			w.t.Log(strings.TrimSpace(s))
		}
	}
	return len(p), nil
}

// stop ends the passing on: a test's log is closed once it has ended.
func (w *logWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
