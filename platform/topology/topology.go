// Package topology describes what `mitosis up` runs, as data: for each architecture, its
// services (image, ports, environment, readiness probe, dependencies, CPU and memory), and
// nothing about how they run. The Podman runtime and the process runtime read the same
// values; the environment's placeholders are how one description serves both (a service
// reaches NATS at nats:4222 in a pod network and at 127.0.0.1:<port> as a process).
//
// An architecture is a placement of the shop's contexts: a split (services/bounded) of them
// into groups, each group one service running the host (services/host) with its contexts.
// The monolith is one group of every context and the edge, the microservices one group per
// context and the edge alone; named topologies are files in topologies/ (File), and any
// other split is one flag away (Options.Split).
//
// Placeholders in Args and Env values, expanded by Expand:
//
//	{{listen}}          this service's listen address for its first port
//	{{listen:PORT}}     ... for its port PORT (a container port listed in Ports)
//	{{addr:SVC}}        host:port where SVC's first port is reached from another service
//	{{addr:SVC:PORT}}   ... SVC's port PORT
//	{{data}}            this service's data directory (DataDir in a container)
//	{{admin_token}}     the stack's admin token
//	{{request_key}}     the stack's key of checkout request hashes (SHOP_REQUEST_KEY)
//	{{nats_url:SVC}}    the URL this service dials the NATS server SVC at (NATSURL), as its user
//	{{pki}}             the stack's PKI folder as the service sees it (Service.PKI)
//	{{stack}}           the stack's name
package topology

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Names of the architectures DESIGN.md names, and of both of them at once.
const (
	Monolith = "monolith"
	Services = "services"
	Both     = "both"
)

// Default edges (DESIGN.md): the monolith's, the services', and the first of the others',
// which take the ports after it in the order they are asked for.
const (
	MonolithEdge = "127.0.0.1:8080"
	ServicesEdge = "127.0.0.1:8081"
	OtherEdges   = "127.0.0.1:8082"
)

// SplitName is the architecture Options.Split makes, unless Options.SplitName names it.
const SplitName = "split"

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
	Group     string            // the contexts it runs, as SHOP_GROUP writes them; "" for NATS and the collector
	Ports     []int             // ports it listens on, the first one its main port
	Edge      string            // host address its main port is published on ("": 127.0.0.1, any port)
	Publish   map[int]string    // host addresses of its other ports, where fixed ("": 127.0.0.1, any port)
	Args      []string          // arguments after the entrypoint; placeholders allowed
	Env       map[string]string // placeholders allowed
	Probe     Probe
	DependsOn []string // services that must be ready before this one starts
	CPUs      float64  // CPU limit of each of its processes, in cores: its share of the architecture's budget; 0 under a Shared budget (Arch.Budget limits them all)
	MemoryMB  int      // memory limit of each of its processes, in MiB: likewise
	DataDir   string   // if set, a volume is mounted here (state that survives a restart)
	// PKI says it holds the stack's PKI folder, the CA's key in it, read-write ({{pki}}; in
	// a container, mounted at PKIMount): the renewer only.
	PKI bool
	// Replicas is how many processes run it (0 and 1: one), each named as Processes says and
	// reached at once by its callers (see Arch.Addr); see replicas.go.
	Replicas int

	weight bounded.Weight // its share of the budget, before share sets CPUs and MemoryMB
}

// Arch is one architecture: a set of services with its own NATS, network and edge.
type Arch struct {
	Name     string // "monolith", "services", a topology file's name, SplitName, or <placement>-<mode>
	Edge     string // where its public HTTP API answers
	Split    string // its placement, as --split writes it; "" for the collector's
	Services []Service

	// Placement is the topology it runs: a topology file's name or SplitName; Name, unless
	// it runs under a budget mode of its own (placement@mode, ParseArchs).
	Placement string
	// Mode is how its Budget is enforced; "" for the collector's, which has limits of its own.
	Mode   Mode
	Budget Budget // what it gets in total
	// Calibration is where a Measured budget's shares come from; nil in the other modes.
	Calibration *CalibrationRef
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
	// Renewer renews the certificates of the running stack (renewer.go); nil for none.
	// Local runtimes run it as an architecture of its own (RenewerArch) unless the stack runs
	// insecure; deploy targets leave it to cert-manager or their platform.
	Renewer *Service
	Budget  Budget // what each architecture was given in total
}

