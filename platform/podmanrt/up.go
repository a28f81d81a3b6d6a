package podmanrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/podman/v4/libpod/define"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/pods"
	"github.com/containers/podman/v4/pkg/bindings/volumes"
	"github.com/containers/podman/v4/pkg/domain/entities"
	"github.com/containers/podman/v4/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// labelProbe records a pod's readiness probe, so that Status can check health without the
// topology: "<kind> <container port> <path>".
const labelProbe = "mitosis.probe"

// natsUsersMount is where a NATS pod finds its users file (platform/natsauth).
const natsUsersMount = "/etc/mitosis/nats"

// labelTLS records the host folder of a pod's identity, which its gRPC probe presents (any
// identity of the stack may ask health); absent for a pod without one or up insecure.
const labelTLS = "mitosis.tls"

// labelLevel records a pod's start level in its architecture (topology.Arch.Levels), so that
// Down stops the pods in the reverse order: a process's peers, its NATS and the collector it
// exports to are still there while it shuts down (with the collector gone first, each
// process spent its whole stop timeout flushing spans to an address that no longer answers).
const labelLevel = "mitosis.level"

// labelBudget records the architecture's budget on each of its pods (stack.Budget as JSON,
// without its enforcement, which Status checks).
const labelBudget = "mitosis.budget"

// labelPodSpec records the hash of what a pod itself is made from (desired.PodHash): its
// network, address, published ports and labels, which Podman cannot change on a pod that
// exists. The app container carries stack.LabelSpec, the hash of everything (desired.Hash):
// when only that differs, up replaces the app container in the pod it has (replaceApp).
const labelPodSpec = "mitosis.pod-spec"

// specVersion changes when the way pods are made changes, so an `up` after an upgrade remakes
// every pod (3: the restart policy; 4: the collector joins each architecture's network, the
// pods no longer join the collector's).
const specVersion = "4"

// restartPolicy is the supervisor of every app container: Podman starts the process again,
// at once and without limit, when it exits with a non-zero code on its own (a crash, a fatal
// error such as a store connection closed for good, an OOM kill or a SIGKILL from outside).
// A stop is never undone (Podman marks it stopped by the user): down, `mitosis kill` and
// the faults phase stop, so what they take down stays down. A process that exits 0 did so on
// purpose (the shop's binaries do only on SIGTERM) and stays down too. Podman 4.3 has no pod
// restart policy: the infra container has none, which only matters when it is killed from
// outside (Status says so, up remakes the pod).
const restartPolicy = "on-failure"

// stopTimeout is how long a container has to exit after SIGTERM before SIGKILL; the shop's
// binaries stop in well under a second when idle.
const stopTimeout = 5

// VolumeName is the data volume of one service.
func (r *Runtime) VolumeName(arch, service string) string {
	return stack.ObjectName(r.stack, arch, service) + "-data"
}

func containerName(pod string) string { return pod + "-app" }

// desired is everything a process's pod is made from: a service's, or one replica's.
type desired struct {
	Pod       string
	Arch      string
	Level     int // its start level in the architecture (labelLevel)
	Service   topology.Service
	Process   topology.Replica // its name is the pod's DNS name in the network
	Image     string           // reference
	ImageID   string
	Env       map[string]string
	Args      []string
	Ports     []nettypes.PortMapping
	Network   string
	IP        net.IP // fixed, so that a remade pod keeps its address and peers reconnect at once
	Volume    string
	Hash      string // of everything here: the app container's stack.LabelSpec
	PodHash   string `json:"-"` // of what the pod is made from (podShape): its labelPodSpec
	ProbeDesc string
	TLS       string // the host folder of its identity, mounted read-only at topology.TLSMount; "" for none
	NATSUsers string // the host folder of the NATS users, mounted read-only at natsUsersMount (the NATS pod); "" for none
	PKI       string `json:",omitempty"` // the stack's PKI folder, mounted read-write at topology.PKIMount (the renewer's pod); "" for none
	// CgroupParent is the architecture's group under a shared budget (cgroup.Path), "" for
	// Podman's default.
	CgroupParent string
	Budget       string // labelBudget's value
}

