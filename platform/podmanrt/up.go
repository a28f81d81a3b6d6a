package podmanrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/network"
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
	"github.com/mitosis-dev/mitosis/services/bounded"
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

// NetworkName is the network of one architecture of the stack.
func (r *Runtime) NetworkName(arch string) string { return r.stack + "-" + arch }

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
	Hash      string
	ProbeDesc string
	TLS       string // the host folder of its identity, mounted read-only at topology.TLSMount; "" for none
	NATSUsers string // the host folder of the NATS users, mounted read-only at natsUsersMount (the NATS pod); "" for none
	PKI       string `json:",omitempty"` // the stack's PKI folder, mounted read-write at topology.PKIMount (the renewer's pod); "" for none
	// CgroupParent is the architecture's group under a shared budget (cgroup.Path), "" for
	// Podman's default.
	CgroupParent string
	Budget       string // labelBudget's value
}

// serviceIP is the i-th process's address in the network (every replica of every service
// in turn): the subnet's .10 and up. A remade pod gets its old address back, so that its
// peers' connections (gRPC resolves DNS again only every 30s) find it at once.
func serviceIP(subnet *net.IPNet, i int) net.IP {
	if subnet == nil {
		return nil
	}
	ip := subnet.IP.To4()
	if ip == nil {
		return nil
	}
	out := make(net.IP, 4)
	copy(out, ip)
	out[3] += byte(10 + i)
	if !subnet.Contains(out) {
		return nil
	}
	return out
}

// collectorIP is the collector's fixed address in an architecture's network: below the
// processes' (serviceIP), above the gateway.
func collectorIP(subnet *net.IPNet) net.IP { return serviceIP(subnet, -1) }

// collectorLink is the collector's pod as one up joins it to the architectures' networks:
// its infra container (whose network namespace the collector's process shares) and where
// that one is attached, read once per up, so that an up that finds the collector in a
// network at its address asks Podman nothing more about it.
type collectorLink struct {
	pod, infra string
	mu         sync.Mutex        // the architectures come up side by side: one join at a time
	at         map[string]string // network name -> the collector's address there
}

// linkCollector reads where the collector's pod is attached: one inspect of the pod, one of
// its infra container.
func (r *Runtime) linkCollector(c context.Context, pod string) (*collectorLink, error) {
	data, err := pods.Inspect(c, pod, nil)
	if err != nil {
		return nil, fmt.Errorf("collector: inspect pod %s: %w", pod, err)
	}
	infra, err := containers.Inspect(c, data.InfraContainerID, nil)
	if err != nil {
		return nil, fmt.Errorf("collector: inspect the infra container of %s: %w", pod, err)
	}
	l := &collectorLink{pod: pod, infra: data.InfraContainerID, at: map[string]string{}}
	if infra.NetworkSettings != nil {
		for name, n := range infra.NetworkSettings.Networks {
			if n != nil {
				l.at[name] = n.IPAddress
			}
		}
	}
	return l, nil
}

// joinCollector connects the collector's pod to an architecture's network at collectorIP,
// unless it is there already; a pod that runs is connected as it runs.
func (r *Runtime) joinCollector(c context.Context, l *collectorLink, arch string, subnet *net.IPNet) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip := collectorIP(subnet)
	if ip == nil {
		return fmt.Errorf("network %s has no IPv4 subnet for the collector's fixed address", r.NetworkName(arch))
	}
	name := r.NetworkName(arch)
	if at, ok := l.at[name]; ok {
		if at == ip.String() {
			return nil
		}
		// Joined at another address (by hand): leave and join at the one the pods use.
		if err := network.Disconnect(c, name, l.infra, new(network.DisconnectOptions).WithForce(true)); err != nil {
			return fmt.Errorf("collector: leave network %s: %w", name, err)
		}
		delete(l.at, name)
	}
	start := time.Now()
	err := network.Connect(c, name, l.infra, &nettypes.PerNetworkOptions{StaticIPs: []net.IP{ip}, StaticMAC: serviceMAC(ip)})
	if err != nil {
		return fmt.Errorf("collector: join network %s at %s: %w", name, ip, err)
	}
	l.at[name] = ip.String()
	r.logger.Debug("collector joined", "network", name, "ip", ip, "took", time.Since(start))
	return nil
}

