package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// LabelService names the service a container runs.
const LabelService = "mitosis.it.service"

// DefaultReadyTimeout bounds the wait for one container's readiness probe.
const DefaultReadyTimeout = 60 * time.Second

// StackOptions describe one architecture to start.
type StackOptions struct {
	Run          string        // the run's ID (NewRunID): part of every name, and a label
	Arch         topology.Arch // what to run: topology.Get(...).Archs[i]
	Images       map[string]imagebuild.Image
	AdminToken   string
	RequestKey   string        // keys the hash of checkout requests (SHOP_REQUEST_KEY)
	ReadyTimeout time.Duration // per container; default DefaultReadyTimeout
	// PKI is a folder for the stack's CA and its services' identities (platform/identity),
	// each mounted read-only into its container: the stacks run with mutual TLS, as `mitosis
	// up` runs them. Required.
	PKI string

	// afterCreate, if set, is called with a service's name and the host addresses the engine
	// picked for it, each time its container is created, before it starts (a test takes
	// them, as another connection of the machine may: export_test.go).
	afterCreate func(service string, hostAddrs []string)
}

// Stack is one architecture running as containers on a network of its own, each service
// reachable by the others under its name and by the host on 127.0.0.1 (every port published
// there on a random port).
type Stack struct {
	Name  string // mitosis-it-<run>-<arch>: the network's name and every container's prefix
	Arch  topology.Arch
	Token string // the admin token

	run        string
	requestKey string
	ids        map[string]string // identity folders by identity (topology.Service.Identity), tooling's too
	users      natsauth.Creds    // the NATS users of the services (platform/natsauth)
	pki        string
	docker     *testcontainers.DockerClient
	network    string
	subnet     netip.Prefix
	images     map[string]imagebuild.Image
	timeout    time.Duration
	started    time.Time

	mu          sync.Mutex
	containers  map[string]*testcontainers.DockerContainer // by service name
	afterCreate func(service string, hostAddrs []string)   // StackOptions.afterCreate
}

