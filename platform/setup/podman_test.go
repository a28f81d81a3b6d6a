package setup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/containers/podman/v4/libpod/define"
)

// Environment of the tools the test binary plays (see fakeTool).
const (
	envTool       = "MITOSIS_TEST_FAKE_TOOL"  // which tool this process plays
	envCalls      = "MITOSIS_TEST_FAKE_CALLS" // file where the fake podman writes every call
	envState      = "MITOSIS_TEST_FAKE_STATE" // JSON fakeState: what the fake podman has
	envOCIRuntime = "MITOSIS_TEST_FAKE_OCI_RUNTIME"
	envCgroups    = "MITOSIS_TEST_FAKE_CGROUPS"
)

// TestMain lets the test binary play the tools the script runs, when envTool says which.
func TestMain(m *testing.M) {
	if tool := os.Getenv(envTool); tool != "" {
		os.Exit(fakeTool(tool, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeState is what the fake podman has: running containers and pods.
type fakeState struct {
	Containers []fakeContainer `json:"containers"`
	Pods       []fakePod       `json:"pods"`
}

type fakeContainer struct {
	ID        string            `json:"id"`
	ConmonPID int               `json:"conmon_pid"`
	Pod       string            `json:"pod"`
	Labels    map[string]string `json:"labels"`
}

type fakePod struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels"`
}

// fakeTool plays tool with args and returns its exit code.
func fakeTool(tool string, args []string) int {
	switch tool {
	case "id":
		if slices.Equal(args, []string{"-u"}) {
			fmt.Println(0) // root, as far as the script can tell: it writes only in the test's directory
			return 0
		}
		return 1
	case "curl":
		return fakeCurl(args)
	case "podman":
		return fakePodman(args)
	}
	return 0 // runc, catatonit, netavark: present
}

// fakeCurl does what the script asks of curl: a GET over a unix socket, failing unless 200.
func fakeCurl(args []string) int {
	var sock, url string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--unix-socket" && i+1 < len(args):
			sock = args[i+1]
			i++
		case args[i] == "--max-time":
			i++
		case strings.HasPrefix(args[i], "http://"):
			url = args[i]
		}
	}
	client := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	res, err := client.Get(url)
	if err != nil {
		return 7
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 22
	}
	return 0
}

func fakePodman(args []string) int {
	if f, err := os.OpenFile(os.Getenv(envCalls), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, strings.Join(args, " "))
		_ = f.Close()
	}
	var st fakeState
	if b, err := os.ReadFile(os.Getenv(envState)); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			fmt.Fprintln(os.Stderr, "fake podman: state:", err)
			return 125
		}
	}
	// Templates run against Podman's own types, so the script's formats are checked against
	// what a real podman would execute them on.
	format := func(i int) *template.Template {
		if i+1 >= len(args) || args[i] != "--format" {
			return nil
		}
		t, err := template.New("format").Parse(args[i+1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake podman: format:", err)
			return nil
		}
		return t
	}
	switch {
	case len(args) >= 3 && args[0] == "info":
		t := format(1)
		info := define.Info{Host: &define.HostInfo{OCIRuntime: &define.OCIRuntimeInfo{Name: os.Getenv(envOCIRuntime)},
			CgroupsVersion: os.Getenv(envCgroups)}}
		if t == nil || t.Execute(os.Stdout, info) != nil {
			return 125
		}
		fmt.Println()
		return 0
	case len(args) == 4 && args[0] == "system" && args[1] == "service" && args[2] == "--time=0":
		return fakeService(strings.TrimPrefix(args[3], "unix://"))
	case slices.Equal(args, []string{"ps", "-q", "--no-trunc"}) || slices.Equal(args, []string{"ps", "-q"}):
		for _, c := range st.Containers {
			fmt.Println(c.ID)
		}
		return 0
	case len(args) == 6 && slices.Equal(args[:5], []string{"pod", "ps", "-q", "--no-trunc", "--filter"}) && strings.HasPrefix(args[5], "label="):
		key := strings.TrimPrefix(args[5], "label=")
		for _, p := range st.Pods {
			if _, ok := p.Labels[key]; ok {
				fmt.Println(p.ID)
			}
		}
		return 0
	case len(args) >= 3 && args[0] == "inspect":
		t := format(1)
		if t == nil {
			return 125
		}
		for _, id := range args[3:] {
			i := slices.IndexFunc(st.Containers, func(c fakeContainer) bool { return c.ID == id })
			if i < 0 {
				return 125
			}
			c := st.Containers[i]
			data := define.InspectContainerData{ID: c.ID, Pod: c.Pod, State: &define.InspectContainerState{ConmonPid: c.ConmonPID},
				Config: &define.InspectContainerConfig{Labels: c.Labels}}
			if err := t.Execute(os.Stdout, data); err != nil {
				fmt.Fprintln(os.Stderr, "fake podman: inspect:", err)
				return 125
			}
			fmt.Println()
		}
		return 0
	case len(args) >= 3 && args[0] == "stop":
		return 0 // the call is in the log
	}
	fmt.Fprintln(os.Stderr, "fake podman: unknown call:", args)
	return 125
}