// Options adjust a topology without changing its shape: tests move the edges off the
// well-known ports, users change the budget or add a split of their own.
type Options struct {
	// Dir holds the topology files; "" means topologies/ of the repository (FindDir).
	Dir          string
	MonolithEdge string            // default MonolithEdge
	ServicesEdge string            // default ServicesEdge
	Edges        map[string]string // other architectures' edges, by name; default from their file, else OtherEdges and up
	// Split adds an architecture placed as --split writes it ("catalog+inventory,cart+orders"),
	// named SplitName (or SplitName), on its edge from Edges.
	Split     string
	SplitName string
	// Collector is the collector's query API edge (default 127.0.0.1:16686, with OTLP on
	// 4317 and 4318 of the same host); with port 0, every port of it is picked freely;
	// NoCollector leaves it out.
	Collector string
	// NoRenewer leaves the renewer out: for deploy targets, whose platform renews the
	// certificates (cert-manager, Secrets Manager and a redeploy), or which add it as they
	// run it (compose: NewRenewer).
	NoRenewer bool
	Budget    Budget // per architecture; zero fields take the defaults
	// Mode is the budget mode of the architectures named without one (placement@mode names
	// one); "" means PerService.
	Mode Mode
	// CalibrationDir holds the calibrations a Measured budget is sized by (Calibration).
	CalibrationDir string
	// Env adds variables to the services that run a target (`mitosis up --env`): a harmless
	// change that remakes, and so rolls, only them (see EnvSetting).
	Env []EnvSetting
}

// NoCollector as Options.Collector runs the stack without a trace collector.
const NoCollector = "none"