func (r *Runtime) desire(a topology.Arch, s topology.Service, p topology.Replica, level int, opts stack.UpOptions, ids map[string]string, users natsauth.Creds, ip net.IP, export map[string]string, parent string) (desired, error) {
	img, ok := r.images[s.Image]
	if !ok {
		return desired{}, fmt.Errorf("%s/%s: image %s was not built", a.Name, s.Name, s.Image)
	}
	pl, _ := img.PlatformImage(hostPlatform())
	d := desired{
		Pod:     stack.ObjectName(r.stack, a.Name, p.Name),
		Arch:    a.Name,
		Level:   level,
		Service: s,
		Process: p,
		Image:   img.Ref,
		ImageID: pl.ID,
		Network: r.NetworkName(a.Name),
		IP:      ip,
		TLS:     ids[s.Identity()],

		CgroupParent: parent,
	}
	if a.Mode != "" {
		b, err := json.Marshal(stack.BudgetOf(a))
		if err != nil {
			return d, err
		}
		d.Budget = string(b)
	}
	data := "/tmp/data"
	if s.DataDir != "" {
		data = s.DataDir
		d.Volume = r.VolumeName(a.Name, p.Name)
	}
	tls := ""
	if d.TLS != "" {
		tls = topology.TLSMount
	}
	res := topology.Resolver{
		Addr: func(svc string, port int) (string, error) {
			return a.Addr(svc, port, func(proc string, port int) string {
				return net.JoinHostPort(proc, strconv.Itoa(port)) // the process's DNS alias in the network
			})
		},
		Listen:     func(port int) string { return net.JoinHostPort("0.0.0.0", strconv.Itoa(port)) },
		Data:       data,
		AdminToken: opts.AdminToken,
		RequestKey: opts.RequestKey,
		TLS:        tls,
		Stack:      r.stack,
	}
	if s.PKI {
		res.PKI, d.PKI = topology.PKIMount, opts.PKI
	}
	users.Resolve(&res, s, natsUsersMount)
	if res.NATSUsers != "" {
		d.NATSUsers = users.Dir
	}
	var err error
	d.Args, d.Env, err = topology.Expand(s, res)
	if err != nil {
		return d, fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
	}
	if s.Identity() != "" {
		maps.Copy(d.Env, stack.SecurityEnv(opts))
	}
	for k, v := range opts.Env {
		if _, set := d.Env[k]; !set {
			d.Env[k] = v
		}
	}
	if export == nil {
		export = topology.ExportEnv("", opts.Env)
	}
	for k, v := range export {
		if _, set := d.Env[k]; !set {
			d.Env[k] = v
		}
	}
	for i, p := range s.Ports {
		pm := nettypes.PortMapping{HostIP: "127.0.0.1", ContainerPort: uint16(p), Protocol: "tcp"}
		at := s.Publish[p]
		if i == 0 {
			at = s.Edge
		}
		if at != "" {
			host, port, err := net.SplitHostPort(at)
			if err != nil {
				return d, fmt.Errorf("%s/%s: host address %q: %w", a.Name, s.Name, at, err)
			}
			hp, err := strconv.Atoi(port)
			if err != nil {
				return d, fmt.Errorf("%s/%s: host address %q: bad port", a.Name, s.Name, at)
			}
			pm.HostIP, pm.HostPort = host, uint16(hp)
		}
		d.Ports = append(d.Ports, pm)
	}
	d.ProbeDesc = fmt.Sprintf("%s %d %s", s.Probe.Kind, s.Probe.Port, s.Probe.Path)
	b, err := json.Marshal(struct {
		V                    string
		D                    desired
		CPUs                 float64
		MemoryMB             int
		DataDir              string
		Probe                topology.Probe
		Privileged, ReadOnly bool
	}{specVersion, d, s.CPUs, s.MemoryMB, s.DataDir, s.Probe, false, true})
	if err != nil {
		return d, fmt.Errorf("spec hash: %w", err)
	}
	sum := sha256.Sum256(b)
	d.Hash = hex.EncodeToString(sum[:12])
	if b, err = json.Marshal(struct {
		V string
		P podShape
	}{specVersion, d.podShape()}); err != nil {
		return d, fmt.Errorf("pod spec hash: %w", err)
	}
	sum = sha256.Sum256(b)
	d.PodHash = hex.EncodeToString(sum[:12])
	return d, nil
}

