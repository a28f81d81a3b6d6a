// Package host runs any group of the shop's contexts in one process: the monolith is the
// host with every context and the edge, a microservice is the host with one context, the
// gateway is the host with the edge alone, and any split in between is a set of hosts. The
// table of contexts (services/bounded) says what each context needs; the host opens its
// buckets, builds its contexts, calls the colocated ones in process (through shop/traced,
// so that traces keep their shape) and the others through their gRPC clients, serves its
// contexts over gRPC and the edge over HTTP, subscribes the consumers and starts the loops.
//
// It heals itself: should the store connection close for good (nats.go gives up on a
// connection after a server error it takes as fatal), the host says so on /healthz and in
// gRPC health, stops what it built on that connection, and builds it again on a new one,
// while its listeners keep their addresses.
//
// No rule of the shop lives here: that is shop/'s. The host only wires.
package host

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// Config is a host's configuration.
type Config struct {
	Group bounded.Group
	// Name names the process in logs and telemetry (OTEL_SERVICE_NAME wins there).
	Name string
	// Arch names the architecture it is part of ("monolith", "services", a hybrid's name):
	// the mitosis.architecture attribute of its spans.
	Arch string
	// NatsURL is the store; "" embeds a NATS server, which only a group holding every
	// context may do (its state is then its own): DataDir holds its files.
	NatsURL string
	DataDir string
	// GRPCAddr is where the group's contexts are served over gRPC; "" serves none (a whole
	// group nobody calls). Port 0 picks one, kept across self-healing.
	GRPCAddr string
	// HTTPAddr is where the edge listens, for a group that holds it.
	HTTPAddr string
	// MetricsAddr is where Prometheus scrapes the process's metrics (/metrics; Main hands
	// it to platform/telemetry); "" serves none, as under Lambda, where nothing listens.
	MetricsAddr string
	// HealthAddr is where the process answers its orchestrator's probes over plain HTTP:
	// /healthz and /readyz, as an edge does, for a process whose gRPC port takes only
	// callers with a certificate of the stack (probes.go); "" serves none.
	HealthAddr string
	// Lambda serves AWS Lambda's invocations instead of listening (LambdaRuntimeEnv is set):
	// the edge's, for a group holding the edge, or the checkout's calls (CheckoutSteps); on an
	// external store either way.
	Lambda bool
	// CheckoutSteps serves, under Lambda, the checkout state machine's calls of the group's
	// one context instead of the edge (SHOP_LAMBDA_ROLE=checkout-steps; services/checkoutstep).
	CheckoutSteps bool
	AdminToken    string
	// Peers are the addresses of the remote contexts the group calls.
	Peers map[string]string
	// SoleReplica: this process is its group's only one (see bounded.Deps).
	SoleReplica  bool
	CallTimeout  time.Duration // deadline of a call to a peer made without one
	DrainTimeout time.Duration // how long a stop waits for requests and calls in flight
	HealthEvery  time.Duration // how often stores and peers are checked
	LogLevel     slog.Level
	// Getenv is the process's environment, for the contexts' own settings.
	Getenv func(string) string
	// Store is how buckets and streams are kept: SHOP_NATS_REPLICAS copies of each, and
	// each one's byte limit (natsjs.StoreConfig).
	Store natsjs.StoreConfig
	// Security protects the gRPC the group serves and calls: mutual TLS with the identity
	// in SHOP_TLS_DIR or SHOP_TLS_*_PEM (TLSEnv) and per-method authorization, unless SHOP_INSECURE (see Security).
	Security Security
	// TracerProvider traces the calls between colocated contexts and the store operations;
	// nil means OpenTelemetry's global provider (as platform/telemetry sets it up).
	TracerProvider trace.TracerProvider
}