// fakeService answers Podman's ping on sock until SIGTERM.
func fakeService(sock string) int {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake podman service:", err)
		return 125
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			_, _ = w.Write([]byte("OK"))
			return
		}
		http.NotFound(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-stop
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return 125
	}
	return 0
}

// machine is a temporary directory standing for the machine the script sets up.
type machine struct {
	t                      *testing.T
	dir, bin               string
	sock, conf, pid, calls string
	state                  string
	ociRuntime, cgroups    string // what the fake podman info reports
	script                 string
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash here")
	}
	dir, err := os.MkdirTemp("", "mitosis-setup-") // short: a unix socket's path is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	m := &machine{t: t, dir: dir, bin: filepath.Join(dir, "bin"), sock: filepath.Join(dir, "podman.sock"),
		conf: filepath.Join(dir, "etc", "containers.conf"), pid: filepath.Join(dir, "run", "service.pid"),
		calls: filepath.Join(dir, "podman-calls"), state: filepath.Join(dir, "podman-state.json"),
		ociRuntime: "runc", cgroups: "v2", script: filepath.Join(wd, "podman.sh")}
	// Read here, so that go test's cache knows the result depends on it (bash reads it, not us).
	if _, err := os.ReadFile(m.script); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Each tool: the test binary, named after the tool (exec -a), so that the script's check
	// of its service's command line sees "podman system service ...". Under the race
	// detector a binary sleeps a second as it exits, unless GORACE says not to.
	for _, tool := range []string{"podman", "curl", "id", "runc", "catatonit", "netavark"} {
		wrapper := fmt.Sprintf("#!/usr/bin/env bash\nGORACE=\"${GORACE:+$GORACE }atexit_sleep_ms=0\" %s=%s exec -a %s %q \"$@\"\n",
			envTool, tool, tool, self)
		if err := os.WriteFile(filepath.Join(m.bin, tool), []byte(wrapper), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m.setState(fakeState{})
	t.Cleanup(m.stopServices)
	return m
}

func (m *machine) setState(st fakeState) {
	m.t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(m.state, b, 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func (m *machine) env() []string {
	return append(os.Environ(), "PATH="+m.bin+":"+os.Getenv("PATH"),
		"MITOSIS_PODMAN_SOCKET="+m.sock, "MITOSIS_CONTAINERS_CONF="+m.conf, "MITOSIS_PODMAN_PIDFILE="+m.pid,
		"MITOSIS_PODMAN_LOG="+filepath.Join(m.dir, "service.log"),
		envCalls+"="+m.calls, envState+"="+m.state, envOCIRuntime+"="+m.ociRuntime, envCgroups+"="+m.cgroups)
}

// run runs the script and returns what it said; it must succeed.
func (m *machine) run() string {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", m.script)
	cmd.Env = m.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		m.t.Fatalf("podman.sh: %v\n%s", err, out)
	}
	return string(out)
}

// startService starts a Podman API service of someone else's: the script did not start it.
func (m *machine) startService() *exec.Cmd {
	m.t.Helper()
	cmd := exec.Command(filepath.Join(m.bin, "podman"), "system", "service", "--time=0", "unix://"+m.sock)
	cmd.Env = m.env()
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	m.waitAnswers()
	return cmd
}

func (m *machine) answers() bool {
	c := exec.Command(filepath.Join(m.bin, "curl"), "--unix-socket", m.sock, "http://d/v4.0.0/libpod/_ping")
	c.Env = m.env()
	return c.Run() == nil
}

func (m *machine) waitAnswers() {
	m.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !m.answers(); {
		if time.Now().After(deadline) {
			m.t.Fatal("the fake Podman service does not answer")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scriptsService returns the PID in the script's PID file, if that process is alive.
func (m *machine) scriptsService() (int, bool) {
	b, err := os.ReadFile(m.pid)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	return pid, alive(pid)
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

// stopServices stops the fake API services on this machine's socket, those the script
// started included (the test started them, through it): found by their command line, which
// names the test's own socket, whether or not the script kept their PID.
func (m *machine) stopServices() {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	want := "system\x00service\x00--time=0\x00unix://" + m.sock + "\x00"
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.HasSuffix(string(cmdline), want) {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(p, "/")[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for deadline := time.Now().Add(5 * time.Second); alive(pid) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (m *machine) confText() string {
	m.t.Helper()
	b, err := os.ReadFile(m.conf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.t.Fatal(err)
	}
	return string(b)
}

// podmanLimitsRefused reports whether this machine refuses what rootful Podman asks of every
// container by default, 1048576 open files and processes, as the script probes it.
func podmanLimitsRefused(t *testing.T) bool {
	t.Helper()
	return exec.Command("bash", "-c", "ulimit -Hn 1048576 && ulimit -Hu 1048576").Run() != nil
}

// keyLines returns the lines of conf setting key, each with the line before it.
func keyLines(conf, key string) [][2]string {
	lines := strings.Split(conf, "\n")
	var out [][2]string
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), key+" =") && i > 0 {
			out = append(out, [2]string{lines[i-1], l})
		}
	}
	return out
}

// containers.conf gets runtime = "runc" only when Podman would run crun on cgroups v1 (as on
// this project's machines, where crun fails), default_ulimits only when this machine refuses
// what Podman asks by default; each line after a comment saying that mitosis wrote it, why,
// and how to undo it; an administrator's own setting stays, and a second run changes nothing.
// The API service, someone else's, is never stopped: the script says to restart it.
func TestSetupScriptChangesContainersConfOnlyWherePodmanNeedsIt(t *testing.T) {
	refused := podmanLimitsRefused(t)
	for _, tc := range []struct {
		name, runtime, cgroups, conf string
		wantRuntime                  string // the runtime line afterwards; "" for none
		mitosisRuntime               bool   // the script wrote it
	}{
		{"crun on cgroups v1", "crun", "v1", "", `runtime = "runc"`, true},
		{"crun on cgroups v2", "crun", "v2", "", "", false},
		{"runc on cgroups v1", "runc", "v1", "", "", false},
		{"an administrator's runtime", "crun", "v1", "[engine]\nruntime = \"crun\"\n", `runtime = "crun"`, false},
		{"other settings kept", "crun", "v1", "# mine\n[containers]\nlog_size_max = 1024\n\n[engine] # here\nevents_logger = \"file\"\n",
			`runtime = "runc"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(t)
			m.ociRuntime, m.cgroups = tc.runtime, tc.cgroups
			if tc.conf != "" {
				if err := os.MkdirAll(filepath.Dir(m.conf), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(m.conf, []byte(tc.conf), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			service := m.startService()
			out := m.run()
			conf := m.confText()

			rt := keyLines(conf, "runtime")
			switch {
			case tc.wantRuntime == "" && len(rt) != 0:
				t.Errorf("runtime set, Podman works as it comes:\n%s", conf)
			case tc.wantRuntime != "" && (len(rt) != 1 || rt[0][1] != tc.wantRuntime):
				t.Errorf("runtime lines %q, want one %q:\n%s", rt, tc.wantRuntime, conf)
			case tc.mitosisRuntime && !strings.Contains(rt[0][0], "To undo it, delete this comment and the line below"):
				t.Errorf("the runtime line is not preceded by how to undo it:\n%s", conf)
			case tc.mitosisRuntime && !strings.Contains(conf, "# Set by mitosis (platform/setup/podman.sh): Podman's default runtime, crun, fails"):
				t.Errorf("no comment says why mitosis set the runtime:\n%s", conf)
			}
			if tc.mitosisRuntime && !strings.Contains(conf, "[engine]") {
				t.Errorf("runtime outside [engine]:\n%s", conf)
			}
			if tc.mitosisRuntime && strings.Contains(tc.conf, "[engine]") && !strings.Contains(conf, "[engine] # here\n# Set by mitosis") {
				t.Errorf("runtime not under the existing [engine] header:\n%s", conf)
			}
			for _, l := range strings.Split(tc.conf, "\n") {
				if !strings.Contains(conf, l) {
					t.Errorf("line %q of the administrator's file lost:\n%s", l, conf)
				}
			}

			ul := keyLines(conf, "default_ulimits")
			if refused != (len(ul) == 1) {
				t.Errorf("this machine refuses Podman's default limits: %v; default_ulimits lines %q", refused, ul)
			}
			if len(ul) == 1 && !strings.Contains(ul[0][0], "To undo it") {
				t.Errorf("default_ulimits not preceded by how to undo it:\n%s", conf)
			}

			changed := tc.mitosisRuntime || refused
			if changed != strings.Contains(out, "not started by this script: restart it yourself") {
				t.Errorf("conf changed: %v; the script said:\n%s", changed, out)
			}
			if !alive(service.Process.Pid) || !m.answers() {
				t.Errorf("someone else's API service was stopped:\n%s", out)
			}

			again := m.run()
			if after := m.confText(); after != conf {
				t.Errorf("a second run changed the file:\n%s\nthen\n%s", conf, after)
			}
			if strings.Contains(again, "changed") || strings.Contains(again, "restart") {
				t.Errorf("a second run said:\n%s", again)
			}
		})
	}
}

// The script keeps the PID of the API service it starts in its PID file, restarts that
// service (and nothing else) when it changes containers.conf, and leaves it alone otherwise.
func TestSetupScriptRestartsOnlyTheServiceItStarted(t *testing.T) {
	m := newMachine(t)
	m.ociRuntime, m.cgroups = "crun", "v1"

	out := m.run()
	first, ok := m.scriptsService()
	if !ok || !m.answers() || !strings.Contains(out, "starting podman system service") {
		t.Fatalf("no service started (pid file: %v):\n%s", ok, out)
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", first)); string(cmdline) != "podman\x00system\x00service\x00--time=0\x00unix://"+m.sock+"\x00" {
		t.Fatalf("the PID file names %d: %q", first, cmdline)
	}
	// It runs in /: conmon starts containers from its working directory, which the caller's
	// folder (a CI clone removed afterwards) would not stay.
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", first)); err != nil || cwd != "/" {
		t.Errorf("the service runs in %q (%v), want /", cwd, err)
	}

	// Unchanged: left alone.
	out = m.run()
	if pid, ok := m.scriptsService(); !ok || pid != first || strings.Contains(out, "restarting") {
		t.Fatalf("a run with nothing to change touched the service (%d, now %d):\n%s", first, pid, out)
	}

	// containers.conf lost mitosis's settings: written again, and the service restarted.
	if err := os.Remove(m.conf); err != nil {
		t.Fatal(err)
	}
	out = m.run()
	second, ok := m.scriptsService()
	if !ok || second == first || alive(first) || !m.answers() {
		t.Fatalf("after a change: service %d (alive %v), before %d (alive %v):\n%s", second, ok, first, alive(first), out)
	}
	if !strings.Contains(out, fmt.Sprintf("restarting the API service this script started (pid %d)", first)) {
		t.Errorf("the script did not say what it restarted:\n%s", out)
	}

	// The PID file naming another process (a PID reused): that process is not killed.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	m.stopServices()
	if err := os.WriteFile(m.pid, []byte(strconv.Itoa(other.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	service := m.startService() // someone else's, on the script's socket
	if err := os.Remove(m.conf); err != nil {
		t.Fatal(err)
	}
	out = m.run()
	if !alive(other.Process.Pid) || !alive(service.Process.Pid) || !strings.Contains(out, "not started by this script") {
		t.Errorf("with a PID file naming another process, the script stopped something:\n%s", out)
	}
}

// Of the containers Podman calls running whose conmon is gone, the script stops mitosis's
// only: those labelled mitosis.stack or mitosis.it.run, and the infra containers of pods
// labelled mitosis.stack; and with them the live containers of their pods. Anyone else's,
// and every container of a pod whose processes all live, are left alone.
func TestSetupScriptStopsOnlyMitosissLostContainers(t *testing.T) {
	m := newMachine(t)
	// A live conmon: a process named conmon.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	conmon := filepath.Join(m.dir, "conmon")
	if err := os.Symlink(sleep, conmon); err != nil {
		t.Fatal(err)
	}
	live := exec.Command(conmon, "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })
	const gone = 1 << 30 // above any pid_max: no such process
	ours := map[string]string{"mitosis.stack": "mitosis", "mitosis.arch": "monolith"}
	m.setState(fakeState{
		Pods: []fakePod{{ID: "pod-ours", Labels: ours}, {ID: "pod-ours-whole", Labels: ours}, {ID: "pod-theirs", Labels: map[string]string{"app": "web"}}},
		Containers: []fakeContainer{
			{ID: "ours-lost", ConmonPID: gone, Pod: "pod-ours", Labels: ours},
			{ID: "ours-infra-lost", ConmonPID: gone, Pod: "pod-ours"},
			{ID: "ours-restarted", ConmonPID: live.Process.Pid, Pod: "pod-ours", Labels: ours},
			{ID: "ours-live", ConmonPID: live.Process.Pid, Pod: "pod-ours-whole", Labels: ours},
			{ID: "ours-live-infra", ConmonPID: live.Process.Pid, Pod: "pod-ours-whole"},
			{ID: "suite-lost", ConmonPID: gone, Labels: map[string]string{"mitosis.it.run": "1234"}},
			{ID: "theirs-lost", ConmonPID: gone, Labels: map[string]string{"app": "db"}},
			{ID: "theirs-in-pod-lost", ConmonPID: gone, Pod: "pod-theirs"},
			{ID: "theirs-bare-lost", ConmonPID: gone},
		},
	})
	m.startService()
	out := m.run()
	calls, err := os.ReadFile(m.calls)
	if err != nil {
		t.Fatal(err)
	}
	var stops []string
	for _, l := range strings.Split(string(calls), "\n") {
		if strings.HasPrefix(l, "stop ") {
			stops = append(stops, l)
		}
	}
	if want := "stop -t 0 ours-lost ours-infra-lost suite-lost ours-restarted"; len(stops) != 1 || stops[0] != want {
		t.Errorf("stopped %q, want %q; the script said:\n%s", stops, want, out)
	}
	if !strings.Contains(out, "3 of mitosis's container(s) Podman calls running have no process left: stopping them") {
		t.Errorf("the script said:\n%s", out)
	}
}
