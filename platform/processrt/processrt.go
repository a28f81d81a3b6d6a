// Package processrt runs a topology as local processes: the runtime for a machine without
// Podman, and the quickest loop while developing. Each service is its binary (built for the
// host with `go build`, in a build folder shared by the repository's stacks so that an
// unchanged binary is not linked again) started in its own session on 127.0.0.1,
// with its output in a log file and a record (pid, ports, spec hash) under the state folder,
// so that a later `mitosis` call finds, checks and stops it.
//
// Ports: an edge keeps its address; every other port is the service's own number
// (9101 and up for the contexts, as DESIGN.md says) when it is free, else any free port. A
// process's ports are kept across `up` calls while it runs, and when it stopped, while they
// are free. Each replica of a service is a process with ports of its own, named
// <service>-<n>; its callers are told every replica's address (topology.Arch.Addr).
//
// It isolates nothing, with one exception: no per-process limits, no read-only root (that is
// what containers are for). The exception is a shared budget (topology.Shared): where the
// machine lets it make cgroups (root, a writable cgroup filesystem), every process of such an
// architecture is moved, right after it starts, into one cgroup limited to the
// architecture's total (platform/cgroup); where it does not, Up warns, and Status says the
// budget is not enforced.
package processrt

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Options configure a Runtime.
type Options struct {
	Root   string // the repository: packages are built from here
	State  string // records, logs and data: <State>/<stack>/<arch>/...
	Stack  string
	Logger *slog.Logger
	// Binaries are the host's binaries by image name (imagebuild's, extracted from the
	// images); Up builds with `go build` those it lacks.
	Binaries map[string]string
	// AnyPorts gives every port but the edges a free port, never the service's own number:
	// for stacks that run side by side with others (tests), where two could pick 9101 at once.
	AnyPorts bool
	// CgroupRoot is the cgroup filesystem a shared budget's groups are made in; default
	// cgroup.DefaultRoot.
	CgroupRoot string
}

// Runtime is the process runtime of one stack.
type Runtime struct {
	opts Options
}

var _ stack.Runtime = (*Runtime)(nil)

// New returns the process runtime of a stack.
func New(opts Options) *Runtime {
	if opts.Stack == "" {
		opts.Stack = stack.DefaultName
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = cgroup.DefaultRoot
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{opts: opts}
}

// Name is "process".
func (r *Runtime) Name() string { return "process" }

// record is what the runtime keeps about a started process: enough to find, check and stop
// it, and to start it again as it was (Start).
type record struct {
	Arch    string         `json:"arch"`
	Service string         `json:"service"`              // the process's name: the service's, or a replica's
	Of      string         `json:"replica_of,omitempty"` // the service a replica is one of
	PID     int            `json:"pid"`
	Binary  string         `json:"binary"`
	Args    []string       `json:"args"`
	Env     []string       `json:"env"` // the whole environment it got: secrets too, hence the record's mode 0600
	Dir     string         `json:"dir"`
	Ports   map[string]int `json:"ports"` // container port -> host port
	Hash    string         `json:"hash"`
	Probe   topology.Probe `json:"probe"`
	Started time.Time      `json:"started"`
	Killed  *time.Time     `json:"killed,omitempty"` // when Kill killed it; nil once started again
	Cgroup  string         `json:"cgroup,omitempty"` // the shared budget's group it runs in (Start puts it back)
}

func (r *Runtime) stackDir() string { return filepath.Join(r.opts.State, r.opts.Stack) }

// DefaultPKI is where Up keeps the stack's CA, identities and NATS users when its options name
// no PKI folder: beside the stack's records.
func (r *Runtime) DefaultPKI() string { return filepath.Join(r.stackDir(), "pki") }

func (r *Runtime) archDir(arch string) string {
	return filepath.Join(r.stackDir(), arch)
}
func (r *Runtime) binDir() string { return filepath.Join(r.opts.State, "bin") }

// budgetPath is where the architecture's budget is recorded (stack.Budget as JSON); not
// .json, which would read as a process's record.
func (r *Runtime) budgetPath(arch string) string { return filepath.Join(r.archDir(arch), "budget") }

func (r *Runtime) recordPath(arch, svc string) string {
	return filepath.Join(r.archDir(arch), svc+".json")
}

func (r *Runtime) logPath(arch, svc string) string {
	return filepath.Join(r.archDir(arch), svc+".log")
}

func readRecord(path string) (record, error) {
	var rec record
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("record %s: %w", path, err)
	}
	return rec, nil
}