// Start makes the stack's network and starts its services in the topology's dependency
// levels (topology.Arch.Levels), each level's containers at once, each waited for until its
// readiness probe passes through its published port.
//
// On error the returned Stack, when not nil, holds what was made: its logs say why
// (WriteLogs), and the caller must still Terminate it.
func Start(ctx context.Context, opts StackOptions) (*Stack, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	levels, err := opts.Arch.Levels()
	if err != nil {
		return nil, err
	}
	docker, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoEngine, err)
	}
	s := &Stack{
		Name:        Prefix + opts.Run + "-" + opts.Arch.Name,
		Arch:        opts.Arch,
		Token:       opts.AdminToken,
		run:         opts.Run,
		requestKey:  opts.RequestKey,
		docker:      docker,
		images:      opts.Images,
		timeout:     opts.ReadyTimeout,
		started:     time.Now(),
		containers:  map[string]*testcontainers.DockerContainer{},
		afterCreate: opts.afterCreate,
	}
	if opts.PKI == "" {
		return nil, stack.ErrNoPKI
	}
	ids, err := stack.Identities(s.Name, topology.Topology{Archs: []topology.Arch{opts.Arch}}, stack.UpOptions{PKI: opts.PKI},
		&[2]int{imagebuild.UID, imagebuild.UID})
	if err != nil {
		return nil, err
	}
	s.ids = ids
	if s.users, err = natsauth.Setup(opts.PKI, topology.Topology{Archs: []topology.Arch{opts.Arch}}); err != nil {
		return nil, err
	}
	s.pki = opts.PKI
	for _, p := range []string{s.users.Dir, s.users.Path()} {
		if err := os.Chown(p, imagebuild.UID, imagebuild.UID); err != nil {
			return nil, fmt.Errorf("NATS users: %w", err)
		}
	}
	if err := s.makeNetwork(ctx); err != nil {
		return s, err
	}
	for _, level := range levels {
		errs := make([]error, len(level))
		var wg sync.WaitGroup
		for i, svc := range level {
			wg.Go(func() { errs[i] = s.startService(ctx, svc) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return s, fmt.Errorf("start %s: %w", s.Name, err)
		}
	}
	return s, nil
}

func (s *Stack) labels() map[string]string {
	return map[string]string{LabelRun: s.run, LabelStarted: strconv.FormatInt(s.started.Unix(), 10)}
}

// makeNetwork creates the stack's bridge network (Podman turns on its DNS, so aliases
// resolve) and notes its subnet, from which every service gets a fixed address.
func (s *Stack) makeNetwork(ctx context.Context) error {
	res, err := s.docker.NetworkCreate(ctx, s.Name, client.NetworkCreateOptions{Driver: "bridge", Labels: s.labels()})
	if err != nil {
		return fmt.Errorf("create network %s: %w", s.Name, err)
	}
	s.network = s.Name
	ins, err := s.docker.NetworkInspect(ctx, res.ID, client.NetworkInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect network %s: %w", s.Name, err)
	}
	for _, c := range ins.Network.IPAM.Config {
		if c.Subnet.Addr().Is4() {
			s.subnet = c.Subnet
			break
		}
	}
	return nil
}

// serviceIP is the fixed address of the i-th service of the architecture: the subnet's .10
// and up. Fixed because a restarted container must come back at the address its peers
// know: gRPC clients resolve a name again only every 30 s, and the fault suite restarts
// payments and orders under their callers. Invalid when the subnet is unknown or too small
// (the engine then picks an address).
func (s *Stack) serviceIP(name string) netip.Addr {
	if !s.subnet.IsValid() {
		return netip.Addr{}
	}
	ip := s.subnet.Masked().Addr()
	for i, svc := range s.Arch.Services {
		if svc.Name == name {
			for range 10 + i {
				ip = ip.Next()
			}
			if s.subnet.Contains(ip) {
				return ip
			}
		}
	}
	return netip.Addr{}
}

// env expands the service's arguments and environment for this network: peers at
// <name>:<port>, listening on every interface of the container, data in the image's /data,
// telemetry exported nowhere (these stacks have no collector).
func (s *Stack) env(svc topology.Service) ([]string, map[string]string, error) {
	res := topology.Resolver{
		Addr: func(peer string, port int) (string, error) {
			p, ok := s.Arch.Service(peer)
			if !ok {
				return "", fmt.Errorf("unknown service %s", peer)
			}
			if port == 0 {
				port = p.Ports[0]
			}
			return peer + ":" + strconv.Itoa(port), nil
		},
		Listen:     func(port int) string { return "0.0.0.0:" + strconv.Itoa(port) },
		Data:       "/data", // the image's /data belongs to its non-root user
		AdminToken: s.Token,
		RequestKey: s.requestKey,
		TLS:        topology.TLSMount,
	}
	s.users.Resolve(&res, svc, natsUsersMount)
	args, env, err := topology.Expand(svc, res)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range topology.ExportEnv("", nil) {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return args, env, nil
}

func (s *Stack) startService(ctx context.Context, svc topology.Service) error {
	img, ok := s.images[svc.Image]
	if !ok {
		return fmt.Errorf("%s: image %s was not built", svc.Name, svc.Image)
	}
	args, env, err := s.env(svc)
	if err != nil {
		return fmt.Errorf("%s: %w", svc.Name, err)
	}
	labels := s.labels()
	labels[LabelService] = svc.Name
	var exposed []string
	for _, p := range svc.Ports {
		exposed = append(exposed, strconv.Itoa(p)+"/tcp")
	}
	ip := s.serviceIP(svc.Name)
	loopback := netip.MustParseAddr("127.0.0.1")
	req := testcontainers.ContainerRequest{
		Image:          img.Ref, // loaded into Podman: found locally, never pulled
		Name:           s.Name + "-" + svc.Name,
		Cmd:            args,
		Env:            env,
		Labels:         labels,
		ExposedPorts:   exposed,
		Networks:       []string{s.network},
		NetworkAliases: map[string][]string{s.network: {svc.Name}},
		WaitingFor:     probeWait{probe: svc.Probe, timeout: s.timeout, tlsDir: s.Identity(identity.Tooling)},
		HostConfigModifier: func(hc *container.HostConfig) {
			// Published on loopback only, on a port the engine picks.
			hc.PortBindings = network.PortMap{}
			for _, p := range svc.Ports {
				port, _ := network.PortFrom(uint16(p), network.TCP)
				hc.PortBindings[port] = []network.PortBinding{{HostIP: loopback, HostPort: "0"}}
			}
			// The limits and hardening the platform gives the same service in a pod.
			hc.NanoCPUs = int64(svc.CPUs * 1e9)
			hc.Memory = int64(svc.MemoryMB) << 20
			hc.CapDrop = []string{"ALL"}
			hc.SecurityOpt = []string{"no-new-privileges"}
			if dir := s.ids[svc.Identity()]; dir != "" {
				hc.Binds = append(hc.Binds, dir+":"+topology.TLSMount+":ro")
			}
			if _, ok := svc.Env[topology.NATSUsersEnv]; ok {
				hc.Binds = append(hc.Binds, s.users.Dir+":"+natsUsersMount+":ro")
			}
		},
		EndpointSettingsModifier: func(eps map[string]*network.EndpointSettings) {
			ep := eps[s.network]
			if ep == nil {
				ep = &network.EndpointSettings{Aliases: []string{svc.Name}}
				eps[s.network] = ep
			}
			if ip.IsValid() {
				ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ip}
			}
		},
	}
	if s.afterCreate != nil {
		req.LifecycleHooks = []testcontainers.ContainerLifecycleHooks{{PreStarts: []testcontainers.ContainerHook{
			func(ctx context.Context, c testcontainers.Container) error {
				info, err := c.Inspect(ctx)
				if err != nil {
					return err
				}
				var at []string
				for _, bs := range info.HostConfig.PortBindings {
					for _, b := range bs {
						at = append(at, net.JoinHostPort(b.HostIP.String(), b.HostPort))
					}
				}
				s.afterCreate(svc.Name, at)
				return nil
			},
		}}}
	}
	// The engine picks each host port when it creates the container and binds it when it
	// starts it: in between, any connection of the machine can take it as its source port
	// (the same ephemeral range), and the start fails with "address already in use". Then
	// the container is removed and made again, with new ports, as platform/podmanrt's
	// makePod does for a pod.
	var c testcontainers.Container
	for try := 1; ; try++ {
		c, err = testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
		if err == nil || c == nil || try == portTries || !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
			break
		}
		if terr := c.Terminate(context.WithoutCancel(ctx)); terr != nil {
			return fmt.Errorf("%s: %w (and removing it to try new ports: %w)", svc.Name, err, terr)
		}
	}
	if dc, ok := c.(*testcontainers.DockerContainer); ok && dc != nil {
		s.mu.Lock()
		s.containers[svc.Name] = dc
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", svc.Name, err)
	}
	return nil
}