// podShape is what of desired makes the pod itself, not its app container: createPod makes
// the pod from it and nothing else, so that what the hash covers is what the pod is. A change
// to any of it makes the pod again, a change to anything else replaces the app.
type podShape struct {
	Pod, Arch      string
	Service        string // the replicas' label (stack.LabelReplica)
	Level          int
	Process        topology.Replica
	Network        string
	IP             net.IP
	Ports          []nettypes.PortMapping
	ProbeDesc, TLS string
	CgroupParent   string
	Budget         string
}

func (d desired) podShape() podShape {
	return podShape{Pod: d.Pod, Arch: d.Arch, Service: d.Service.Name, Level: d.Level, Process: d.Process, Network: d.Network, IP: d.IP,
		Ports: d.Ports, ProbeDesc: d.ProbeDesc, TLS: d.TLS, CgroupParent: d.CgroupParent, Budget: d.Budget}
}

// loadConcurrency bounds the images loaded into Podman at once: a rebuilt image takes a
// second or two to load (Podman decompresses and stores its layer), and several changed
// images need not wait for each other.
const loadConcurrency = 4

// loadImages loads the topology's images that Podman does not hold yet, side by side.
func (r *Runtime) loadImages(ctx context.Context, t topology.Topology, opts stack.UpOptions) error {
	ims := t.Images()
	errs := make([]error, len(ims))
	sem := make(chan struct{}, loadConcurrency)
	var wg sync.WaitGroup
	for _, im := range ims {
		if _, ok := r.images[im.Name]; !ok {
			return fmt.Errorf("image %s was not built", im.Name)
		}
	}
	for i, im := range ims {
		img := r.images[im.Name]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			loaded, err := r.LoadImage(ctx, img)
			if err != nil {
				errs[i] = err
				return
			}
			if loaded {
				r.progress(opts, "loaded %s into podman (%s)", img.Ref, time.Since(start).Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Runtime) progress(opts stack.UpOptions, format string, args ...any) {
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, format+"\n", args...)
	}
}

// Up loads the images, then for each architecture makes its network and volumes and starts its
// services level by level (a level's services start together once the levels before are
// ready). Pods of the architecture that the topology no longer lists are removed.
func (r *Runtime) Up(ctx context.Context, t topology.Topology, opts stack.UpOptions) error {
	opts.Progress = stack.SyncWriter(opts.Progress)
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = stack.DefaultReadyTimeout
	}
	// Shared budgets' groups first: one that cannot be made stops up before it made anything.
	parents := map[string]string{}
	for _, a := range t.Archs {
		p, err := r.cgroupParent(a)
		if err != nil {
			return err
		}
		parents[a.Name] = p
	}
	// The identities, each folder given to the pods' user, who reads it mounted read-only,
	// and the CA too when the renewer's pod (that user) renews them.
	ids, err := stack.Identities(r.stack, t, opts, &[2]int{imagebuild.UID, imagebuild.UID})
	if err != nil {
		return err
	}
	// The NATS users (none when insecure), their file read by the NATS pods' user.
	var users natsauth.Creds
	if !opts.Insecure {
		if users, err = natsauth.Setup(opts.PKI, t); err != nil {
			return err
		}
		for _, p := range []string{users.Dir, users.Path()} {
			if err := os.Chown(p, imagebuild.UID, imagebuild.UID); err != nil {
				return fmt.Errorf("NATS users: %w", err)
			}
		}
	}
	if err := r.loadImages(ctx, t, opts); err != nil {
		return err
	}
	// The collector first, so that the first spans of the others find it.
	var collector *collectorLink
	var rejoinErr error
	if ca, ok := t.CollectorArch(); ok {
		if _, err := r.upArch(ctx, ca, opts, ids, users, nil, ""); err != nil {
			return err
		}
		var pod string
		for _, s := range ca.Services {
			for _, p := range s.Processes() {
				pod = stack.ObjectName(r.stack, ca.Name, p.Name)
			}
		}
		c, cancel := r.with(ctx)
		collector, err = r.linkCollector(c, pod)
		cancel()
		if err != nil {
			return err
		}
		// A collector remade joins again the networks of the architectures up that this
		// topology does not name (those it names, upArch joins). A failure there costs
		// those architectures their traces, not this up its architectures: it is reported
		// once they are up.
		rejoinErr = r.rejoinCollector(ctx, t, collector)
	}
	// Architectures are independent: bring them up side by side, the renewer's with them
	// (it exports nothing: the collector need not join its network).
	archs := slices.DeleteFunc(stack.Archs(t, opts), func(a topology.Arch) bool { return a.Name == topology.Telemetry })
	errs := make([]error, len(archs))
	var wg sync.WaitGroup
	for i, a := range archs {
		link := collector
		if topology.StackArch(a.Name) {
			link = nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.upArch(ctx, a, opts, ids, users, link, parents[a.Name])
		}()
	}
	wg.Wait()
	if rejoinErr != nil {
		errs = append(errs, fmt.Errorf("the collector in the networks of the architectures up that this up does not name: %w", rejoinErr))
	}
	return errors.Join(errs...)
}