func writeRecord(path string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	// 0600: the environment holds the admin token and the request key.
	return os.WriteFile(path, b, 0o600)
}

// alive tells whether pid runs the binary it was started as (a recycled pid does not count).
func alive(rec record) bool {
	if rec.PID <= 0 {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", rec.PID))
	if err != nil {
		return syscall.Kill(rec.PID, 0) == nil && !isZombie(rec.PID)
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	return exe == rec.Binary && !isZombie(rec.PID)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// build returns the topology's binaries: Options.Binaries, and the rest compiled for this
// machine, copied into <State>/bin under content-addressed names.
func (r *Runtime) build(ctx context.Context, t topology.Topology, progress io.Writer) (map[string]string, error) {
	bins := map[string]string{}
	// Images given as binaries run those; the others run their package built once, with no
	// build tags: every group's image of services/shop is then the one binary that links
	// every context, which runs any group as well (the tags only leave code out) and keeps
	// this loop to one build.
	byPackage := map[string][]string{} // package -> images
	var packages []string
	for _, im := range t.Images() {
		if p, ok := r.opts.Binaries[im.Name]; ok {
			bins[im.Name] = p
			continue
		}
		if _, ok := byPackage[im.Package]; !ok {
			packages = append(packages, im.Package)
		}
		byPackage[im.Package] = append(byPackage[im.Package], im.Name)
	}
	if len(packages) == 0 {
		return bins, nil
	}
	start := time.Now()
	built, err := r.goBuild(ctx, packages)
	if err != nil {
		return nil, err
	}
	for i, pkg := range packages {
		// Older builds go: a process still running one keeps its file open.
		old, _ := filepath.Glob(filepath.Join(r.binDir(), filepath.Base(filepath.Clean(pkg))) + "-" + strings.Repeat("[0-9a-f]", 16))
		for _, p := range old {
			if p != built[i] {
				_ = os.Remove(p)
			}
		}
		for _, im := range byPackage[pkg] {
			bins[im] = built[i]
		}
	}
	if progress != nil {
		fmt.Fprintf(progress, "built %d binaries into %s (%s)\n", len(packages), r.binDir(), time.Since(start).Round(time.Millisecond))
	}
	return bins, nil
}

// goBuild runs `go build` of packages and returns the binaries' copies in <State>/bin, in
// the order of packages, each named <name>-<first 16 hex digits of its SHA-256>: a later
// build never rewrites the file a process runs, and /proc/<pid>/exe tells which build a
// process runs.
//
// It builds into the repository's build folder, one per repository and user (under the
// user's cache, like Go's own), not one per state folder, and leaves the binaries there: go
// build then finds a binary whose inputs did not change up to date and skips linking it,
// which is most of a build's time (seconds per binary), for every stack and state folder of
// the repository. A lock keeps two builds (two mitosis calls, parallel tests) from
// rewriting a binary while the other copies it.
func (r *Runtime) goBuild(ctx context.Context, packages []string) ([]string, error) {
	dir := r.buildDir()
	for _, d := range []string{dir, r.binDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	args := append([]string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}, packages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = r.opts.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, out)
	}
	copies := make([]string, len(packages))
	for i, pkg := range packages {
		name := filepath.Base(filepath.Clean(pkg))
		built := filepath.Join(dir, name)
		sum, err := fileHash(built)
		if err != nil {
			return nil, err
		}
		copies[i] = filepath.Join(r.binDir(), name+"-"+sum[:16])
		if _, err := os.Stat(copies[i]); err == nil {
			continue // this build's copy is there already
		}
		if err := copyExecutable(built, copies[i]); err != nil {
			return nil, fmt.Errorf("copy %s: %w", name, err)
		}
	}
	return copies, nil
}

// copyExecutable copies src to dst through a temporary file beside dst, so that dst is
// either absent or whole.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name()) // fails once renamed
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o755); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// buildDir is where goBuild builds: <user cache>/mitosis/build/<hash of the repository's
// path>, or <State>/build where the machine has no cache folder.
func (r *Runtime) buildDir() string {
	root, err := filepath.Abs(r.opts.Root)
	if err != nil {
		root = r.opts.Root
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(r.opts.State, "build")
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(cache, "mitosis", "build", hex.EncodeToString(sum[:8]))
}

// Up builds the binaries and starts each architecture's services level by level, leaving
// alone those that run as asked.
func (r *Runtime) Up(ctx context.Context, t topology.Topology, opts stack.UpOptions) error {
	opts.Progress = stack.SyncWriter(opts.Progress)
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = stack.DefaultReadyTimeout
	}
	bins, err := r.build(ctx, t, opts.Progress)
	if err != nil {
		return err
	}
	if opts.PKI == "" {
		opts.PKI = r.DefaultPKI()
	}
	ids, err := stack.Identities(r.opts.Stack, t, opts, nil)
	if err != nil {
		return err
	}
	var users natsauth.Creds // none when insecure: NATS then lets anyone in, as before
	if !opts.Insecure {
		if users, err = natsauth.Setup(opts.PKI, t); err != nil {
			return err
		}
	}
	taken := map[int]bool{} // host ports handed out in this call
	var mu sync.Mutex
	export := topology.ExportEnv("", opts.Env) // how to export telemetry: nowhere until the collector runs
	for _, a := range stack.Archs(t, opts) {
		if err := os.MkdirAll(r.archDir(a.Name), 0o755); err != nil {
			return err
		}
		// Ports first, for the whole architecture: a service's environment names its peers'.
		// Each process (every replica) has ports of its own.
		ports := map[string]map[int]int{}
		for _, s := range a.Services {
			for _, proc := range s.Processes() {
				prev, _ := readRecord(r.recordPath(a.Name, proc.Name))
				ports[proc.Name] = map[int]int{}
				for i, p := range s.Ports {
					hp, err := r.pickPort(a.Name, proc.Name, s, i, p, prev, taken, &mu)
					if err != nil {
						return err
					}
					ports[proc.Name][p] = hp
				}
			}
		}
		levels, err := a.Levels()
		if err != nil {
			return err
		}
		bud := r.budget(a, opts)
		for _, level := range levels {
			errs := make([]error, len(level))
			var wg sync.WaitGroup
			for i, s := range level {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = r.upService(ctx, a, s, bins[s.Image], ports, export, ids, users, bud, opts)
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return err
			}
		}
		if err := bud.finish(); err != nil {
			return err
		}
		if a.Name == topology.Telemetry {
			export = topology.ExportEnv(net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[t.Collector.Name][topology.CollectorHTTPPort])), nil)
		}
		r.removeStale(a)
	}
	return nil
}