// portTries is how many times startService makes a container whose host ports the engine
// picks.
const portTries = 3

// probeWait is the topology's readiness probe as a testcontainers wait strategy: the probe
// runs from the host against the probe port's published address.
type probeWait struct {
	probe   topology.Probe
	timeout time.Duration
	tlsDir  string // the identity a gRPC probe presents
}

func (w probeWait) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	host, err := target.Host(ctx)
	if err != nil {
		return err
	}
	port, err := target.MappedPort(ctx, strconv.Itoa(w.probe.Port)+"/tcp")
	if err != nil {
		return err
	}
	alive := func() error {
		st, err := target.State(ctx)
		if err != nil {
			return err
		}
		if !st.Running {
			return fmt.Errorf("container %s (exit code %d)", st.Status, st.ExitCode)
		}
		return nil
	}
	return stack.WaitReady(ctx, w.probe, host+":"+port.Port(), w.tlsDir, w.timeout, alive)
}

// Identity is the folder of an identity of the stack (a service's, topology.Service.Identity,
// or identity.Tooling): what a test presents to call a service directly.
func (s *Stack) Identity(name string) string { return s.ids[name] }

// Container returns a service's container, nil if it was not started.
func (s *Stack) Container(service string) *testcontainers.DockerContainer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.containers[service]
}

func (s *Stack) mustContainer(service string) (*testcontainers.DockerContainer, error) {
	c := s.Container(service)
	if c == nil {
		return nil, fmt.Errorf("%s: no container for service %s", s.Name, service)
	}
	return c, nil
}

// HostAddr is where a service's container port is published on this machine
// (127.0.0.1:<port>).
func (s *Stack) HostAddr(ctx context.Context, service string, port int) (string, error) {
	c, err := s.mustContainer(service)
	if err != nil {
		return "", err
	}
	p, err := c.MappedPort(ctx, strconv.Itoa(port)+"/tcp")
	if err != nil {
		return "", fmt.Errorf("%s port %d: %w", service, port, err)
	}
	host, err := c.Host(ctx)
	if err != nil {
		return "", fmt.Errorf("%s host: %w", service, err)
	}
	return host + ":" + p.Port(), nil
}

// URL is the base URL of the architecture's public HTTP API: the monolith's or the gateway's
// published edge port.
func (s *Stack) URL(ctx context.Context) (string, error) {
	for _, svc := range s.Arch.Services {
		if svc.Edge != "" {
			addr, err := s.HostAddr(ctx, svc.Name, topology.EdgePort)
			if err != nil {
				return "", err
			}
			return "http://" + addr, nil
		}
	}
	return "", fmt.Errorf("%s has no edge service", s.Name)
}

