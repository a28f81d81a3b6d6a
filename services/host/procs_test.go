//go:build linux

package host_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/services/host"
)

// fitProcsEnv, set, makes this test binary the child of TestFitProcsInACgroup instead of
// running tests (see TestMain).
const fitProcsEnv = "HOST_TEST_FIT_PROCS"

// fitProcsChild waits for a line on in (its parent has moved it into a group by then), fits
// GOMAXPROCS and writes what it is to out.
func fitProcsChild(in io.Reader, out io.Writer) error {
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return err
	}
	if _, err := host.FitProcs(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out, runtime.GOMAXPROCS(0))
	return err
}

// TestFitProcsInACgroup runs this binary in a cgroup limited to a third of a core, and in one
// limited to 1.5 cores: its GOMAXPROCS is 1 in the first (Go's default would be 2), and
// Go's own 2 in the second. It needs a cgroup filesystem it may make groups in (root).
func TestFitProcsInACgroup(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: GOMAXPROCS is 1 whatever the quota")
	}
	fs, err := cgroup.Open(cgroup.DefaultRoot)
	if err != nil {
		t.Skipf("no cgroups to make here: %v", err)
	}
	stack := fmt.Sprintf("hosttest-procs-%d", os.Getpid())
	for _, c := range []struct {
		cpus float64
		want int
	}{{0.33, 1}, {1.5, 2}} {
		t.Run(strconv.FormatFloat(c.cpus, 'f', -1, 64), func(t *testing.T) {
			arch := strings.ReplaceAll(strconv.FormatFloat(c.cpus, 'f', -1, 64), ".", "-")
			g, err := fs.Make(stack, arch, cgroup.Limits{CPUs: c.cpus, MemoryMB: 256})
			if err != nil {
				t.Fatalf("make a group: %v", err)
			}
			t.Cleanup(func() {
				if _, err := fs.Remove(stack, arch, 10*time.Second); err != nil {
					t.Errorf("remove the group: %v", err)
				}
			})
			if got := childProcs(t, g); got != c.want {
				t.Fatalf("GOMAXPROCS %d under a quota of %g cores on %d CPUs, want %d", got, c.cpus, runtime.NumCPU(), c.want)
			}
		})
	}
}

// childProcs starts this binary as fitProcsChild, moves it into g, and returns the
// GOMAXPROCS it reports.
func childProcs(t *testing.T, g *cgroup.Group) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") { // the environment would win
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, fitProcsEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill() // gone already unless the test failed
		_ = cmd.Wait()
	}()
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("the child said %q", s)
		}
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("the child said nothing within 30 s")
	}
	return 0
}