func (r *Runtime) pickPort(arch, proc string, s topology.Service, i, port int, prev record, taken map[int]bool, mu *sync.Mutex) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	at := s.Publish[port]
	if i == 0 {
		at = s.Edge
	}
	if at != "" {
		_, p, err := net.SplitHostPort(at)
		if err != nil {
			return 0, fmt.Errorf("%s/%s: host address %q: %w", arch, proc, at, err)
		}
		hp, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("%s/%s: host address %q: bad port", arch, proc, at)
		}
		// Port 0 is any free port, picked here, after the build and right before the start,
		// as Podman does for a published port 0: a caller who picked one itself before Up
		// could lose it to another process while the binaries build.
		if hp != 0 {
			// In use is fine when this process's last run holds it; by anyone else, or
			// forwarded to a container, it is not: the process would fail to listen, or run
			// and never be reached. Nothing has started yet: the caller can choose another.
			err := stack.CheckPort(at)
			ours := errors.Is(err, stack.ErrPortInUse) && alive(prev) && prev.Ports[strconv.Itoa(port)] == hp
			if err != nil && !ours {
				return 0, &stack.AddrTakenError{Arch: arch, Service: proc, Addr: at, Err: err}
			}
			taken[hp] = true
			return hp, nil
		}
	}
	// A process keeps its ports while it runs, and after it stopped while they are free: a
	// replica started again where it was is found by its callers, which need no restart.
	if hp, ok := prev.Ports[strconv.Itoa(port)]; ok && !taken[hp] && (alive(prev) || free(hp)) {
		taken[hp] = true
		return hp, nil
	}
	if !r.opts.AnyPorts && at == "" && !taken[port] && free(port) {
		taken[port] = true
		return port, nil
	}
	hp, err := stack.FreePort(func(p int) bool { return taken[p] })
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", arch, proc, err)
	}
	taken[hp] = true
	return hp, nil
}