// upArch brings one architecture up, its pods under the cgroup parent given ("" for
// Podman's default) and exporting to the collector given (nil for none), and returns its
// network's subnet.
func (r *Runtime) upArch(ctx context.Context, a topology.Arch, opts stack.UpOptions, ids map[string]string, users natsauth.Creds, collector *collectorLink, parent string) (*net.IPNet, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	levels, err := a.Levels()
	if err != nil {
		return nil, err
	}
	// The stack's own networks need no names: the collector's pod is reached by address,
	// the renewer's by nothing but its published probe.
	subnet, err := r.ensureNetwork(c, a.Name, !topology.StackArch(a.Name))
	if err != nil {
		return nil, err
	}
	// The pods reach the stack's collector where its pod joins the architecture's network,
	// at a fixed address (collectorIP), and export there. Each pod so has one network
	// attachment, not two (its own and the collector's): Podman 4.3 tears attachments down
	// one at a time under one lock (CNI), about 0.2-0.3 s each on this machine, which was
	// most of a down and of a pod's remaking.
	var export map[string]string // nil: nowhere, or where opts.Env says
	if collector != nil {
		if err := r.joinCollector(c, collector, a.Name, subnet); err != nil {
			return nil, err
		}
		export = topology.ExportEnv(net.JoinHostPort(collectorIP(subnet).String(), strconv.Itoa(topology.CollectorHTTPPort)), nil)
	}
	want := map[string]desired{}
	byService := map[string][]desired{}
	levelOf := map[string]int{}
	for l, level := range levels {
		for _, s := range level {
			levelOf[s.Name] = l
		}
	}
	i := 0
	for _, s := range a.Services {
		for _, p := range s.Processes() {
			d, err := r.desire(a, s, p, levelOf[s.Name], opts, ids, users, serviceIP(subnet, i), export, parent)
			if err != nil {
				return nil, err
			}
			i++
			want[d.Pod] = d
			byService[s.Name] = append(byService[s.Name], d)
		}
	}
	existing, err := pods.List(c, new(pods.ListOptions).WithFilters(r.filter(a.Name)))
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	have := map[string]*entities.ListPodsReport{}
	for _, p := range existing {
		if _, ok := want[p.Name]; !ok {
			r.progress(opts, "removing %s (not in the topology)", p.Name)
			if err := r.removePod(c, p.Name); err != nil {
				return nil, err
			}
			continue
		}
		have[p.Name] = p
	}
	if err := stack.UpLevels(c, levels, func(c context.Context, s topology.Service) error {
		return r.upProcesses(c, byService[s.Name], have, opts)
	}); err != nil {
		return nil, err
	}
	if a.Mode != "" && a.Mode != topology.Shared {
		// Its pods, remade out of the group of a former shared budget, leave that empty.
		if fs, err := cgroup.Open(r.cgroupRoot); err == nil {
			if _, err := fs.Remove(r.stack, a.Name, 10*time.Second); err != nil {
				r.progress(opts, "warning: %s: the group of its former shared budget: %v", a.Name, err)
			}
		}
	}
	return subnet, nil
}

// upProcesses brings up the pods of one service's processes: those missing, stopped or
// unchanged together, then those that run another spec one at a time (stack.UpOptions: the
// rolling re-up), each given bounded.RedialWithin for its callers to find it before the next
// old one is stopped.
func (r *Runtime) upProcesses(c context.Context, ds []desired, have map[string]*entities.ListPodsReport, opts stack.UpOptions) error {
	var roll, rest []desired
	diffs := map[string]*drift{} // of the pods that exist, read once per up
	for _, d := range ds {
		if h := have[d.Pod]; h != nil {
			diff := r.drift(c, d, h)
			diffs[d.Pod] = &diff
		}
		if diffs[d.Pod] != nil && diffs[d.Pod].running() {
			roll = append(roll, d)
		} else {
			rest = append(rest, d)
		}
	}
	return stack.UpReplicas(c, rest, roll, func(c context.Context, d desired) error { return r.upService(c, d, diffs[d.Pod], opts) },
		func(k int, d desired) {
			if len(ds) > 1 {
				r.progress(opts, "%s/%s: rolling replica %d of %d", d.Arch, d.Process.Name, k+1, len(roll))
			}
		})
}