// NATSTLS is the TLS the stack's tools use with its NATS (natsauth.AdminTLS).
func (s *Stack) NATSTLS() (nats.Option, error) { return natsauth.AdminTLS(s.pki) }

// NATSURL is the stack's NATS as published on this machine, with the admin's credentials.
func (s *Stack) NATSURL(ctx context.Context) (string, error) {
	addr, err := s.HostAddr(ctx, topology.NATSService, topology.NATSPort)
	if err != nil {
		return "", err
	}
	return natsauth.AdminURL(s.pki, addr)
}

// NATSURLAs is the stack's NATS as published on this machine, with the credentials of the
// NATS user (natsauth.UserOf: a group's name, "cart" for the cart's process), and the TLS
// that user's process uses: its identity presented, only the stack's NATS server accepted.
func (s *Stack) NATSURLAs(ctx context.Context, user string) (string, nats.Option, error) {
	auth, ok := s.users.Auth[user]
	if !ok {
		return "", nil, fmt.Errorf("%s has no NATS user %q", s.Name, user)
	}
	addr, err := s.HostAddr(ctx, topology.NATSService, topology.NATSPort)
	if err != nil {
		return "", nil, err
	}
	src, err := identity.Load(s.Identity(user))
	if err != nil {
		return "", nil, fmt.Errorf("the identity of %s: %w", user, err)
	}
	return topology.NATSURL(false, auth, addr), nats.Secure(src.ClientConfig(identity.Is(identity.NATS))), nil
}

// natsUsersMount is where the NATS container finds its users file.
const natsUsersMount = "/etc/mitosis/nats"

// Stop stops a service's container: SIGTERM, then SIGKILL after grace.
func (s *Stack) Stop(ctx context.Context, service string, grace time.Duration) error {
	c, err := s.mustContainer(service)
	if err != nil {
		return err
	}
	if err := c.Stop(ctx, &grace); err != nil {
		return fmt.Errorf("stop %s: %w", service, err)
	}
	return nil
}

// Holder is the service that runs the context name (its group holds it).
func (s *Stack) Holder(name string) string {
	for _, svc := range s.Arch.Services {
		if g, err := bounded.ParseGroup(svc.Group); err == nil && slices.Contains(g.Contexts, name) {
			return svc.Name
		}
	}
	return name
}

// Kill kills a service's process with SIGKILL, as a crash would: no graceful stop.
func (s *Stack) Kill(ctx context.Context, service string) error {
	c, err := s.mustContainer(service)
	if err != nil {
		return err
	}
	if _, err := s.docker.ContainerKill(ctx, c.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", service, err)
	}
	return nil
}

// StartAgain starts a stopped or killed service's container (same address, same
// environment) and waits until its readiness probe passes.
func (s *Stack) StartAgain(ctx context.Context, service string) error {
	c, err := s.mustContainer(service)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("start %s again: %w", service, err)
	}
	return nil
}

// WriteLogs writes the last tail lines (0: all) of every container's log to w, service by
// service in the topology's order.
func (s *Stack) WriteLogs(ctx context.Context, w io.Writer, tail int) {
	for _, svc := range s.Arch.Services {
		c := s.Container(svc.Name)
		if c == nil {
			continue
		}
		fmt.Fprintf(w, "----- %s/%s logs -----\n", s.Name, svc.Name)
		rc, err := c.Logs(ctx)
		if err != nil {
			fmt.Fprintf(w, "(logs unavailable: %v)\n", err)
			continue
		}
		lines, dropped := lastLines(rc, tail)
		_ = rc.Close()
		if dropped > 0 {
			fmt.Fprintf(w, "(%d earlier lines left out)\n", dropped)
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

// lastLines reads r to its end and keeps its last n lines (all when n <= 0).
func lastLines(r io.Reader, n int) (lines []string, dropped int) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if n > 0 && len(lines) > n {
			lines = lines[1:]
			dropped++
		}
	}
	return lines, dropped
}

// Terminate removes every container of the stack, then its network.
func (s *Stack) Terminate(ctx context.Context) error {
	s.mu.Lock()
	cs := make([]*testcontainers.DockerContainer, 0, len(s.containers))
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.containers = map[string]*testcontainers.DockerContainer{}
	s.mu.Unlock()
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		zero := time.Duration(0) // test containers keep nothing worth a graceful stop
		wg.Go(func() { errs[i] = c.Terminate(ctx, testcontainers.StopTimeout(zero)) })
	}
	wg.Wait()
	if s.network != "" {
		if _, err := s.docker.NetworkRemove(ctx, s.network, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", s.network, err))
		}
	}
	return errors.Join(errs...)
}