// free tells whether a process can serve 127.0.0.1:port. A port a container publishes
// binds, yet is not free: its connections go to the container (the make up stack's
// collector on 16686, say).
func free(port int) bool {
	return stack.CheckPort(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) == nil
}

// upService starts the processes of one service that do not run as asked; export is the
// environment that exports its telemetry to the collector (topology.ExportEnv: to nowhere
// before the collector runs, and for the collector itself); bud is the architecture's budget,
// whose group a process of a shared one joins. Processes missing or stopped start together;
// those running another spec are rolled, one at a time (stack.UpOptions).
func (r *Runtime) upService(ctx context.Context, a topology.Arch, s topology.Service, bin string, ports map[string]map[int]int, export, ids map[string]string, users natsauth.Creds, bud *budgetRun, opts stack.UpOptions) error {
	procs := s.Processes()
	specs := make([]procSpec, len(procs))
	var roll, rest []int
	for i, p := range procs {
		sp, err := r.spec(a, s, p, bin, ports, export, ids, users, bud.cgroupPath(), opts)
		if err != nil {
			return err
		}
		specs[i] = sp
		if prev, err := readRecord(sp.recPath); err == nil && alive(prev) && prev.Hash != sp.hash {
			roll = append(roll, i)
		} else {
			rest = append(rest, i)
		}
	}
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for _, i := range rest {
		wg.Go(func() { errs[i] = r.upProcess(ctx, specs[i], bud, opts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for k, i := range roll {
		if k > 0 {
			// The replica just made is ready; its callers find it within RedialWithin. Until
			// then, stopping another would leave some of them with fewer replicas than the
			// one going.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(bounded.RedialWithin()):
			}
		}
		if len(procs) > 1 {
			fmt.Fprintf(progressOr(opts.Progress), "%s/%s: rolling replica %d of %d\n", a.Name, specs[i].name, k+1, len(roll))
		}
		if err := r.upProcess(ctx, specs[i], bud, opts); err != nil {
			return err
		}
	}
	return nil
}

// procSpec is everything one process is started from.
type procSpec struct {
	arch    string
	svc     topology.Service
	name    string // the process's: the service's, or a replica's
	of      string // the service a replica is one of; "" alone
	bin     string
	args    []string
	env     map[string]string
	ports   map[string]int // container port -> host port
	addr    string         // where its probe answers
	dataDir string
	dir     string // its working folder
	recPath string
	logPath string
	cgroup  string // the shared budget's group it runs in; "" for none
	hash    string
}

// spec works out how process p of s runs. ids are the identities' folders (stack.Identities),
// users the NATS users (natsauth.Setup).
func (r *Runtime) spec(a topology.Arch, s topology.Service, p topology.Replica, bin string, ports map[string]map[int]int, export, ids map[string]string, users natsauth.Creds, cgroupPath string, opts stack.UpOptions) (procSpec, error) {
	sp := procSpec{arch: a.Name, svc: s, name: p.Name, bin: bin, dir: r.archDir(a.Name), cgroup: cgroupPath,
		dataDir: filepath.Join(r.archDir(a.Name), p.Name+"-data"),
		recPath: r.recordPath(a.Name, p.Name), logPath: r.logPath(a.Name, p.Name)}
	if p.N > 0 {
		sp.of = s.Name
	}
	res := topology.Resolver{
		Addr: func(svc string, port int) (string, error) {
			return a.Addr(svc, port, func(proc string, port int) string {
				return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[proc][port]))
			})
		},
		Listen:     func(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[p.Name][port])) },
		Data:       sp.dataDir,
		AdminToken: opts.AdminToken,
		RequestKey: opts.RequestKey,
		TLS:        ids[s.Identity()],
		Stack:      r.opts.Stack,
	}
	if s.PKI {
		res.PKI = opts.PKI
	}
	users.Resolve(&res, s, users.Dir)
	var err error
	sp.args, sp.env, err = topology.Expand(s, res)
	if err != nil {
		return sp, fmt.Errorf("%s/%s: %w", a.Name, p.Name, err)
	}
	var security map[string]string
	if s.Identity() != "" {
		security = stack.SecurityEnv(opts)
	}
	for _, extra := range []map[string]string{security, opts.Env, export} {
		for k, v := range extra {
			if _, set := sp.env[k]; !set {
				sp.env[k] = v
			}
		}
	}
	sp.ports = map[string]int{}
	for port, hp := range ports[p.Name] {
		sp.ports[strconv.Itoa(port)] = hp
	}
	sp.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[p.Name][s.Probe.Port]))
	hb, _ := json.Marshal(struct {
		Bin   string
		Args  []string
		Env   map[string]string
		Ports map[string]int
		// A process of a shared budget is moved into its group, and one that leaves a
		// shared budget is restarted to leave it: the group is part of what it runs as.
		Cgroup string `json:",omitempty"`
	}{bin, sp.args, sp.env, sp.ports, cgroupPath})
	sum := sha256.Sum256(hb)
	sp.hash = hex.EncodeToString(sum[:12])
	return sp, nil
}

