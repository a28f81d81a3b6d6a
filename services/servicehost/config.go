// Package servicehost is what every service process shares, so that each context's main reads like
// the monolith's: configuration from the environment, the gRPC server (health, reflection,
// keepalive, panic recovery), one connection per peer (a default deadline per call, retries
// for idempotent reads), the NATS stores and event consumers, background loops, and the
// lifecycle (SERVING once stores and peers answer, graceful stop on signal). No rule of the
// shop lives here: that is shop/'s, and the mains only wire it.
package servicehost

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Contexts are the shop's seven bounded contexts, in the order of their default ports.
func Contexts() []string {
	return []string{"catalog", "cart", "inventory", "payments", "orders", "shipping", "notify"}
}

// DefaultAddr is a context's gRPC address in the process runtime (DESIGN.md: 127.0.0.1:9101
// and up, in the order of Contexts), or "" for an unknown context.
func DefaultAddr(context string) string {
	for i, c := range Contexts() {
		if c == context {
			return fmt.Sprintf("127.0.0.1:%d", 9101+i)
		}
	}
	return ""
}

// AddrEnv is the variable that holds a context's address, e.g. SHOP_CATALOG_ADDR.
func AddrEnv(context string) string { return "SHOP_" + strings.ToUpper(context) + "_ADDR" }

// Config is a service process's configuration.
type Config struct {
	Name         string            // the context this process serves, e.g. "orders"
	GRPCAddr     string            // SHOP_GRPC_ADDR: where it listens; port 0 picks one (logged)
	NatsURL      string            // SHOP_NATS_URL: required, a service never embeds NATS
	Peers        map[string]string // context → address, from SHOP_<CONTEXT>_ADDR
	CallTimeout  time.Duration     // SHOP_RPC_TIMEOUT: deadline of a call to a peer whose context has none
	DrainTimeout time.Duration     // how long a graceful stop waits for calls in flight
	HealthEvery  time.Duration     // how often stores and peers are checked
	LogLevel     slog.Level        // SHOP_LOG_LEVEL
}

// Defaults of Config.
const (
	DefaultCallTimeout  = 10 * time.Second
	DefaultDrainTimeout = 20 * time.Second
	DefaultHealthEvery  = 2 * time.Second
)

// ConfigFrom reads the configuration of the process serving context name, which calls the
// contexts in peers. An unset address is the context's DefaultAddr.
func ConfigFrom(name string, peers []string, getenv func(string) string) (Config, error) {
	cfg := Config{
		Name:         name,
		GRPCAddr:     getenv("SHOP_GRPC_ADDR"),
		NatsURL:      getenv("SHOP_NATS_URL"),
		Peers:        PeerAddrs(peers, getenv),
		CallTimeout:  DefaultCallTimeout,
		DrainTimeout: DefaultDrainTimeout,
		HealthEvery:  DefaultHealthEvery,
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultAddr(name)
	}
	if cfg.GRPCAddr == "" {
		return cfg, fmt.Errorf("SHOP_GRPC_ADDR is required for %s", name)
	}
	if cfg.NatsURL == "" {
		return cfg, fmt.Errorf("SHOP_NATS_URL is required: the %s service keeps its state in NATS JetStream and never embeds a server", name)
	}
	var err error
	if cfg.CallTimeout, err = durationFrom(getenv, "SHOP_RPC_TIMEOUT", DefaultCallTimeout); err != nil {
		return cfg, err
	}
	_ = cfg.LogLevel.UnmarshalText([]byte(getenv("SHOP_LOG_LEVEL"))) // unset or unknown: info
	return cfg, nil
}

// PeerAddrs returns the address of each context in peers, from SHOP_<CONTEXT>_ADDR or its
// DefaultAddr.
func PeerAddrs(peers []string, getenv func(string) string) map[string]string {
	out := make(map[string]string, len(peers))
	for _, p := range peers {
		addr := getenv(AddrEnv(p))
		if addr == "" {
			addr = DefaultAddr(p)
		}
		out[p] = addr
	}
	return out
}

func durationFrom(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 5s", name, v)
	}
	return d, nil
}

// NewLogger returns the process's JSON logger; every line names the service.
func NewLogger(w io.Writer, level slog.Level, service string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With(slog.String("service", service))
}
