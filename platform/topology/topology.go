// Package topology describes what `mitosis up` runs, as data: for each architecture, its
// services (image, ports, environment, readiness probe, dependencies, CPU and memory), and
// nothing about how they run. The Podman runtime and the process runtime read the same
// values; the environment's placeholders are how one description serves both (a service
// reaches NATS at nats:4222 in a pod network and at 127.0.0.1:<port> as a process).
//
// Placeholders in Args and Env values, expanded by Expand:
//
//	{{listen}}          this service's listen address for its first port
//	{{listen:PORT}}     ... for its port PORT (a container port listed in Ports)
//	{{addr:SVC}}        host:port where SVC's first port is reached from another service
//	{{addr:SVC:PORT}}   ... SVC's port PORT
//	{{data}}            this service's data directory (DataDir in a container)
//	{{admin_token}}     the stack's admin token
package topology

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Names of the topologies Get knows.
const (
	Monolith = "monolith"
	Services = "services"
	Both     = "both"
)

// Default edges (DESIGN.md).
const (
	MonolithEdge = "127.0.0.1:8080"
	ServicesEdge = "127.0.0.1:8081"
)

// ProbeKind says how readiness is checked.
type ProbeKind string

// Probe kinds.
const (
	HTTP ProbeKind = "http" // GET Path answers 2xx
	GRPC ProbeKind = "grpc" // grpc.health.v1 Check of the empty service answers SERVING
	TCP  ProbeKind = "tcp"  // the port accepts a connection
)

// Probe is a readiness check against one of the service's ports.
type Probe struct {
	Kind ProbeKind
	Port int    // a container port from Service.Ports
	Path string // HTTP only
}

// Service is one process: in Podman, one pod holding one container.
type Service struct {
	Name      string            // unique in its architecture; its DNS name in the pod network
	Image     string            // the image (and binary) name, see Images
	Package   string            // the Go main package, relative to the repository root
	Ports     []int             // ports it listens on, the first one its main port
	Edge      string            // host address its main port is published on ("": 127.0.0.1, any port)
	Publish   map[int]string    // host addresses of its other ports, where fixed ("": 127.0.0.1, any port)
	Args      []string          // arguments after the entrypoint; placeholders allowed
	Env       map[string]string // placeholders allowed
	Probe     Probe
	DependsOn []string // services that must be ready before this one starts
	CPUs      float64  // CPU limit, in cores: its share of the architecture's budget
	MemoryMB  int      // memory limit, in MiB: its share of the architecture's budget
	DataDir   string   // if set, a volume is mounted here (state that survives a restart)
}

// Arch is one architecture: a set of services with its own NATS, network and edge.
type Arch struct {
	Name     string // "monolith" or "services"
	Edge     string // where its public HTTP API answers
	Services []Service
}

// Topology is what `up` runs: one or more architectures side by side, and the trace
// collector they all export to.
type Topology struct {
	Name  string
	Archs []Arch
	// Collector is the trace collector every service of every architecture exports to; nil
	// when the stack runs without one. Local runtimes run it as an architecture of its own
	// (CollectorArch); deploy targets bring their own collector (ADOT) instead.
	Collector *Service
	Budget    Budget // what each architecture was given in total
}

// Budget is the CPU and memory one architecture gets in total. Every architecture gets the
// same, so that a comparison measures the split and not the resources: Get shares the budget
// out among an architecture's services by weights that follow where each one spends (see
// shares).
type Budget struct {
	CPUs     float64 // cores
	MemoryMB int     // MiB
}

// The default budget of each architecture: on a 2-core machine, the load generator keeps
// half a core while one architecture runs at full load (the load test drives them in turn).
const (
	DefaultCPUs     = 1.5
	DefaultMemoryMB = 640
)

// Options adjust a topology without changing its shape: tests move the edges off the
// well-known ports, users change the budget.
type Options struct {
	MonolithEdge string // default 127.0.0.1:8080
	ServicesEdge string // default 127.0.0.1:8081
	// Collector is the collector's query API edge (default 127.0.0.1:16686, with OTLP on
	// 4317 and 4318 of the same host); with port 0, every port of it is picked freely;
	// NoCollector leaves it out.
	Collector string
	Budget    Budget // per architecture; zero fields take the defaults
}

// NoCollector as Options.Collector runs the stack without a trace collector.
const NoCollector = "none"

// Contexts are the shop's bounded contexts, each one service in the services architecture,
// in the order of their gRPC ports (9101 and up, as in DESIGN.md).
var contexts = []string{"catalog", "cart", "inventory", "payments", "orders", "shipping", "notify"}

