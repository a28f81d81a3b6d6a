package processrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

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
		if err := stack.UpLevels(ctx, levels, func(ctx context.Context, s topology.Service) error {
			return r.upService(ctx, a, s, bins[s.Image], ports, export, ids, users, bud, opts)
		}); err != nil {
			return err
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
	return stack.UpReplicas(ctx, rest, roll, func(ctx context.Context, i int) error { return r.upProcess(ctx, specs[i], bud, opts) },
		func(k, i int) {
			if len(procs) > 1 {
				fmt.Fprintf(progressOr(opts.Progress), "%s/%s: rolling replica %d of %d\n", a.Name, specs[i].name, k+1, len(roll))
			}
		})
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
		for _, k := range slices.Sorted(maps.Keys(sp.env)) {
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