// Defaults of Config.
const (
	DefaultCallTimeout  = 10 * time.Second
	DefaultDrainTimeout = 20 * time.Second
	DefaultHealthEvery  = 2 * time.Second
	// Edge addresses when unset: a whole group is the monolith (DESIGN.md: 8080), any
	// other edge is the microservices' gateway (8081).
	MonolithAddr = "127.0.0.1:8080"
	GatewayAddr  = "127.0.0.1:8081"
)

// DefaultAddr is a context's gRPC address on one machine (DESIGN.md: 127.0.0.1:9101 and up).
func DefaultAddr(context string) string {
	c, ok := bounded.Lookup(context)
	if !ok {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", c.Port)
}

// MetricsAddrEnv is the variable that holds Config.MetricsAddr.
const MetricsAddrEnv = bounded.MetricsAddrEnv

// HealthAddrEnv is the variable that holds Config.HealthAddr.
const HealthAddrEnv = bounded.HealthAddrEnv

// AddrEnv is the variable that holds a context's address, e.g. SHOP_CATALOG_ADDR.
func AddrEnv(context string) string { return "SHOP_" + strings.ToUpper(context) + "_ADDR" }

// ConfigFrom reads a host's configuration from the environment:
//
//	SHOP_GROUP          the group (ParseGroup); def when unset
//	SHOP_NATS_URL       the store (unset: embedded, for a whole group only, and only in a
//	                    binary built without a group's tags: embedsStore)
//	SHOP_DATA_DIR       the embedded store's files (default .mitosis/data)
//	SHOP_GRPC_ADDR      the gRPC address (default the first context's DefaultAddr; a whole
//	                    group serves no gRPC unless it is set)
//	SHOP_ADDR           the edge's address (default 127.0.0.1:8080 for a whole group, else 8081)
//	SHOP_METRICS_ADDR   where Prometheus scrapes /metrics (unset: no endpoint; the platform's
//	                    runtimes give every process one, platform/topology.MetricsPort)
//	SHOP_HEALTH_ADDR    where /healthz and /readyz answer over plain HTTP, for probes that
//	                    cannot present a certificate (unset: none; the Kubernetes manifests
//	                    set it, platform/topology.HealthPort)
//	SHOP_<CONTEXT>_ADDR each remote context's address (default its DefaultAddr), or its
//	                    group's replicas' addresses joined by commas (see Dial)
//	SHOP_ADMIN_TOKEN    the admin routes' bearer token (unset: they answer 401)
//	SHOP_SOLE_REPLICA   true or false (default true for a whole group, else false; false
//	                    under Lambda)
//	AWS_LAMBDA_RUNTIME_API  set by AWS Lambda: serve its invocations instead of SHOP_ADDR
//	                    (a group with the edge and SHOP_NATS_URL only; see lambda.go)
//	SHOP_LAMBDA_ROLE    under Lambda, what the function serves: http (default: the edge), or
//	                    checkout-steps: the checkout state machine's calls of the group's one
//	                    context (services/checkoutstep)
//	SHOP_ARCH           the architecture's name (default monolith for a whole group, else services)
//	SHOP_NATS_REPLICAS  copies of every bucket and stream (default 1; 3 on a 3-node cluster)
//	SHOP_RPC_TIMEOUT    deadline of a call made without one (default 10s)
//	SHOP_TLS_DIR        the folder of the process's identity: cert.pem, key.pem, ca.pem
//	                    (platform/identity; `mitosis up` makes them); it or the next three
//	                    are required by a group that serves or calls gRPC
//	SHOP_TLS_CERT_PEM, SHOP_TLS_KEY_PEM, SHOP_TLS_CA_PEM
//	                    the same identity as PEM text, where no file can be mounted (ECS
//	                    fills them from Secrets Manager); read once: a renewed certificate
//	                    needs a new process. Not with SHOP_TLS_DIR (refused)
//	SHOP_INSECURE       true: plaintext gRPC and no authorization, only to measure what
//	                    security costs (logged loudly)
//	SHOP_LOG_LEVEL      debug, info (default), warn or error
func ConfigFrom(getenv func(string) string, def bounded.Group) (Config, error) {
	g := def
	if v := getenv("SHOP_GROUP"); v != "" {
		var err error
		if g, err = bounded.ParseGroup(v); err != nil {
			return Config{}, fmt.Errorf("SHOP_GROUP: %w", err)
		}
	}
	if len(g.Contexts) == 0 && !g.Edge {
		return Config{}, fmt.Errorf("SHOP_GROUP is required: contexts joined by '+', e.g. catalog+inventory")
	}
	cfg := Config{
		Group:        g,
		NatsURL:      getenv("SHOP_NATS_URL"),
		DataDir:      or(getenv("SHOP_DATA_DIR"), ".mitosis/data"),
		GRPCAddr:     getenv("SHOP_GRPC_ADDR"),
		MetricsAddr:  getenv(MetricsAddrEnv),
		HealthAddr:   getenv(HealthAddrEnv),
		AdminToken:   getenv("SHOP_ADMIN_TOKEN"),
		Peers:        map[string]string{},
		SoleReplica:  g.Whole(),
		Arch:         "services",
		CallTimeout:  DefaultCallTimeout,
		DrainTimeout: DefaultDrainTimeout,
		HealthEvery:  DefaultHealthEvery,
		Getenv:       getenv,
		Store:        natsjs.StoreConfigFrom(getenv),
	}
	cfg.Name = g.Name()
	if g.Whole() {
		cfg.Arch = "monolith"
	}
	cfg.Arch = or(getenv("SHOP_ARCH"), cfg.Arch)
	if cfg.GRPCAddr == "" && len(g.Contexts) > 0 && !g.Whole() {
		cfg.GRPCAddr = DefaultAddr(g.Contexts[0])
	}
	if g.Edge {
		cfg.HTTPAddr = or(getenv(bounded.AddrEnv), GatewayAddr)
		if g.Whole() {
			cfg.HTTPAddr = or(getenv(bounded.AddrEnv), MonolithAddr)
		}
	}
	for _, c := range g.Remote() {
		cfg.Peers[c] = or(getenv(AddrEnv(c)), DefaultAddr(c))
	}
	if cfg.NatsURL == "" && len(g.Contexts) > 0 && !g.Whole() {
		return cfg, fmt.Errorf("SHOP_NATS_URL is required: a group of some contexts (%s) shares its store with the others and never embeds one", g)
	}
	if cfg.NatsURL == "" && len(g.Contexts) > 0 && !embedsStore {
		return cfg, errNoEmbeddedStore
	}
	if err := cfg.Store.Check(); err != nil {
		return cfg, err
	}
	if cfg.NatsURL == "" && cfg.Store.Replicas > 1 {
		return cfg, fmt.Errorf("%s=%d: the embedded NATS is a lone server, which keeps one copy (set SHOP_NATS_URL to a cluster)", natsjs.ReplicasEnv, cfg.Store.Replicas)
	}
	role := getenv(checkoutstep.RoleEnv)
	if role != "" && getenv(LambdaRuntimeEnv) == "" {
		return cfg, fmt.Errorf("%s=%s is set, but %s is not: only a Lambda function has a role", checkoutstep.RoleEnv, role, LambdaRuntimeEnv)
	}
	if role == checkoutstep.Role {
		// A checkout step function (services/checkoutstep): one context the checkout calls,
		// run in process over its buckets; no gRPC served nor called, no edge.
		// Its store is NATS elsewhere: a group of one context has no other (checked above).
		if err := checkoutStepsGroup(g); err != nil {
			return cfg, fmt.Errorf("%s=%s: %w", checkoutstep.RoleEnv, role, err)
		}
		cfg.Lambda, cfg.CheckoutSteps, cfg.SoleReplica = true, true, false
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr, cfg.Peers = "", "", "", "", map[string]string{}
	} else if role != "" && role != "http" {
		return cfg, fmt.Errorf("%s=%q: want http (the default: the edge) or %s", checkoutstep.RoleEnv, role, checkoutstep.Role)
	}
	if getenv(LambdaRuntimeEnv) != "" && !cfg.CheckoutSteps {
		// Lambda runs as many copies of a function as requests need, freezes each between
		// invocations and discards it at will: nothing may live in its file system, and none
		// is the only replica.
		switch {
		case !g.Edge:
			return cfg, fmt.Errorf("%s is set, but the group %s has no edge: a Lambda function serves HTTP invocations", LambdaRuntimeEnv, g)
		case len(g.Contexts) > 0 && !g.Whole():
			return cfg, fmt.Errorf("%s is set, but the group %s serves contexts to its peers over gRPC, which a function cannot: only the whole shop or the edge alone run as one", LambdaRuntimeEnv, g)
		case cfg.NatsURL == "" && len(g.Contexts) > 0:
			return cfg, fmt.Errorf("%s is set: a function keeps nothing between invocations, so its store must be NATS elsewhere (set SHOP_NATS_URL)", LambdaRuntimeEnv)
		}
		// Nor does it listen: a function's metrics go out over OTLP (the ADOT layer), if
		// anywhere, never to a scrape.
		cfg.Lambda, cfg.SoleReplica, cfg.HTTPAddr, cfg.MetricsAddr, cfg.HealthAddr = true, false, "", "", ""
	}
	if v := getenv("SHOP_SOLE_REPLICA"); v != "" {
		switch v {
		case "true":
			cfg.SoleReplica = true
		case "false":
			cfg.SoleReplica = false
		default:
			return cfg, fmt.Errorf("SHOP_SOLE_REPLICA=%q: want true or false", v)
		}
	}
	if v := getenv("SHOP_RPC_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("SHOP_RPC_TIMEOUT=%q: want a positive duration such as 5s", v)
		}
		cfg.CallTimeout = d
	}
	if err := cfg.readSecurity(getenv); err != nil {
		return cfg, err
	}
	_ = cfg.LogLevel.UnmarshalText([]byte(getenv("SHOP_LOG_LEVEL"))) // unset or unknown: info
	return cfg, nil
}