// Get returns the topology of the architectures names lists, comma-separated: topology
// files' names (monolith, services, hybrid...), or "both" for monolith and services, each
// with an optional budget mode (services@shared: see ParseArchs). With Options.Split, names
// may be "" (the split alone) or list others to run beside it.
func Get(names string, opts Options) (Topology, error) {
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
	entries, err := ParseArchs(names, opts)
	if err != nil {
		return Topology{}, err
	}
	list := make([]string, len(entries))
	for i, e := range entries {
		list[i] = e.Name
	}
	t := Topology{Name: strings.Join(list, ","), Budget: opts.Budget}
	if names == Both || (names == "" && opts.Split == "") {
		t.Name = Both
	}
	// Each placement's groups, and the edge its file asks for.
	groups := make([][]group, len(entries))
	fileEdges := make([]string, len(entries))
	for i, e := range entries {
		if opts.Split != "" && e.Placement == splitName(opts) {
			groups[i], err = splitGroups(opts.Split)
		} else {
			groups[i], fileEdges[i], err = fromFile(opts.Dir, e.Placement)
		}
		if err != nil {
			return Topology{}, err
		}
	}
	edges := assignEdges(entries, fileEdges, opts)
	for i, e := range entries {
		a, err := newArch(e.Name, edges[i], groups[i])
		if err != nil {
			return Topology{}, err
		}
		a.Placement, a.Mode = e.Placement, e.Mode
		if err := applyBudget(&a, opts.Budget, opts.CalibrationDir); err != nil {
			return Topology{}, err
		}
		t.Archs = append(t.Archs, a)
	}
	if err := applyEnv(t.Archs, opts.Env); err != nil {
		return Topology{}, err
	}
	edgesSeen := map[string]string{}
	for _, a := range t.Archs {
		if other, dup := edgesSeen[a.Edge]; dup && a.Edge != "" && !strings.HasSuffix(a.Edge, ":0") {
			return Topology{}, fmt.Errorf("%s and %s both want the edge %s: give one another (-t's files, --edge, --monolith-edge, --services-edge)", other, a.Name, a.Edge)
		}
		edgesSeen[a.Edge] = a.Name
	}
	if opts.Collector != NoCollector {
		c, err := collector(opts.Collector)
		if err != nil {
			return Topology{}, err
		}
		t.Collector = &c
	}
	if !opts.NoRenewer {
		r := NewRenewer()
		t.Renewer = &r
	}
	if err := t.Validate(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

func splitName(opts Options) string {
	if opts.SplitName != "" {
		return opts.SplitName
	}
	return SplitName
}

// assignEdges says where each architecture's edge is: the options', else the well-known
// ones of the monolith and the services, else its file's (for an architecture named after
// its placement), else, once those are all handed out, the first of OtherEdges and up that
// none has.
func assignEdges(entries []Entry, fileEdges []string, opts Options) []string {
	out := make([]string, len(entries))
	used := map[string]bool{}
	for i, e := range entries {
		switch {
		case opts.Edges[e.Name] != "":
			out[i] = opts.Edges[e.Name]
		case e.Name == Monolith:
			out[i] = opts.MonolithEdge
		case e.Name == Services:
			out[i] = opts.ServicesEdge
		case e.Name == e.Placement && fileEdges[i] != "":
			// placement@mode runs beside the placement's own: the file's edge is that one's.
			out[i] = fileEdges[i]
		}
		used[out[i]] = true
	}
	host, port, _ := net.SplitHostPort(OtherEdges)
	p, _ := strconv.Atoi(port)
	for i := range entries {
		if out[i] != "" {
			continue
		}
		for ; used[net.JoinHostPort(host, strconv.Itoa(p))]; p++ {
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(p))
		used[out[i]] = true
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
		Ports:   []int{CollectorQueryPort, CollectorGRPCPort, CollectorHTTPPort, MetricsPort},
		Edge:    edge,
		Publish: publish,
		Args: []string{"-query", "{{listen}}", "-grpc", "{{listen:4317}}", "-http", "{{listen:4318}}",
			"-max-spans", "100000", "-metrics", "{{listen:" + strconv.Itoa(MetricsPort) + "}}"},
		// 100,000 spans at about 1.5 KB each, and the last minutes of metrics
		// (tracecollect.DefaultMaxMetricBytes, 24 MiB).
		Env:      map[string]string{"GOMEMLIMIT": "224MiB"},
		Probe:    Probe{Kind: HTTP, Port: CollectorQueryPort, Path: "/healthz"},
		CPUs:     0.5,
		MemoryMB: 288,
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

// AllArchs is what a local runtime runs: the collector's architecture first, where there is
// one (the others export to it from their start), then the architectures, then the
// renewer's, where there is one (nothing waits for it, and an up refused on an architecture
// has started nothing of it).
func (t Topology) AllArchs() []Arch {
	var out []Arch
	if c, ok := t.CollectorArch(); ok {
		out = append(out, c)
	}
	out = append(out, t.Archs...)
	if r, ok := t.RenewerArch(); ok {
		out = append(out, r)
	}
	return out
}

// ExportEnv is the environment that makes a service export its telemetry to the collector
// whose OTLP/HTTP receiver is at addr (host:port). With addr "" it turns exporting off,
// unless given (the environment the caller passes through) names an OTLP endpoint of its
// own: a service's SDK would otherwise export to the specification's default,
// localhost:4318, which on this machine may be another stack's collector.
func ExportEnv(addr string, given map[string]string) map[string]string {
	if addr != "" {
		return map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr,
			"OTEL_BSP_SCHEDULE_DELAY":     strconv.FormatInt(tracecollect.ExportDelay.Milliseconds(), 10),
			"OTEL_METRIC_EXPORT_INTERVAL": strconv.FormatInt(tracecollect.MetricExportInterval.Milliseconds(), 10),
		}
	}
	for k := range given {
		if strings.HasPrefix(k, "OTEL_EXPORTER_OTLP_") && strings.HasSuffix(k, "ENDPOINT") {
			return nil
		}
	}
	return map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
}

// Validate checks the references a runtime relies on: unique names, known dependencies
// without cycles, probe ports among the ports, placeholders that resolve.
func (t Topology) Validate() error {
	for _, a := range t.AllArchs() {
		seen := map[string]Service{}
		procs := map[string]string{} // process name → its service
		for _, s := range a.Services {
			if s.Name == "" || s.Image == "" || len(s.Ports) == 0 {
				return fmt.Errorf("%s/%s: a service needs a name, an image and a port", a.Name, s.Name)
			}
			if _, dup := seen[s.Name]; dup {
				return fmt.Errorf("%s: two services named %s", a.Name, s.Name)
			}
			seen[s.Name] = s
			if s.Replicas < 0 || s.Replicas > MaxReplicas {
				return fmt.Errorf("%s/%s: %d replicas, want 1 to %d", a.Name, s.Name, s.Replicas, MaxReplicas)
			}
			for _, p := range s.Processes() {
				if other, dup := procs[p.Name]; dup {
					return fmt.Errorf("%s: %s names a process of %s and of %s: rename one", a.Name, p.Name, other, s.Name)
				}
				procs[p.Name] = s.Name
			}
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

// Identity is the workload identity the service's processes need (platform/identity), its
// group's process name (bounded.Group.Name: the replicas of a group, and the same group in
// two architectures, are one identity with the same rights), identity.NATS for NATS; "" for
// a service that neither serves nor calls gRPC nor NATS.
func (s Service) Identity() string {
	if _, ok := s.Env[NATSTLSDirEnv]; ok && s.Group == "" {
		return identity.NATS
	}
	if _, ok := s.Env[TLSDirEnv]; !ok || s.Group == "" {
		return ""
	}
	g, err := bounded.ParseGroup(s.Group)
	if err != nil {
		return ""
	}
	return g.Name()
}

// Identities are the identities of every service of the topology, once each, sorted.
func (t Topology) Identities() []string {
	var out []string
	for _, a := range t.AllArchs() {
		for _, s := range a.Services {
			if id := s.Identity(); id != "" && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Image is one image a topology needs built.
type Image struct {
	Name    string
	Package string
	Tags    []string // build tags: a group's image links only its contexts (services/bounded)
}

// Images lists the images of a topology once each, in a stable order.
func (t Topology) Images() []Image {
	seen := map[string]bool{}
	var out []Image
	for _, a := range t.AllArchs() {
		for _, s := range a.Services {
			if !seen[s.Image] {
				seen[s.Image] = true
				im := Image{Name: s.Image, Package: s.Package}
				if g, err := bounded.ParseGroup(s.Group); err == nil && s.Group != "" {
					im.Tags = g.BuildTags()
				}
				out = append(out, im)
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
	RequestKey string
	TLS        string // the service's identity folder as the process sees it (Service.Identity)
	// NATSUser is the service's NATS user with its password, nil for none; NATSUsers the
	// NATS server's users file as it sees it, "" for none (platform/natsauth).
	NATSUser  *url.Userinfo
	NATSUsers string
	// NATSTLS says the NATS server has its identity, so the services dial it over TLS
	// (platform/natsauth.Creds.Resolve, the rendered deploy files).
	NATSTLS bool
	PKI     string // the stack's PKI folder as the service sees it (Service.PKI)
	Stack   string // the stack's name
}

// NATSURL is the URL a client dials the NATS server at addr (host:port) with: tls:// where
// the server has its identity (secure), else nats://, with user's credentials (nil: none)
// escaped as a URL's user information. Every NATS URL of a stack and of the deploy files is
// made here.
func NATSURL(secure bool, user *url.Userinfo, addr string) string {
	u := url.URL{Scheme: "nats", User: user, Host: addr}
	if secure {
		u.Scheme = "tls"
	}
	return u.String()
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
			case "request_key":
				return r.RequestKey
			case "tls":
				return r.TLS
			case "nats_url":
				var a string
				if a, err = r.Addr(p[2], 0); err != nil {
					return m
				}
				return NATSURL(r.NATSTLS, r.NATSUser, a)
			case "nats_users":
				return r.NATSUsers
			case "pki":
				return r.PKI
			case "stack":
				return r.Stack
			}
			err = fmt.Errorf("unknown placeholder %s", m)
			return m
		})
	}
	for _, a := range s.Args {
		args = append(args, expand(a))
	}
	env = make(map[string]string, len(s.Env))
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		env[k] = expand(s.Env[k])
	}
	return args, env, err
}