// upProcess starts one process unless it runs as asked (one running another spec stops
// first: SIGTERM, and it drains), puts it in its budget's group, then waits until it is
// ready.
func (r *Runtime) upProcess(ctx context.Context, sp procSpec, bud *budgetRun, opts stack.UpOptions) error {
	start := time.Now()
	prev, err := readRecord(sp.recPath)
	verb := "started"
	if err == nil && alive(prev) {
		if prev.Hash == sp.hash {
			verb = "unchanged"
		} else {
			fmt.Fprintf(progressOr(opts.Progress), "%s/%s: changed, restarting it\n", sp.arch, sp.name)
			stop(prev, 5*time.Second)
		}
	}
	var exited <-chan struct{}
	rec := prev
	if verb == "started" {
		if err := os.MkdirAll(sp.dataDir, 0o755); err != nil {
			return err
		}
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
		for _, k := range sortedKeys(sp.env) {
			env = append(env, k+"="+sp.env[k])
		}
		rec = record{Arch: sp.arch, Service: sp.name, Of: sp.of, Binary: sp.bin, Args: sp.args, Env: env, Dir: sp.dir,
			Ports: sp.ports, Hash: sp.hash, Probe: sp.svc.Probe, Cgroup: sp.cgroup}
		if rec, exited, err = r.spawn(rec); err != nil {
			return err
		}
	}
	bud.join(sp.name, rec.PID) // a no-op when it is in already, or there is no group
	addr, err := r.waitReady(ctx, rec, exited, opts.ReadyTimeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(progressOr(opts.Progress), "%s/%s: %s, ready on %s (%s)\n", sp.arch, sp.name, verb, addr, time.Since(start).Round(time.Millisecond))
	return nil
}

// spawn starts rec's binary with its arguments, environment and folder, in a session of its
// own, its output appended to the service's log, and records it with its pid: the one way
// this runtime starts a process, for Up and for Start. exited is closed once the process
// ends (this process is its parent and reaps it).
func (r *Runtime) spawn(rec record) (record, <-chan struct{}, error) {
	logf, err := os.OpenFile(r.logPath(rec.Arch, rec.Service), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return rec, nil, err
	}
	defer logf.Close()
	cmd := exec.Command(rec.Binary, rec.Args...)
	cmd.Dir = rec.Dir
	cmd.Env = rec.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this command, stops as a group
	if err := cmd.Start(); err != nil {
		return rec, nil, fmt.Errorf("%s/%s: start: %w", rec.Arch, rec.Service, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	rec.PID, rec.Started, rec.Killed = cmd.Process.Pid, time.Now().UTC(), nil
	if err := writeRecord(r.recordPath(rec.Arch, rec.Service), rec); err != nil {
		return rec, exited, err
	}
	return rec, exited, nil
}

// waitReady waits until rec's probe passes on its port, and fails early when its process
// ends (exited, when this process started it; else by its pid). It returns the address
// probed.
func (r *Runtime) waitReady(ctx context.Context, rec record, exited <-chan struct{}, timeout time.Duration) (string, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(rec.Ports[strconv.Itoa(rec.Probe.Port)]))
	isAlive := func() error {
		if exited != nil {
			select {
			case <-exited:
				return fmt.Errorf("process exited; see %s", r.logPath(rec.Arch, rec.Service))
			default:
				return nil
			}
		}
		if !alive(rec) {
			return fmt.Errorf("process %d is gone; see %s", rec.PID, r.logPath(rec.Arch, rec.Service))
		}
		return nil
	}
	if err := stack.WaitReady(ctx, rec.Probe, addr, tlsDirOf(rec), timeout, isAlive); err != nil {
		return addr, fmt.Errorf("%s/%s: %w", rec.Arch, rec.Service, err)
	}
	return addr, nil
}

// tlsDirOf is the identity a probe of rec's process presents: its own (any identity of the
// stack may ask health), none for a process without one or run insecure.
func tlsDirOf(rec record) string {
	env := envOf(rec)
	if env[topology.InsecureEnv] == "true" {
		return ""
	}
	return env[topology.TLSDirEnv]
}

// identityDirOf is the folder of rec's process's own identity, a service's or NATS's; ""
// for a process without one or run insecure.
func identityDirOf(rec record) string {
	env := envOf(rec)
	if env[topology.InsecureEnv] == "true" {
		return ""
	}
	return cmp.Or(env[topology.TLSDirEnv], env[topology.NATSTLSDirEnv])
}

// envOf is rec's process's environment, by variable.
func envOf(rec record) map[string]string {
	env := map[string]string{}
	for _, kv := range rec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// removeArchDir removes an architecture's folder: its records, logs and budget, and its
// services' data folders (<process>-data) too when volumes, else those alone stay.
func (r *Runtime) removeArchDir(arch string, volumes bool) error {
	dir := filepath.Join(r.stackDir(), arch)
	if volumes {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // nothing there
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), "-data") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	_ = os.Remove(dir) // only if empty
	return nil
}

// removeStale stops the processes of a that its topology no longer lists (a service gone, or
// replicas fewer than before, or a service now one process that had replicas), and removes
// their records.
func (r *Runtime) removeStale(a topology.Arch) {
	want := map[string]bool{}
	for _, s := range a.Services {
		for _, p := range s.Processes() {
			want[p.Name] = true
		}
	}
	paths, _ := filepath.Glob(filepath.Join(r.archDir(a.Name), "*.json"))
	for _, path := range paths {
		rec, err := readRecord(path)
		if err != nil || want[rec.Service] {
			continue
		}
		stop(rec, 5*time.Second)
		_ = os.Remove(path)
	}
}

func progressOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stop sends SIGTERM to the process's group, and SIGKILL after grace.
func stop(rec record, grace time.Duration) {
	if !alive(rec) {
		return
	}
	_ = syscall.Kill(-rec.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alive(rec) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling a foreign process: there is nothing to wait on
	}
	if alive(rec) {
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
	}
}

func (r *Runtime) records() ([]record, error) {
	paths, err := filepath.Glob(filepath.Join(r.stackDir(), "*", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []record
	for _, p := range paths {
		rec, err := readRecord(p)
		if err != nil {
			continue
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Arch != out[j].Arch {
			return out[i].Arch < out[j].Arch
		}
		return out[i].Service < out[j].Service
	})
	return out, nil
}

// Down stops the stack's processes (SIGTERM, then SIGKILL after 5s) and removes their
// records, logs and data; with archs, those architectures' only, and the collector with the
// last of them (stack.DownArchs).
func (r *Runtime) Down(ctx context.Context, opts stack.DownOptions) (stack.Removed, error) {
	var removed stack.Removed
	recs, err := r.records()
	if err != nil {
		return removed, err
	}
	var present []string
	for _, rec := range recs {
		present = append(present, rec.Arch)
	}
	archs := stack.DownArchs(present, opts.Archs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, rec := range recs {
		if len(archs) > 0 && !contains(archs, rec.Arch) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if alive(rec) {
				stop(rec, 5*time.Second)
				mu.Lock()
				removed.Processes++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	entries, _ := os.ReadDir(r.stackDir())
	var dirs []string
	for _, e := range entries {
		if len(archs) == 0 || contains(archs, e.Name()) {
			dirs = append(dirs, e.Name())
			if err := r.removeArchDir(e.Name(), opts.Volumes); err != nil {
				return removed, err
			}
		}
	}
	_ = os.Remove(r.stackDir()) // only if empty
	n, err := r.removeCgroups(archs, dirs)
	removed.Cgroups = n
	return removed, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Status reports each recorded process: alive or not, ready or not, CPU (over a short sample)
// and resident memory.
func (r *Runtime) Status(ctx context.Context) ([]stack.Status, error) {
	recs, err := r.records()
	if err != nil {
		return nil, err
	}
	out := make([]stack.Status, len(recs))
	before := make([]uint64, len(recs))
	for i, rec := range recs {
		before[i], _ = cpuTicks(rec.PID)
	}
	sampleStart := time.Now()
	var wg sync.WaitGroup
	for i, rec := range recs {
		st := stack.Status{Arch: rec.Arch, Service: rec.Service, ReplicaOf: rec.Of, Name: stack.ObjectName(r.opts.Stack, rec.Arch, rec.Service),
			State: "exited", Health: stack.Unready, PID: rec.PID, TLSDir: identityDirOf(rec)}
		if p, ok := rec.Ports[strconv.Itoa(rec.Probe.Port)]; ok {
			st.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
		for cp, hp := range rec.Ports {
			if port, err := strconv.Atoi(cp); err == nil {
				if st.Ports == nil {
					st.Ports = map[int]string{}
				}
				st.Ports[port] = net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
			}
		}
		switch {
		case !alive(rec) && rec.Killed != nil:
			st.State = "killed"
			st.Detail = fmt.Sprintf("killed at %s; `mitosis start %s/%s` starts it again", rec.Killed.Format(time.RFC3339), rec.Arch, rec.Service)
		case !alive(rec):
			st.Detail = "see " + r.logPath(rec.Arch, rec.Service)
		default:
			st.State = "running"
			st.MemBytes = rss(rec.PID)
		}
		out[i] = st
		if st.State == "running" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := stack.CheckSteady(ctx, rec.Probe, st.Addr, tlsDirOf(rec)); err != nil {
					out[i].Health, out[i].Detail = stack.Unready, err.Error()
					return
				}
				out[i].Health = stack.Ready
			}()
		}
	}
	wg.Wait()
	if elapsed := time.Since(sampleStart); elapsed < 200*time.Millisecond {
		time.Sleep(200*time.Millisecond - elapsed) // CPU is a rate: it needs an interval
	}
	budgets := map[string]*stack.Budget{}
	for i, rec := range recs {
		if _, ok := budgets[rec.Arch]; !ok {
			budgets[rec.Arch] = r.budgetStatus(rec.Arch, recs)
		}
		out[i].Budget = budgets[rec.Arch]
	}
	elapsed := time.Since(sampleStart).Seconds()
	ticks := float64(clockTicks)
	for i, rec := range recs {
		if out[i].State != "running" {
			continue
		}
		after, err := cpuTicks(rec.PID)
		if err == nil && after >= before[i] {
			out[i].CPU = float64(after-before[i]) / ticks / elapsed * 100
		}
	}
	return out, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("bad stat")
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s, nil
}

func rss(pid int) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Logs prints the selected services' log files, each line prefixed with arch/service; with
// Follow it keeps reading them until ctx ends.
func (r *Runtime) Logs(ctx context.Context, opts stack.LogsOptions, w io.Writer) error {
	recs, err := r.records()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for _, rec := range recs {
		if !stack.Matches(opts.Services, rec.Arch, rec.Service, rec.Of) {
			continue
		}
		n++
		prefix := rec.Arch + "/" + rec.Service + " | "
		path := r.logPath(rec.Arch, rec.Service)
		emit := func(line string) {
			mu.Lock()
			fmt.Fprint(w, prefix+line+"\n")
			mu.Unlock()
		}
		if !opts.Follow {
			if err := tailFile(ctx, path, opts.Tail, false, emit); err != nil {
				return err
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = tailFile(ctx, path, opts.Tail, true, emit)
		}()
	}
	wg.Wait()
	if n == 0 {
		return fmt.Errorf("no service of stack %s matches %v", r.opts.Stack, opts.Services)
	}
	return nil
}

// tailFile emits the last n lines of path (all when n is 0) and, with follow, what is
// appended afterwards until ctx ends.
func tailFile(ctx context.Context, path string, n int, follow bool, emit func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(b) == 0 {
		lines = nil
	}
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		emit(l)
	}
	if !follow {
		return nil
	}
	rd := bufio.NewReader(f)
	var partial string
	for {
		line, err := rd.ReadString('\n')
		partial += line
		if err == nil {
			emit(strings.TrimSuffix(partial, "\n"))
			partial = ""
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond): // a file has no change notification here
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