// Variables of a process's security.
const (
	TLSDirEnv   = "SHOP_TLS_DIR"
	InsecureEnv = "SHOP_INSECURE"
)

// TLSEnv are the variables a process takes its identity from: the folder SHOP_TLS_DIR, or
// the PEM texts SHOP_TLS_CERT_PEM, SHOP_TLS_KEY_PEM and SHOP_TLS_CA_PEM where no file can be
// mounted (ECS fills them from Secrets Manager); never both (identity.Env.Open).
var TLSEnv = identity.EnvFor(TLSDirEnv)

// readSecurity reads the identity (TLSEnv) and SHOP_INSECURE: a group that serves or calls
// gRPC needs one of them.
func (cfg *Config) readSecurity(getenv func(string) string) error {
	switch v := getenv(InsecureEnv); v {
	case "", "false":
	case "true":
		cfg.Security = Security{Insecure: true}
		return nil
	default:
		return fmt.Errorf("%s=%q: want true or false", InsecureEnv, v)
	}
	src, err := TLSEnv.Open(getenv)
	switch {
	case errors.Is(err, identity.ErrNoEnv):
		if cfg.GRPCAddr == "" && len(cfg.Peers) == 0 {
			return nil // no gRPC at all: nothing to protect
		}
		return fmt.Errorf("%s is required (or %s, %s and %s): the group %s serves or calls gRPC, which runs over mutual TLS with the process's identity (`mitosis up` makes one; %s=true runs without, to measure the cost only)",
			TLSDirEnv, TLSEnv.Cert, TLSEnv.Key, TLSEnv.CA, cfg.Group, InsecureEnv)
	case err != nil:
		return err
	}
	cfg.Security = Security{Identity: src}
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