// upService brings up the pod of d as it is: made, its app replaced, or left as it runs.
// diff is how the pod that exists differs from d, nil when there is none.
func (r *Runtime) upService(c context.Context, d desired, diff *drift, opts stack.UpOptions) error {
	start := time.Now()
	verb := "started"
	var ports map[int]string // where the pod publishes, when made here
	switch {
	case diff != nil && diff.why == "":
		verb = "unchanged"
	case diff != nil && !diff.pod:
		r.progress(opts, "%s: %s, replacing its app container", d.Pod, diff.why)
		if err := r.replaceApp(c, d); err != nil {
			return err
		}
	case diff != nil:
		r.progress(opts, "%s: %s, remaking it", d.Pod, diff.why)
		if err := r.removePod(c, d.Pod); err != nil {
			return err
		}
		fallthrough
	default:
		// A fixed address that another program holds fails a new pod at once, before it is
		// made for nothing. A pod remade just now skips this: its old one's addresses may
		// still be held a moment, and makePod gives Podman time to let go of them.
		if diff == nil {
			if taken := fixedAddrTaken(c, d, heldWait); taken != nil {
				return taken
			}
		}
		var err error
		if ports, err = r.makePod(c, d); err != nil {
			return err
		}
	}
	readyFrom := time.Now()
	defer func() { r.logger.Debug("pod ready", "pod", d.Pod, "wait", time.Since(readyFrom)) }()
	if ports == nil {
		var err error
		if ports, err = r.hostPorts(c, d.Pod); err != nil {
			return err
		}
	}
	addr, err := portAddr(d.Pod, ports, d.Service.Probe.Port)
	if err != nil {
		return err
	}
	alive := r.aliveCheck(c, d.Pod, d.Arch, d.Process.Name)
	if err := stack.WaitReady(c, d.Service.Probe, addr, d.TLS, opts.ReadyTimeout, alive); err != nil {
		return fmt.Errorf("%s: %w", d.Pod, err)
	}
	r.progress(opts, "%s/%s: %s, ready on %s (%s)", d.Arch, d.Process.Name, verb, addr, time.Since(start).Round(time.Millisecond))
	return nil
}

// portTries is how many times makePod makes a pod whose host ports Podman picks.
const portTries = 3

// makePod creates the pod and starts it, and returns where its published ports are on the
// host (hostPorts). A host port Podman picked (HostPort 0) when it created the pod is free
// then, and bound only when the pod starts: in between, any connection of the machine can
// take it as its own source port (Podman picks from the same ephemeral range). So the
// ports are checked between the creation and the start, and a pod one of whose picked
// ports was taken is made again, with new ports, before it starts. A start that fails
// costs more than the try: Podman 4 binds a pod's host ports one by one when it starts it
// and keeps (in its API service, until its garbage collector closes them, minutes later)
// those it had bound before the one that failed, the stack's own edge among them. A fixed
// host address in use (an edge another program listens on) is no such race: the pod is
// removed and the error says which address, and no try more is made. A pod that does not
// start is never left behind.
func (r *Runtime) makePod(c context.Context, d desired) (map[int]string, error) {
	for try := 1; ; try++ {
		t0 := time.Now()
		if err := r.createPod(c, d); err != nil {
			return nil, err
		}
		if r.afterCreate != nil {
			r.afterCreate(d.Pod)
		}
		ports, err := r.startPod(c, d)
		if err == nil {
			r.logger.Debug("pod made", "pod", d.Pod, "took", time.Since(t0), "tries", try)
			return ports, nil
		}
		if derr := r.dropPod(c, d.Pod); derr != nil {
			return nil, errors.Join(err, derr)
		}
		var taken *stack.AddrTakenError
		portRace := errors.Is(err, errPickedTaken) || strings.Contains(err.Error(), syscall.EADDRINUSE.Error())
		if errors.As(err, &taken) || !portRace {
			return nil, err
		}
		// The pod is gone, and its fixed addresses were free before it started: one still
		// in use once Podman has had releaseWait to let go of it is another program's.
		if taken := fixedAddrTaken(c, d, releaseWait); taken != nil {
			return nil, taken
		}
		if try == portTries || !slices.ContainsFunc(d.Ports, func(p nettypes.PortMapping) bool { return p.HostPort == 0 }) {
			return nil, err
		}
		r.logger.Warn("a host port Podman picked was taken before the pod started; making the pod again", "pod", d.Pod, "err", err)
	}
}