// Contexts returns the bounded contexts in port order.
func Contexts() []string { return slices.Clone(contexts) }

// ContextPort is a context's gRPC port: 9101 for catalog, and up in Contexts order.
func ContextPort(ctx string) int { return 9101 + slices.Index(contexts, ctx) }

// Names lists the topologies Get knows.
func Names() []string { return []string{Both, Monolith, Services} }

// Get returns a topology by name.
func Get(name string, opts Options) (Topology, error) {
	if opts.MonolithEdge == "" {
		opts.MonolithEdge = MonolithEdge
	}
	if opts.ServicesEdge == "" {
		opts.ServicesEdge = ServicesEdge
	}
	if opts.Budget.CPUs == 0 {
		opts.Budget.CPUs = DefaultCPUs
	}
	if opts.Budget.MemoryMB == 0 {
		opts.Budget.MemoryMB = DefaultMemoryMB
	}
	t := Topology{Name: name, Budget: opts.Budget}
	switch name {
	case Monolith:
		t.Archs = []Arch{monolithArch(opts.MonolithEdge)}
	case Services:
		t.Archs = []Arch{servicesArch(opts.ServicesEdge)}
	case Both, "":
		t.Name = Both
		t.Archs = []Arch{monolithArch(opts.MonolithEdge), servicesArch(opts.ServicesEdge)}
	default:
		return Topology{}, fmt.Errorf("unknown topology %q (want one of %s)", name, strings.Join(Names(), ", "))
	}
	for i := range t.Archs {
		if err := share(&t.Archs[i], opts.Budget); err != nil {
			return Topology{}, err
		}
	}
	if opts.Collector != NoCollector {
		c, err := collector(opts.Collector)
		if err != nil {
			return Topology{}, err
		}
		t.Collector = &c
	}
	if err := t.Validate(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// NATS ports.
const (
	NATSPort        = 4222
	NATSMonitorPort = 8222
)

func nats() Service {
	return Service{
		Name:    "nats",
		Image:   "nats-server",
		Package: "./platform/cmd/nats-server",
		Ports:   []int{NATSPort, NATSMonitorPort},
		Args:    []string{"-addr", "{{listen}}", "-http", "{{listen:8222}}", "-store", "{{data}}"},
		Env:     map[string]string{},
		Probe:   Probe{Kind: HTTP, Port: NATSMonitorPort, Path: "/healthz?js-enabled-only=true"},
		DataDir: "/data",
	}
}

// EdgePort is the container port of both edges (the monolith and the gateway); the host port
// is the architecture's Edge.
const EdgePort = 8080

func monolithArch(edge string) Arch {
	return Arch{
		Name: Monolith,
		Edge: edge,
		Services: []Service{
			nats(),
			{
				Name:    "monolith",
				Image:   "monolith",
				Package: "./monolith",
				Ports:   []int{EdgePort},
				Edge:    edge,
				Env: map[string]string{
					"SHOP_ADDR":         "{{listen}}",
					"SHOP_NATS_URL":     "nats://{{addr:nats}}",
					"SHOP_ADMIN_TOKEN":  "{{admin_token}}",
					"SHOP_DATA_DIR":     "{{data}}",
					"OTEL_SERVICE_NAME": "monolith",
				},
				Probe:     Probe{Kind: HTTP, Port: EdgePort, Path: "/readyz"},
				DependsOn: []string{"nats"},
			},
		},
	}
}

// peersOf are the contexts each process calls (the rest react to events only), as
// services/launch has them: a process starts once its peers are ready.
var peersOf = map[string][]string{
	"orders":  {"catalog", "cart", "inventory", "payments"},
	"gateway": {"catalog", "cart", "inventory", "orders", "notify"},
}

func servicesArch(edge string) Arch {
	addrs := map[string]string{}
	for _, c := range contexts {
		addrs["SHOP_"+strings.ToUpper(c)+"_ADDR"] = "{{addr:" + c + "}}"
	}
	a := Arch{Name: Services, Edge: edge, Services: []Service{nats()}}
	for _, c := range contexts {
		env := map[string]string{
			"SHOP_GRPC_ADDR":    "{{listen}}",
			"SHOP_NATS_URL":     "nats://{{addr:nats}}",
			"OTEL_SERVICE_NAME": c,
		}
		if c == "orders" {
			// One orders process per stack: it may recover every unfinished checkout.
			env["SHOP_ORDERS_SOLE_REPLICA"] = "true"
		}
		for k, v := range addrs {
			env[k] = v
		}
		a.Services = append(a.Services, Service{
			Name:      c,
			Image:     c,
			Package:   "./services/" + c,
			Ports:     []int{ContextPort(c)},
			Env:       env,
			Probe:     Probe{Kind: GRPC, Port: ContextPort(c)},
			DependsOn: append([]string{"nats"}, peersOf[c]...),
		})
	}
	env := map[string]string{
		"SHOP_ADDR":         "{{listen}}",
		"SHOP_NATS_URL":     "nats://{{addr:nats}}",
		"SHOP_ADMIN_TOKEN":  "{{admin_token}}",
		"OTEL_SERVICE_NAME": "gateway",
	}
	for k, v := range addrs {
		env[k] = v
	}
	a.Services = append(a.Services, Service{
		Name:      "gateway",
		Image:     "gateway",
		Package:   "./services/gateway",
		Ports:     []int{EdgePort},
		Edge:      edge,
		Env:       env,
		Probe:     Probe{Kind: HTTP, Port: EdgePort, Path: "/readyz"},
		DependsOn: append([]string{"nats"}, peersOf["gateway"]...),
	})
	return a
}

// weight is a service's share of its architecture's budget, relative to the others'.
type weight struct{ cpu, mem float64 }

// NATS does the same work in both architectures (every store operation and event goes
// through it) and used about the same CPU in both under the load test's mix (0.26 to 0.36
// cores at 400 req/s), so it gets the same fixed part of every budget; one description then
// serves both architectures (the Kubernetes base holds one NATS).
const (
	natsCPUPart    = 0.3
	natsMemoryPart = 0.25
)

// shares weigh the rest of the budget among an architecture's other services. CPU follows
// where each process spent its CPU under the load test's mix (loadtest, process runtime,
// 200 and 400 req/s): of the microservices the gateway about 30%, catalog and orders 17-18%
// each, inventory 12-16%, cart 11%, and notify, payments and shipping 3-4% each, given a
// little more here to absorb bursts. Memory gives every Go service enough to keep its heap
// well under GOMEMLIMIT, the gateway, which holds every response in flight, a little more.
var shares = map[string]map[string]weight{
	Monolith: {"monolith": {1, 1}},
	Services: {
		"gateway": {24, 2}, "catalog": {14, 1.5}, "orders": {14, 1.5}, "inventory": {10, 1.5},
		"cart": {9, 1.5}, "notify": {3, 1.5}, "payments": {3, 1.5}, "shipping": {3, 1.5},
	},
}

// Floors under a share: below them a Go process spends its quota on the runtime alone, and
// the CFS quota stalls it for most of each 100 ms period.
const (
	minMilliCPU = 50
	minMemoryMB = 32
)

// share sets each service's CPUs and MemoryMB to its part of the budget (CPU in whole
// millicores, so that the parts add up to the budget exactly), and its GOMEMLIMIT to 3/4 of
// its memory so the Go runtime collects before the kernel kills.
func share(a *Arch, b Budget) error {
	milli := int(math.Round(b.CPUs * 1000))
	if milli < minMilliCPU*len(a.Services) || b.MemoryMB < minMemoryMB*len(a.Services) {
		return fmt.Errorf("%s: a budget of %g CPUs and %d MiB is too small for %d services (at least %g CPUs and %d MiB)",
			a.Name, b.CPUs, b.MemoryMB, len(a.Services), float64(minMilliCPU*len(a.Services))/1000, minMemoryMB*len(a.Services))
	}
	natsMilli := max(minMilliCPU, int(math.Round(float64(milli)*natsCPUPart)))
	natsMem := max(minMemoryMB, int(float64(b.MemoryMB)*natsMemoryPart))
	w := shares[a.Name]
	var rest []Service
	var cpuSum, memSum float64
	for _, s := range a.Services {
		if s.Name == "nats" {
			continue
		}
		sw, ok := w[s.Name]
		if !ok {
			return fmt.Errorf("%s/%s: no share of the budget", a.Name, s.Name)
		}
		rest = append(rest, s)
		cpuSum += sw.cpu
		memSum += sw.mem
	}
	cpus := apportion(milli-natsMilli, minMilliCPU, rest, func(s Service) float64 { return w[s.Name].cpu / cpuSum })
	mems := apportion(b.MemoryMB-natsMem, minMemoryMB, rest, func(s Service) float64 { return w[s.Name].mem / memSum })
	parts := map[string][2]int{"nats": {natsMilli, natsMem}}
	for i, s := range rest {
		parts[s.Name] = [2]int{cpus[i], mems[i]}
	}
	for i := range a.Services {
		s := &a.Services[i]
		s.CPUs = float64(parts[s.Name][0]) / 1000
		s.MemoryMB = parts[s.Name][1]
		s.Env["GOMEMLIMIT"] = strconv.Itoa(s.MemoryMB*3/4) + "MiB"
	}
	return nil
}

// apportion splits total into whole units by fraction, none below floor, the parts adding up
// to total: the floors first, the rest by fraction rounded down, the units left over to the
// largest fractions.
func apportion(total, floor int, svcs []Service, frac func(Service) float64) []int {
	out := make([]int, len(svcs))
	rest := total - floor*len(svcs)
	left := rest
	for i, s := range svcs {
		out[i] = floor + int(float64(rest)*frac(s))
		left -= out[i] - floor
	}
	order := make([]int, len(svcs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return frac(svcs[order[x]]) > frac(svcs[order[y]]) })
	for i := 0; left > 0; i = (i + 1) % len(order) {
		out[order[i]]++
		left--
	}
	return out
}

// Collector ports: the query API (Jaeger /api/v3 and the dashboard), OTLP/gRPC, OTLP/HTTP.
const (
	CollectorQueryPort = 16686
	CollectorGRPCPort  = 4317
	CollectorHTTPPort  = 4318
)

// Telemetry is the architecture name runtimes give the collector (CollectorArch).
const Telemetry = "telemetry"

// DefaultCollectorEdge is where the collector's query API answers on the host.
const DefaultCollectorEdge = "127.0.0.1:16686"

// collector is the trace collector (platform/cmd/collector). It stands outside both budgets:
// it serves both architectures alike, and its spans arrive batched in the background.
func collector(edge string) (Service, error) {
	if edge == "" {
		edge = DefaultCollectorEdge
	}
	host, port, err := net.SplitHostPort(edge)
	if err != nil {
		return Service{}, fmt.Errorf("collector edge %q: %w", edge, err)
	}
	publish := map[int]string{CollectorGRPCPort: "", CollectorHTTPPort: ""}
	if port != "0" {
		publish[CollectorGRPCPort] = net.JoinHostPort(host, strconv.Itoa(CollectorGRPCPort))
		publish[CollectorHTTPPort] = net.JoinHostPort(host, strconv.Itoa(CollectorHTTPPort))
	} else {
		edge = "" // any port
	}
	return Service{
		Name:    "collector",
		Image:   "collector",
		Package: "./platform/cmd/collector",
		Ports:   []int{CollectorQueryPort, CollectorGRPCPort, CollectorHTTPPort},
		Edge:    edge,
		Publish: publish,
		Args: []string{"-query", "{{listen}}", "-grpc", "{{listen:4317}}", "-http", "{{listen:4318}}",
			"-max-spans", "100000"},
		// 100,000 spans at about 1.5 KB each.
		Env:      map[string]string{"GOMEMLIMIT": "192MiB"},
		Probe:    Probe{Kind: HTTP, Port: CollectorQueryPort, Path: "/healthz"},
		CPUs:     0.5,
		MemoryMB: 256,
	}, nil
}

// CollectorArch is the collector as an architecture of its own, which local runtimes start
// before the others; false when the topology has no collector.
func (t Topology) CollectorArch() (Arch, bool) {
	if t.Collector == nil {
		return Arch{}, false
	}
	return Arch{Name: Telemetry, Edge: t.Collector.Edge, Services: []Service{*t.Collector}}, true
}

// AllArchs is what a local runtime runs: the collector's architecture first, if any, then
// the architectures.
func (t Topology) AllArchs() []Arch {
	if c, ok := t.CollectorArch(); ok {
		return append([]Arch{c}, t.Archs...)
	}
	return t.Archs
}

// ExportDelay is how long a service of a local stack holds an ended span before exporting
// it (OTEL_BSP_SCHEDULE_DELAY in CollectorEnv): a second, not the SDK's five, so that a
// request's trace is whole in the collector a second or so after the request, and `mitosis
// traces compare` right after a checkout finds it. A batch still goes as soon as it holds
// 512 spans, so under load this changes nothing.
const ExportDelay = time.Second

// CollectorEnv is the environment that makes a service export to the collector whose
// OTLP/HTTP receiver is at addr (host:port).
func CollectorEnv(addr string) map[string]string {
	return map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr,
		"OTEL_BSP_SCHEDULE_DELAY":     strconv.FormatInt(ExportDelay.Milliseconds(), 10),
	}
}

// Validate checks the references a runtime relies on: unique names, known dependencies
// without cycles, probe ports among the ports, placeholders that resolve.
func (t Topology) Validate() error {
	for _, a := range t.AllArchs() {
		seen := map[string]Service{}
		for _, s := range a.Services {
			if s.Name == "" || s.Image == "" || len(s.Ports) == 0 {
				return fmt.Errorf("%s/%s: a service needs a name, an image and a port", a.Name, s.Name)
			}
			if _, dup := seen[s.Name]; dup {
				return fmt.Errorf("%s: two services named %s", a.Name, s.Name)
			}
			seen[s.Name] = s
		}
		for _, s := range a.Services {
			for p := range s.Publish {
				if !slices.Contains(s.Ports[1:], p) {
					return fmt.Errorf("%s/%s: publishes port %d, which is not one of its ports after the first %v", a.Name, s.Name, p, s.Ports)
				}
			}
			if !slices.Contains(s.Ports, s.Probe.Port) {
				return fmt.Errorf("%s/%s: probe port %d is not one of its ports %v", a.Name, s.Name, s.Probe.Port, s.Ports)
			}
			for _, d := range s.DependsOn {
				if _, ok := seen[d]; !ok {
					return fmt.Errorf("%s/%s: depends on unknown service %s", a.Name, s.Name, d)
				}
			}
			fake := func(svc string, port int) (string, error) {
				o, ok := seen[svc]
				if !ok {
					return "", fmt.Errorf("unknown service %s", svc)
				}
				if port != 0 && !slices.Contains(o.Ports, port) {
					return "", fmt.Errorf("%s has no port %d", svc, port)
				}
				return "x", nil
			}
			if _, _, err := Expand(s, Resolver{Addr: fake, Listen: func(int) string { return "x" }}); err != nil {
				return fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
			}
		}
		if _, err := a.Levels(); err != nil {
			return err
		}
	}
	return nil
}

// Levels orders an architecture's services for starting: every service of a level depends
// only on services of earlier levels, so a level may start all at once.
func (a Arch) Levels() ([][]Service, error) {
	done := map[string]bool{}
	var levels [][]Service
	for len(done) < len(a.Services) {
		var level []Service
		for _, s := range a.Services {
			if done[s.Name] {
				continue
			}
			ready := true
			for _, d := range s.DependsOn {
				ready = ready && done[d]
			}
			if ready {
				level = append(level, s)
			}
		}
		if len(level) == 0 {
			return nil, fmt.Errorf("%s: dependency cycle among the services not yet started", a.Name)
		}
		for _, s := range level {
			done[s.Name] = true
		}
		levels = append(levels, level)
	}
	return levels, nil
}

// Service returns the named service.
func (a Arch) Service(name string) (Service, bool) {
	for _, s := range a.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// Image is one image a topology needs built.
type Image struct {
	Name    string
	Package string
}

// Images lists the images of a topology once each, in a stable order.
func (t Topology) Images() []Image {
	seen := map[string]bool{}
	var out []Image
	for _, a := range t.AllArchs() {
		for _, s := range a.Services {
			if !seen[s.Image] {
				seen[s.Image] = true
				out = append(out, Image{Name: s.Image, Package: s.Package})
			}
		}
	}
	return out
}

// Resolver tells Expand what the placeholders mean in one runtime.
type Resolver struct {
	Addr       func(service string, port int) (string, error) // port 0: the service's first port
	Listen     func(port int) string
	Data       string
	AdminToken string
}

var placeholder = regexp.MustCompile(`\{\{([a-z_]+)(?::([a-z0-9-]+))?(?::([0-9]+))?\}\}`)

// Expand returns the service's arguments and environment with the placeholders replaced.
func Expand(s Service, r Resolver) (args []string, env map[string]string, err error) {
	expand := func(v string) string {
		return placeholder.ReplaceAllStringFunc(v, func(m string) string {
			if err != nil {
				return m
			}
			p := placeholder.FindStringSubmatch(m)
			switch p[1] {
			case "listen":
				port := s.Ports[0]
				if p[2] != "" {
					if port, err = strconv.Atoi(p[2]); err != nil || !slices.Contains(s.Ports, port) {
						err = fmt.Errorf("%s: %s is not one of its ports", m, p[2])
						return m
					}
				}
				return r.Listen(port)
			case "addr":
				port := 0
				if p[3] != "" {
					port, _ = strconv.Atoi(p[3])
				}
				var a string
				a, err = r.Addr(p[2], port)
				return a
			case "data":
				return r.Data
			case "admin_token":
				return r.AdminToken
			}
			err = fmt.Errorf("unknown placeholder %s", m)
			return m
		})
	}
	for _, a := range s.Args {
		args = append(args, expand(a))
	}
	env = make(map[string]string, len(s.Env))
	for _, k := range sortedKeys(s.Env) {
		env[k] = expand(s.Env[k])
	}
	return args, env, err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
