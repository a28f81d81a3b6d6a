//go:build linux

package host_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/services/host"
)

// sysmonEnv, set, makes this test binary the child of TestKeepSysmonAwake instead of running
// tests (see TestMain).
const sysmonEnv = "HOST_TEST_SYSMON"

// sysmonChild calls KeepSysmonAwake and writes the process's ID and GODEBUG as it then runs.
func sysmonChild(out io.Writer) error {
	host.KeepSysmonAwake()
	_, err := fmt.Fprintf(out, "%d %s\n", os.Getpid(), os.Getenv("GODEBUG"))
	return err
}

// TestKeepSysmonAwake: the binary runs again in the same process with the trace setting
// added to what GODEBUG held, and not again when GODEBUG sets schedtrace already.
func TestKeepSysmonAwake(t *testing.T) {
	for _, c := range []struct {
		name, godebug, want string
	}{
		{"unset", "", host.SysmonGODEBUG},
		{"kept", "gctrace=0", "gctrace=0," + host.SysmonGODEBUG},
		{"set by the operator", "schedtrace=1000000", "schedtrace=1000000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GODEBUG=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, sysmonEnv+"=1")
			if c.godebug != "" {
				cmd.Env = append(cmd.Env, "GODEBUG="+c.godebug)
			}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, os.Stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("child: %v", err)
			}
			pid, godebug, _ := strings.Cut(strings.TrimSpace(out.String()), " ")
			if pid != strconv.Itoa(cmd.Process.Pid) {
				t.Errorf("the child ran on as process %s, started as %d", pid, cmd.Process.Pid)
			}
			if godebug != c.want {
				t.Errorf("GODEBUG %q, want %q", godebug, c.want)
			}
		})
	}
}