// serviceMAC is the fixed hardware address that goes with a fixed IP: a remade pod that
// kept its address but took a new MAC would not be answered by its peers until their ARP
// caches let the old one go (seconds to tens of seconds).
func serviceMAC(ip net.IP) nettypes.HardwareAddr {
	v4 := ip.To4()
	return nettypes.HardwareAddr{0x02, 0x6d, v4[0], v4[1], v4[2], v4[3]} // locally administered
}

func (r *Runtime) desire(a topology.Arch, s topology.Service, p topology.Replica, opts stack.UpOptions, ids map[string]string, users natsauth.Creds, ip net.IP, export map[string]string, parent string) (desired, error) {
	img, ok := r.images[s.Image]
	if !ok {
		return desired{}, fmt.Errorf("%s/%s: image %s was not built", a.Name, s.Name, s.Image)
	}
	pl, _ := img.PlatformImage(hostPlatform())
	d := desired{
		Pod:     stack.ObjectName(r.stack, a.Name, p.Name),
		Arch:    a.Name,
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
	return d, nil
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

// rejoinCollector joins the collector to the networks of the stack's architectures that t
// does not name, where it is not attached already.
func (r *Runtime) rejoinCollector(ctx context.Context, t topology.Topology, collector *collectorLink) error {
	c, cancel := r.with(ctx)
	defer cancel()
	nets, err := network.List(c, new(network.ListOptions).WithFilters(r.filter()))
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets {
		arch := n.Labels[stack.LabelArch]
		if topology.StackArch(arch) || slices.ContainsFunc(t.Archs, func(a topology.Arch) bool { return a.Name == arch }) {
			continue
		}
		for _, sn := range n.Subnets {
			if sn.Subnet.IP.To4() != nil {
				if err := r.joinCollector(c, collector, arch, &net.IPNet{IP: sn.Subnet.IP, Mask: sn.Subnet.Mask}); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
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
			d, err := r.desire(a, s, p, opts, ids, users, serviceIP(subnet, i), export, parent)
			if err != nil {
				return nil, err
			}
			d.Level = levelOf[s.Name]
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
	for _, level := range levels {
		errs := make([]error, len(level))
		var wg sync.WaitGroup
		for i, s := range level {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = r.upProcesses(c, byService[s.Name], have, opts)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
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
	for _, d := range ds {
		if h := have[d.Pod]; h != nil && h.Labels[stack.LabelSpec] != d.Hash && r.whyNotRunning(c, d.Pod) == "" {
			roll = append(roll, d)
		} else {
			rest = append(rest, d)
		}
	}
	errs := make([]error, len(rest))
	var wg sync.WaitGroup
	for i, d := range rest {
		wg.Go(func() { errs[i] = r.upService(c, d, have[d.Pod], opts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for k, d := range roll {
		if k > 0 {
			select {
			case <-c.Done():
				return c.Err()
			case <-time.After(bounded.RedialWithin()):
			}
		}
		if len(ds) > 1 {
			r.progress(opts, "%s/%s: rolling replica %d of %d", d.Arch, d.Process.Name, k+1, len(roll))
		}
		if err := r.upService(c, d, have[d.Pod], opts); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runtime) upService(c context.Context, d desired, have *entities.ListPodsReport, opts stack.UpOptions) error {
	start := time.Now()
	verb := "started"
	notRunning := ""
	if have != nil && have.Labels[stack.LabelSpec] == d.Hash {
		notRunning = r.whyNotRunning(c, d.Pod)
	}
	switch {
	case have != nil && have.Labels[stack.LabelSpec] == d.Hash && notRunning == "":
		verb = "unchanged"
	case have != nil:
		why := "changed"
		if notRunning != "" {
			why = notRunning
		}
		r.progress(opts, "%s: %s, remaking it", d.Pod, why)
		if err := r.removePod(c, d.Pod); err != nil {
			return err
		}
		fallthrough
	default:
		if err := r.makePod(c, d); err != nil {
			return err
		}
	}
	readyFrom := time.Now()
	defer func() { r.logger.Debug("pod ready", "pod", d.Pod, "wait", time.Since(readyFrom)) }()
	addr, err := r.hostAddr(c, d.Pod, d.Service.Probe.Port)
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

// makePod creates the pod and starts it. A host port Podman picked (HostPort 0) when it
// created the pod is free then, and bound only when the pod starts: in between, any
// connection of the machine can take it as its own source port (Podman picks from the same
// ephemeral range), and the start fails with "address already in use". Then the pod is made
// again, with new ports. A fixed host address in use (an edge another program listens on)
// is no such race: the pod is removed and the error says which address, and no try more is
// made. A pod that does not start is never left behind.
func (r *Runtime) makePod(c context.Context, d desired) error {
	picked := slices.ContainsFunc(d.Ports, func(p nettypes.PortMapping) bool { return p.HostPort == 0 })
	for try := 1; ; try++ {
		t0 := time.Now()
		if err := r.createPod(c, d); err != nil {
			return err
		}
		if r.afterCreate != nil {
			r.afterCreate(d.Pod)
		}
		t1 := time.Now()
		_, err := pods.Start(c, d.Pod, nil)
		if err == nil {
			r.logger.Debug("pod made", "pod", d.Pod, "create", t1.Sub(t0), "start", time.Since(t1), "tries", try)
			return nil
		}
		err = fmt.Errorf("start pod %s: %w", d.Pod, err)
		if derr := r.dropPod(c, d.Pod); derr != nil {
			return errors.Join(err, derr)
		}
		if !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
			return err
		}
		// The pod is gone, so a fixed address still in use is another program's.
		if taken := fixedAddrTaken(d); taken != nil {
			return taken
		}
		if !picked || try == portTries {
			return err
		}
		r.logger.Warn("a host port Podman picked was taken before the pod started; making the pod again", "pod", d.Pod, "err", err)
	}
}

// fixedAddrTaken returns the error of the first host address d fixes (HostPort not 0) that a
// process here cannot have, nil when there is none.
func fixedAddrTaken(d desired) error {
	for _, p := range d.Ports {
		if p.HostPort == 0 {
			continue
		}
		host := p.HostIP
		if host == "" {
			host = "127.0.0.1"
		}
		addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
		if err := stack.CheckPort(addr); err != nil {
			return &stack.AddrTakenError{Arch: d.Arch, Service: d.Process.Name, Addr: addr, Err: err}
		}
	}
	return nil
}

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

// whyNotRunning says why the pod's app container does not run, "" when it does.
func (r *Runtime) whyNotRunning(c context.Context, pod string) string {
	data, err := containers.Inspect(c, containerName(pod), nil)
	switch {
	case err != nil:
		return "app container missing"
	case data.State == nil || !data.State.Running:
		return "not running"
	case !r.processAlive(c, containerName(pod)):
		return lostDetail
	}
	return ""
}

// lostDetail describes a container whose process is gone while Podman says it runs.
const lostDetail = "its process is gone though Podman says running"

// processAlive tells whether a container Podman calls running still has its process.
// Podman's record keeps saying "running" when the process and its conmon were killed behind
// its back (every process of the machine killed without a reboot, as a suspended sandbox or
// a reused CI machine does); nothing serves then, and its published ports' forwarding rules
// lead nowhere. Asking for the container's processes is what tells.
func (r *Runtime) processAlive(c context.Context, ctr string) bool {
	_, err := containers.Top(c, ctr, nil)
	return err == nil
}

// ensureNetwork makes the architecture's network unless it exists, and returns its subnet.
func (r *Runtime) ensureNetwork(c context.Context, arch string, dns bool) (*net.IPNet, error) {
	name := r.NetworkName(arch)
	n, err := network.Inspect(c, name, nil)
	if err == nil && n.Labels[stack.LabelStack] != r.stack {
		return nil, fmt.Errorf("network %s exists but is not this stack's (labels %v)", name, n.Labels)
	}
	if err != nil {
		n, err = network.Create(c, &nettypes.Network{
			Name:       name,
			Driver:     "bridge",
			DNSEnabled: dns,
			Labels:     r.labels(arch, ""),
		})
		if err != nil && strings.Contains(err.Error(), "already exists") {
			n, err = network.Inspect(c, name, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("create network %s: %w", name, err)
		}
	}
	for _, sn := range n.Subnets {
		if sn.Subnet.IP.To4() != nil {
			return &net.IPNet{IP: sn.Subnet.IP, Mask: sn.Subnet.Mask}, nil
		}
	}
	return nil, nil
}

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
	labels := r.labels(d.Arch, d.Process.Name)
	labels[stack.LabelSpec] = d.Hash
	labels[labelProbe] = d.ProbeDesc
	labels[labelLevel] = strconv.Itoa(d.Level)
	if d.TLS != "" {
		labels[labelTLS] = d.TLS
	}
	if d.Budget != "" {
		labels[labelBudget] = d.Budget
	}
	if d.Process.N > 0 {
		labels[stack.LabelReplica] = d.Service.Name
	}

	ps := specgen.NewPodSpecGenerator()
	ps.Name = d.Pod
	ps.Labels = labels
	ps.Hostname = d.Process.Name
	ps.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
	pn := nettypes.PerNetworkOptions{Aliases: []string{d.Process.Name}}
	if d.IP != nil {
		pn.StaticIPs = []net.IP{d.IP}
		pn.StaticMAC = serviceMAC(d.IP)
	}
	ps.Networks = map[string]nettypes.PerNetworkOptions{d.Network: pn}
	ps.PortMappings = d.Ports
	// Under cgroupfs Podman makes the pod's group <parent>/<pod ID>, its conmon and
	// containers' below it (libpod's platformMakePod): a limit on the parent holds them all.
	ps.CgroupParent = d.CgroupParent
	if _, err := pods.CreatePodFromSpec(c, &entities.PodSpec{PodSpecGen: *ps}); err != nil {
		return fmt.Errorf("create pod %s: %w", d.Pod, err)
	}

	s := appSpec(d, labels)
	if _, err := containers.CreateWithSpec(c, s, nil); err != nil {
		_ = r.removePod(c, d.Pod)
		return fmt.Errorf("create container %s: %w", s.Name, err)
	}
	return nil
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
	s.Labels = labels
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

// hostAddr is where a pod's container port is published on the host.
func (r *Runtime) hostAddr(c context.Context, pod string, port int) (string, error) {
	ports, err := r.hostPorts(c, pod)
	if err != nil {
		return "", err
	}
	if addr, ok := ports[port]; ok {
		return addr, nil
	}
	return "", fmt.Errorf("pod %s publishes no host port for %d", pod, port)
}

// hostPorts is where each of a pod's published TCP container ports is on the host.
func (r *Runtime) hostPorts(c context.Context, pod string) (map[int]string, error) {
	data, err := pods.Inspect(c, pod, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect pod %s: %w", pod, err)
	}
	out := map[int]string{}
	if data.InfraConfig == nil {
		return out, nil
	}
	for key, binds := range data.InfraConfig.PortBindings {
		p, ok := strings.CutSuffix(key, "/tcp")
		port, err := strconv.Atoi(p)
		if !ok || err != nil {
			continue
		}
		for _, b := range binds {
			if b.HostPort != "" && b.HostPort != "0" {
				ip := b.HostIP
				if ip == "" {
					ip = "127.0.0.1"
				}
				out[port] = net.JoinHostPort(ip, b.HostPort)
				break
			}
		}
	}
	return out, nil
}

// removePod stops the pod's processes (stopApps), then removes the pod (dropPod).
func (r *Runtime) removePod(c context.Context, name string) error {
	r.stopApps(c, name)
	return r.dropPod(c, name)
}

// stopApps stops the pod's app containers, side by side, each given the stop timeout to
// finish its work, and leaves the infra container running. They are stopped before the pod
// itself: a pod stop stops the infra container with them, and Podman tears the pod's
// network down as the infra container stops, so a process still shutting down (finishing
// its calls, draining its NATS connection, flushing its spans) would lose its network
// halfway and sit out the whole stop timeout before SIGKILL.
func (r *Runtime) stopApps(c context.Context, name string) {
	data, err := pods.Inspect(c, name, nil)
	if err != nil {
		return // gone already, or dropPod says what is wrong
	}
	var wg sync.WaitGroup
	for _, ctr := range data.Containers {
		if ctr.ID == data.InfraContainerID {
			continue
		}
		wg.Go(func() {
			start := time.Now()
			if err := containers.Stop(c, ctr.ID, new(containers.StopOptions).WithTimeout(uint(stopTimeout))); err != nil && !isNotFound(err) {
				r.logger.Warn("stop container", "pod", name, "container", ctr.Name, "err", err)
			}
			r.logger.Debug("container stopped", "container", ctr.Name, "took", time.Since(start))
		})
	}
	wg.Wait()
}

// dropPod removes the pod, once stopApps has stopped its processes: in one call, which
// kills what still runs (the infra container, which has nothing to finish, and a process
// that outlived its stop timeout) rather than asking it to stop again and wait.
func (r *Runtime) dropPod(c context.Context, name string) error {
	start := time.Now()
	defer func() { r.logger.Debug("pod removed", "pod", name, "took", time.Since(start)) }()
	if _, err := pods.Remove(c, name, new(pods.RemoveOptions).WithForce(true).WithTimeout(0)); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove pod %s: %w", name, err)
	}
	return nil
}

// removeConcurrency bounds the pods Down removes at once. More would not be faster: what a
// removal costs is mostly the network teardown of the pod's infra container, and Podman 4.3
// runs those one at a time under one lock (CNI's cni.lock), whichever process does it: the
// API service, or the `podman container cleanup` that conmon starts as the infra container
// dies (that one, in a debug log of a pod removal, which then found the network clean). A
// teardown runs the plugins bridge, portmap, firewall, tuning and dnsname, some twenty
// iptables calls; portmap's are half of them, and none for a pod that publishes nothing.
// Measured on this machine (2 cores, loaded; the API's pod removal of an infra-only pod in a
// network like the stack's, 4-5 runs each): 0.35-0.38 s with two published ports, 0.27-0.32 s
// with one, 0.13-0.25 s with none. Both architectures (fourteen attachments: the collector is
// in three networks) so take 3.5-4.5 s whatever the concurrency (3 and 8 measured alike;
// 5.5-6.5 s while every pod also joined the collector's network, see upArch). What side by
// side does win is the rest of each removal (the infra container's stop, the containers'
// storage), which overlaps the others' teardowns and the next phase's stops.
const removeConcurrency = 8

// removalPhases orders the pods of archs (every architecture when none) for Down: the
// architectures' pods by their start level, the last level first, then the collector's; the
// processes of one phase are stopped side by side, once the phase before has stopped, so
// that every process stops with its peers, its NATS and its collector still there. A pod
// without a level label (made before there were any) goes with level 0.
func removalPhases(list []*entities.ListPodsReport, archs []string) [][]*entities.ListPodsReport {
	byLevel := map[int][]*entities.ListPodsReport{}
	var collector []*entities.ListPodsReport
	for _, p := range list {
		if !wantArch(archs, p.Labels[stack.LabelArch]) {
			continue
		}
		if p.Labels[stack.LabelArch] == topology.Telemetry {
			collector = append(collector, p)
			continue
		}
		l, _ := strconv.Atoi(p.Labels[labelLevel])
		byLevel[l] = append(byLevel[l], p)
	}
	var phases [][]*entities.ListPodsReport
	for _, l := range slices.Backward(slices.Sorted(maps.Keys(byLevel))) {
		phases = append(phases, byLevel[l])
	}
	if len(collector) > 0 {
		phases = append(phases, collector)
	}
	return phases
}

// Down removes the stack's pods (and their containers), its networks and its volumes; with
// archs, only those architectures', and the collector with the last of them
// (stack.DownArchs, from the pods listed here: no call more).
func (r *Runtime) Down(ctx context.Context, opts stack.DownOptions) (stack.Removed, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	start := time.Now()
	defer func() { r.logger.Debug("down", "took", time.Since(start)) }()
	var removed stack.Removed
	var errs []error
	list, err := pods.List(c, new(pods.ListOptions).WithFilters(r.filter()))
	if err != nil {
		return removed, fmt.Errorf("list pods: %w", err)
	}
	present := make([]string, len(list))
	for i, p := range list {
		present[i] = p.Labels[stack.LabelArch]
	}
	archs := stack.DownArchs(present, opts.Archs)
	// The processes stop phase by phase, each with its network and its peers still there;
	// a phase's pods go as soon as its processes have stopped, side by side with the next
	// phase's stop (Podman tears their networks down one at a time).
	var mu sync.Mutex
	var drops sync.WaitGroup
	sem := make(chan struct{}, removeConcurrency)
	for _, phase := range removalPhases(list, archs) {
		var stops sync.WaitGroup
		for _, p := range phase {
			stops.Go(func() { r.stopApps(c, p.Name) })
		}
		stops.Wait()
		for _, p := range phase {
			drops.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				err := r.dropPod(c, p.Name)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				removed.Pods++
				removed.Containers += len(p.Containers)
			})
		}
	}
	r.logger.Debug("processes stopped", "took", time.Since(start))
	drops.Wait()
	r.logger.Debug("pods removed", "took", time.Since(start))
	// Containers outside a pod (none, unless something failed half-way).
	ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(r.filter()))
	if err != nil {
		errs = append(errs, fmt.Errorf("list containers: %w", err))
	}
	for _, ct := range ctrs {
		if !wantArch(archs, ct.Labels[stack.LabelArch]) {
			continue
		}
		if _, err := containers.Remove(c, ct.ID, new(containers.RemoveOptions).WithForce(true).WithVolumes(true)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", ct.ID, err))
			continue
		}
		removed.Containers++
	}
	nets, err := network.List(c, new(network.ListOptions).WithFilters(r.filter()))
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	// A collector that stays leaves the networks that go: removing a network by force
	// removes what is still attached to it, which would be the collector. The pods' list
	// says which collector pod stays, its infra container (whose network namespace the
	// collector shares) and the networks that one is attached to.
	var staying *entities.ListPodsReport
	if !wantArch(archs, topology.Telemetry) {
		if i := slices.IndexFunc(list, func(p *entities.ListPodsReport) bool { return p.Labels[stack.LabelArch] == topology.Telemetry }); i >= 0 {
			staying = list[i]
		}
	}
	for _, n := range nets {
		if !wantArch(archs, n.Labels[stack.LabelArch]) {
			continue
		}
		force := true
		if staying != nil {
			force = false // what is left attached is an error to report, not to remove
			if slices.Contains(staying.Networks, n.Name) {
				if err := network.Disconnect(c, n.Name, staying.InfraId, new(network.DisconnectOptions).WithForce(true)); err != nil && !isNotFound(err) && !strings.Contains(err.Error(), "not connected") {
					// The removal below says whether it is still attached.
					r.logger.Warn("collector: leave network", "network", n.Name, "err", err)
				}
			}
		}
		if _, err := network.Remove(c, n.Name, new(network.RemoveOptions).WithForce(force)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed.Networks++
	}
	r.logger.Debug("networks removed", "took", time.Since(start))
	var vols []*entities.VolumeListReport
	if opts.Volumes {
		vols, err = volumes.List(c, new(volumes.ListOptions).WithFilters(r.filter()))
		if err != nil {
			errs = append(errs, fmt.Errorf("list volumes: %w", err))
		}
	}
	for _, v := range vols {
		if !wantArch(archs, v.Labels[stack.LabelArch]) {
			continue
		}
		if err := volumes.Remove(c, v.Name, new(volumes.RemoveOptions).WithForce(true)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		removed.Volumes++
	}
	n, err := r.removeCgroups(archs)
	removed.Cgroups += n
	errs = append(errs, err)
	return removed, errors.Join(errs...)
}

// Status reports every pod of the stack: state, readiness (its probe through the published
// port), CPU and memory.
func (r *Runtime) Status(ctx context.Context) ([]stack.Status, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	list, err := pods.List(c, new(pods.ListOptions).WithFilters(r.filter()))
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(r.filter()))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	byName := map[string]entities.ListContainer{}
	alive := make([]bool, len(ctrs))
	restarts := map[string]int32{} // by container ID; Podman 4.3's list leaves Restarts at 0
	var check sync.WaitGroup
	var mu sync.Mutex
	for i, ct := range ctrs {
		for _, n := range ct.Names {
			byName[n] = ct
		}
		if ct.State == "running" {
			check.Add(1)
			go func() {
				defer check.Done()
				alive[i] = r.processAlive(c, ct.ID)
				if d, err := containers.Inspect(c, ct.ID, nil); err == nil && d.RestartCount > 0 {
					mu.Lock()
					restarts[ct.ID] = d.RestartCount
					mu.Unlock()
				}
			}()
		}
	}
	check.Wait()
	var running []string // one lost container fails the whole stats call
	lost := map[string]bool{}
	for i, ct := range ctrs {
		switch {
		case alive[i]:
			running = append(running, ct.ID)
		case ct.State == "running":
			lost[ct.ID] = true
		}
	}
	stats := map[string]stack.Status{}
	if len(running) > 0 {
		ch, err := containers.Stats(c, running, new(containers.StatsOptions).WithStream(false))
		if err == nil {
			for rep := range ch {
				for _, s := range rep.Stats {
					stats[s.ContainerID] = stack.Status{CPU: s.CPU, MemBytes: s.MemUsage, MemLimit: s.MemLimit}
				}
			}
		}
	}
	out := make([]stack.Status, len(list))
	budgets := map[string]*stack.Budget{}
	var wg sync.WaitGroup
	for i, p := range list {
		st := stack.Status{
			Arch:      p.Labels[stack.LabelArch],
			Service:   p.Labels[stack.LabelService],
			ReplicaOf: p.Labels[stack.LabelReplica],
			Name:      p.Name,
			State:     strings.ToLower(p.Status),
			Health:    stack.Unknown,
			TLSDir:    p.Labels[labelTLS],
		}
		if _, ok := budgets[st.Arch]; !ok {
			budgets[st.Arch] = r.budgetStatus(st.Arch, p.Labels[labelBudget], list)
		}
		st.Budget = budgets[st.Arch]
		ct, ok := byName[containerName(p.Name)]
		if !ok {
			st.State, st.Detail = "broken", "no app container"
			out[i] = st
			continue
		}
		st.State = ct.State
		switch {
		case lost[ct.ID]:
			st.State, st.Health = "lost", stack.Unready
			st.Detail = lostDetail + "; `mitosis up` remakes it"
		case ct.State != "running":
			st.Health = stack.Unready
			st.Detail = fmt.Sprintf("exit code %d", ct.ExitCode)
		case restarts[ct.ID] > 0:
			// The supervisor (restartPolicy) did its job: say so, or nobody would know.
			st.Detail = fmt.Sprintf("restarted %d time(s) by Podman after its process exited; see `mitosis logs %s/%s`", restarts[ct.ID], st.Arch, st.Service)
		}
		if s, ok := stats[ct.ID]; ok {
			st.CPU, st.MemBytes, st.MemLimit = s.CPU, s.MemBytes, s.MemLimit
		}
		out[i] = st
		probe, ok := parseProbe(p.Labels[labelProbe])
		if !ok || st.State != "running" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ports, err := r.hostPorts(c, p.Name)
			if err != nil {
				out[i].Health, out[i].Detail = stack.Unknown, err.Error()
				return
			}
			out[i].Ports = ports
			addr, ok := ports[probe.Port]
			if !ok {
				out[i].Health, out[i].Detail = stack.Unknown, fmt.Sprintf("pod %s publishes no host port for %d", p.Name, probe.Port)
				return
			}
			out[i].Addr = addr
			if err := stack.CheckSteady(c, probe, addr, p.Labels[labelTLS]); err != nil {
				out[i].Health, out[i].Detail = stack.Unready, err.Error()
				return
			}
			out[i].Health = stack.Ready
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Arch != out[j].Arch {
			return out[i].Arch < out[j].Arch
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func parseProbe(s string) (topology.Probe, bool) {
	f := strings.SplitN(s, " ", 3)
	if len(f) < 2 {
		return topology.Probe{}, false
	}
	port, err := strconv.Atoi(f[1])
	if err != nil {
		return topology.Probe{}, false
	}
	p := topology.Probe{Kind: topology.ProbeKind(f[0]), Port: port}
	if len(f) == 3 {
		p.Path = f[2]
	}
	return p, true
}

// Logs writes the logs of the selected services, each line prefixed with arch/service; with
// Follow it streams them all until ctx ends.
func (r *Runtime) Logs(ctx context.Context, opts stack.LogsOptions, w io.Writer) error {
	c, cancel := r.with(ctx)
	defer cancel()
	ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(r.filter()))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	sort.Slice(ctrs, func(i, j int) bool { return ctrs[i].Names[0] < ctrs[j].Names[0] })
	var mu sync.Mutex // one line at a time on w
	var wg sync.WaitGroup
	var errs []error
	n := 0
	for _, ct := range ctrs {
		arch, svc := ct.Labels[stack.LabelArch], ct.Labels[stack.LabelService]
		if !stack.Matches(opts.Services, arch, svc, ct.Labels[stack.LabelReplica]) {
			continue
		}
		n++
		prefix := arch + "/" + svc + " | "
		lo := new(containers.LogOptions).WithStdout(true).WithStderr(true).WithFollow(opts.Follow)
		if opts.Tail > 0 {
			lo = lo.WithTail(strconv.Itoa(opts.Tail))
		}
		run := func() error {
			lines := make(chan string, 64)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for l := range lines {
					mu.Lock()
					fmt.Fprint(w, prefix+strings.TrimRight(l, "\n")+"\n")
					mu.Unlock()
				}
			}()
			err := containers.Logs(c, ct.ID, lo, lines, lines)
			close(lines)
			<-done
			if err != nil && c.Err() == nil {
				return fmt.Errorf("logs of %s: %w", arch+"/"+svc, err)
			}
			return nil
		}
		if !opts.Follow {
			if err := run(); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n == 0 {
		return fmt.Errorf("no service of stack %s matches %v", r.stack, opts.Services)
	}
	return errors.Join(errs...)
}