// errPickedTaken is startPod's error when a host port Podman picked for the pod was taken
// before the pod started.
var errPickedTaken = errors.New("a host port Podman picked is taken")

// startPod checks that the created pod's host ports are still free, fixed ones (given
// releaseWait: a pod remade just now had them a moment ago) and picked ones, and starts it.
func (r *Runtime) startPod(c context.Context, d desired) (map[int]string, error) {
	ports, err := r.hostPorts(c, d.Pod)
	if err != nil {
		return nil, err
	}
	if taken := fixedAddrTaken(c, d, releaseWait); taken != nil {
		return nil, taken
	}
	for _, p := range d.Ports {
		if addr, ok := ports[int(p.ContainerPort)]; ok && p.HostPort == 0 {
			if err := stack.CheckPort(addr); err != nil {
				return nil, fmt.Errorf("pod %s: %w: %w", d.Pod, errPickedTaken, err)
			}
		}
	}
	if _, err := pods.Start(c, d.Pod, nil); err != nil {
		return nil, fmt.Errorf("start pod %s: %w", d.Pod, err)
	}
	return ports, nil
}

// fixedAddrTaken returns the error of the first host address d fixes (HostPort not 0) that a
// process here cannot have, nil when there is none. An address gets wait to come free
// before it counts as taken: a pod removed a moment ago, or one whose start failed, can
// leave it held for a while by its conmon or by Podman's API service. Podman 4 binds a
// pod's host ports one by one when it starts it, and when one fails it keeps the ones it
// had bound before (libpod's bindPorts returns them with the error, and its caller drops
// them unclosed) until its garbage collector closes them, which can take minutes: no wait
// covers that, which is why makePod checks a pod's ports before it starts it.
func fixedAddrTaken(c context.Context, d desired, wait time.Duration) error {
	for _, p := range d.Ports {
		if p.HostPort == 0 {
			continue
		}
		host := p.HostIP
		if host == "" {
			host = "127.0.0.1"
		}
		addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
		err := stack.CheckPort(addr)
		for deadline := time.Now().Add(wait); err != nil && time.Now().Before(deadline); err = stack.CheckPort(addr) {
			select {
			case <-c.Done():
				return c.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err != nil {
			return &stack.AddrTakenError{Arch: d.Arch, Service: d.Process.Name, Addr: addr, Err: err}
		}
	}
	return nil
}

// releaseWait is how long fixedAddrTaken lets Podman release an address after a pod's
// removal; heldWait how long an address may stay in use before a new pod is made (a down a
// moment ago), which an address another program holds costs every up.
const (
	releaseWait = 3 * time.Second
	heldWait    = time.Second
)

// aliveCheck is WaitReady's check that the pod's app container still runs: it fails when the
// container is down, and when the supervisor (restartPolicy) restarted it since the first
// check: a process that exits while it starts would otherwise be restarted over and over
// until the ready timeout, and up would say only that it never became ready.
func (r *Runtime) aliveCheck(c context.Context, pod, arch, service string) func() error {
	restarts := int32(-1)
	return func() error {
		data, err := containers.Inspect(c, containerName(pod), nil)
		if err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		if restarts < 0 {
			restarts = data.RestartCount
		}
		switch {
		case data.State != nil && !data.State.Running:
			return fmt.Errorf("container %s %s (exit code %d); see `mitosis logs %s/%s`",
				containerName(pod), data.State.Status, data.State.ExitCode, arch, service)
		case data.RestartCount > restarts:
			return fmt.Errorf("container %s exited and was restarted %d time(s) while it started; see `mitosis logs %s/%s`",
				containerName(pod), data.RestartCount-restarts, arch, service)
		}
		return nil
	}
}

// drift is how a pod that exists differs from what is desired of it.
type drift struct {
	why string // "" when it is as desired and runs, else what up says of it
	pod bool   // the pod must be made again, not its app container alone
}

// running reports that the pod runs, but another spec.
func (d drift) running() bool { return d.why == changed }

// changed is drift's why for a pod that runs another spec.
const changed = "changed"

// drift compares the pod have with d. A pod whose own shape (labelPodSpec) differs is made
// again, and so is one whose app container is gone or not running (its infra container may
// be gone too); when only the app's spec differs (a new image, its environment, command or
// limits), the app container alone is replaced, in the pod, which keeps its network
// attachment and published ports: Podman 4.3 tears an attachment down and sets one up
// one at a time under CNI's lock, most of a pod's remaking (0.8-1.0 s of the 1.0-1.5 s of a
// changed service, measured 2026-12-07 with both architectures up).
func (r *Runtime) drift(c context.Context, d desired, have *entities.ListPodsReport) drift {
	if have.Labels[labelPodSpec] != d.PodHash {
		return drift{why: changed, pod: true}
	}
	data, err := containers.Inspect(c, containerName(d.Pod), nil)
	if err != nil {
		return drift{why: "app container missing", pod: true}
	}
	if why := r.notRunning(c, data); why != "" {
		return drift{why: why, pod: true}
	}
	if data.Config == nil || data.Config.Labels[stack.LabelSpec] != d.Hash {
		return drift{why: changed}
	}
	return drift{}
}

// replaceApp stops the app container of d's pod and puts a new one in its place, made from d.
func (r *Runtime) replaceApp(c context.Context, d desired) error {
	r.stopApps(c, d.Pod)
	name := containerName(d.Pod)
	if _, err := containers.Remove(c, name, new(containers.RemoveOptions).WithForce(true)); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	if d.Volume != "" {
		if err := r.ensureVolume(c, d); err != nil {
			return err
		}
	}
	// A pod whose new app fails to be made or to start is not left behind with none: it goes,
	// as a pod that createPod could not finish does, and the next up makes it whole.
	if _, err := containers.CreateWithSpec(c, appSpec(d, r.podLabels(d.podShape())), nil); err != nil {
		return errors.Join(fmt.Errorf("create container %s: %w", name, err), r.dropPod(c, d.Pod))
	}
	if err := containers.Start(c, name, nil); err != nil {
		return errors.Join(fmt.Errorf("start container %s: %w", name, err), r.dropPod(c, d.Pod))
	}
	return nil
}

// whyNotRunning says why the pod's app container does not run, "" when it does.
func (r *Runtime) whyNotRunning(c context.Context, pod string) string {
	data, err := containers.Inspect(c, containerName(pod), nil)
	if err != nil {
		return "app container missing"
	}
	return r.notRunning(c, data)
}

// notRunning says why the container data describes does not run, "" when it does.
func (r *Runtime) notRunning(c context.Context, data *define.InspectContainerData) string {
	switch {
	case data.State == nil || !data.State.Running:
		return "not running"
	case !r.processAlive(c, data.Name):
		return lostDetail
	}
	return ""
}

// lostDetail describes a container whose process is gone while Podman says it runs.
const lostDetail = "its process is gone though Podman says running"

func (r *Runtime) ensureVolume(c context.Context, d desired) error {
	if ok, err := volumes.Exists(c, d.Volume, nil); err == nil && ok {
		return nil
	}
	_, err := volumes.Create(c, entities.VolumeCreateOptions{
		Name:   d.Volume,
		Labels: r.labels(d.Arch, d.Process.Name),
	}, nil)
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create volume %s: %w", d.Volume, err)
	}
	return nil
}

func (r *Runtime) createPod(c context.Context, d desired) error {
	if d.Volume != "" {
		if err := r.ensureVolume(c, d); err != nil {
			return err
		}
	}
	p := d.podShape()
	labels := r.podLabels(p)
	ps := specgen.NewPodSpecGenerator()
	ps.Name = p.Pod
	ps.Labels = maps.Clone(labels)
	ps.Labels[labelPodSpec] = d.PodHash
	ps.Hostname = p.Process.Name
	ps.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
	pn := nettypes.PerNetworkOptions{Aliases: []string{p.Process.Name}}
	if p.IP != nil {
		pn.StaticIPs = []net.IP{p.IP}
		pn.StaticMAC = serviceMAC(p.IP)
	}
	ps.Networks = map[string]nettypes.PerNetworkOptions{p.Network: pn}
	ps.PortMappings = p.Ports
	// Under cgroupfs Podman makes the pod's group <parent>/<pod ID>, its conmon and
	// containers' below it (libpod's platformMakePod): a limit on the parent holds them all.
	ps.CgroupParent = p.CgroupParent
	if _, err := pods.CreatePodFromSpec(c, &entities.PodSpec{PodSpecGen: *ps}); err != nil {
		return fmt.Errorf("create pod %s: %w", p.Pod, err)
	}

	s := appSpec(d, labels)
	if _, err := containers.CreateWithSpec(c, s, nil); err != nil {
		_ = r.removePod(c, d.Pod)
		return fmt.Errorf("create container %s: %w", s.Name, err)
	}
	return nil
}

// podLabels are the labels of the pod p and of its app container: each adds the hash of its
// own spec (labelPodSpec, stack.LabelSpec).
func (r *Runtime) podLabels(p podShape) map[string]string {
	labels := r.labels(p.Arch, p.Process.Name)
	labels[labelProbe] = p.ProbeDesc
	labels[labelLevel] = strconv.Itoa(p.Level)
	if p.TLS != "" {
		labels[labelTLS] = p.TLS
	}
	if p.Budget != "" {
		labels[labelBudget] = p.Budget
	}
	if p.Process.N > 0 {
		labels[stack.LabelReplica] = p.Service
	}
	return labels
}

// appSpec is the spec of the app container of the pod d. Its identity is the folder
// mounted, not its files one by one: a renewal renames new files into the folder (platform/
// identity), which a bind mount of the folder shows at once, where one of a file would go on
// showing the file it was made with (the inode the old name had). So up and the renewer renew a
// running pod's certificate without remaking it; the process reads it at its next handshake.
func appSpec(d desired, labels map[string]string) *specgen.SpecGenerator {
	s := specgen.NewSpecGenerator(d.Image, false)
	s.Name = containerName(d.Pod)
	s.Pod = d.Pod
	s.Labels = make(map[string]string, len(labels)+1)
	maps.Copy(s.Labels, labels)
	s.Labels[stack.LabelSpec] = d.Hash
	s.Env = d.Env
	s.Command = d.Args
	s.User = fmt.Sprintf("%d:%d", imagebuild.UID, imagebuild.UID)
	s.ReadOnlyFilesystem = true
	s.ReadWriteTmpfs = true // /tmp, /var/tmp and /run as tmpfs on the read-only root
	s.CapDrop = []string{"ALL"}
	s.NoNewPrivileges = true
	s.RestartPolicy = restartPolicy
	timeout := uint(stopTimeout)
	s.StopTimeout = &timeout
	s.LogConfiguration = &specgen.LogConfig{Driver: "k8s-file", Size: 16 << 20}
	s.ResourceLimits = resources(d.Service)
	if d.Volume != "" {
		s.Volumes = []*specgen.NamedVolume{{Name: d.Volume, Dest: d.Service.DataDir}}
	}
	if d.TLS != "" {
		s.Mounts = append(s.Mounts, spec.Mount{Type: "bind", Source: d.TLS, Destination: topology.TLSMount, Options: []string{"ro", "rbind"}})
	}
	if d.NATSUsers != "" {
		s.Mounts = append(s.Mounts, spec.Mount{Type: "bind", Source: d.NATSUsers, Destination: natsUsersMount, Options: []string{"ro", "rbind"}})
	}
	if d.PKI != "" {
		s.Mounts = append(s.Mounts, spec.Mount{Type: "bind", Source: d.PKI, Destination: topology.PKIMount, Options: []string{"rw", "rbind"}})
	}
	return s
}

// resources turns the topology's limits into the OCI spec's: CPU as a CFS quota per 100ms,
// rounded (0.141 CPUs is 14099.99... µs in floating point, and a quota truncated to 14099
// would not add up to the budget).
func resources(s topology.Service) *spec.LinuxResources {
	res := &spec.LinuxResources{}
	if s.CPUs > 0 {
		period := uint64(100_000)
		quota := int64(math.Round(s.CPUs * float64(period)))
		res.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
	}
	if s.MemoryMB > 0 {
		limit := int64(s.MemoryMB) << 20
		res.Memory = &spec.LinuxMemory{Limit: &limit}
	}
	return res
}

// removePod stops the pod's processes (stopApps), then removes the pod (dropPod).
func (r *Runtime) removePod(c context.Context, name string) error {
	r.stopApps(c, name)
	return r.dropPod(c, name)
}
