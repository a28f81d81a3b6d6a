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
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
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
	Args      []string          // arguments after the entrypoint; placeholders allowed
	Env       map[string]string // placeholders allowed
	Probe     Probe
	DependsOn []string // services that must be ready before this one starts
	CPUs      float64  // CPU limit, in cores
	MemoryMB  int      // memory limit
	DataDir   string   // if set, a volume is mounted here (state that survives a restart)
}

// Arch is one architecture: a set of services with its own NATS, network and edge.
type Arch struct {
	Name     string // "monolith" or "services"
	Edge     string // where its public HTTP API answers
	Services []Service
}

// Topology is what `up` runs: one or more architectures side by side.
type Topology struct {
	Name  string
	Archs []Arch
}

// Options adjust a topology without changing its shape: tests move the edges off the
// well-known ports.
type Options struct {
	MonolithEdge string // default 127.0.0.1:8080
	ServicesEdge string // default 127.0.0.1:8081
}

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
	var t Topology
	switch name {
	case Monolith:
		t = Topology{Name: name, Archs: []Arch{monolithArch(opts.MonolithEdge)}}
	case Services:
		t = Topology{Name: name, Archs: []Arch{servicesArch(opts.ServicesEdge)}}
	case Both, "":
		t = Topology{Name: Both, Archs: []Arch{monolithArch(opts.MonolithEdge), servicesArch(opts.ServicesEdge)}}
	default:
		return Topology{}, fmt.Errorf("unknown topology %q (want one of %s)", name, strings.Join(Names(), ", "))
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
		Env:     map[string]string{"GOMEMLIMIT": "96MiB"},
		Probe:   Probe{Kind: HTTP, Port: NATSMonitorPort, Path: "/healthz?js-enabled-only=true"},
		CPUs:    0.5,
		// JetStream is limited to 64 MiB of memory storage (cmd/nats-server's default).
		MemoryMB: 128,
		DataDir:  "/data",
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
					"GOMEMLIMIT":        "200MiB",
				},
				Probe:     Probe{Kind: HTTP, Port: EdgePort, Path: "/readyz"},
				DependsOn: []string{"nats"},
				CPUs:      1,
				MemoryMB:  256,
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
			"GOMEMLIMIT":        "48MiB",
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
			CPUs:      0.25,
			MemoryMB:  64,
		})
	}
	env := map[string]string{
		"SHOP_ADDR":         "{{listen}}",
		"SHOP_NATS_URL":     "nats://{{addr:nats}}",
		"SHOP_ADMIN_TOKEN":  "{{admin_token}}",
		"OTEL_SERVICE_NAME": "gateway",
		"GOMEMLIMIT":        "80MiB",
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
		CPUs:      0.5,
		MemoryMB:  96,
	})
	return a
}

// Validate checks the references a runtime relies on: unique names, known dependencies
// without cycles, probe ports among the ports, placeholders that resolve.
func (t Topology) Validate() error {
	for _, a := range t.Archs {
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
	for _, a := range t.Archs {
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
