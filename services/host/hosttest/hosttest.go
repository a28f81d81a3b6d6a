// Package hosttest runs hosts (services/host) inside a test process: any group of contexts
// on real sockets and a real NATS server, stopped when the test ends. The host's own tests
// and the split-tax benchmarks use it; the end-to-end tests run real processes instead
// (platform/processrt).
package hosttest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/identity"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/shop/natsembed"
)

// Token is the admin token of every host started here.
const Token = "hosttest-admin-token"

// NATS is a NATS server on a loopback port that a test can stop and start again on the same
// port and files.
type NATS struct {
	tb   testing.TB
	dir  string
	addr string
	ns   *natsembed.Server
}

// StartNATS starts a NATS server with JetStream on a free loopback port, stopped when tb ends.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	s := &NATS{tb: tb, dir: tb.TempDir(), addr: "127.0.0.1:-1"}
	s.Start()
	u, err := url.Parse(s.ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = u.Host
	tb.Cleanup(s.Stop)
	return s
}

// URL is where clients reach the server.
func (s *NATS) URL() string { return "nats://" + s.addr }

// Start starts the server (again) on its port and files.
func (s *NATS) Start() {
	s.tb.Helper()
	ns, err := natsembed.Start(s.dir, s.addr)
	if err != nil {
		s.tb.Fatal(err)
	}
	s.ns = ns
}

// Stop stops the server; its files stay.
func (s *NATS) Stop() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns = nil
	}
}

// Host is a host started by a test.
type Host struct {
	Config   host.Config
	BaseURL  string // http://addr of its edge, for a group that holds it
	GRPCAddr string // where its contexts answer, for a group that serves them
	// ProbesURL is http://addr of its probes, for a host given Config.HealthAddr.
	ProbesURL string
	serving   chan *host.Generation
	done      chan error
	stop      func() error
}

// Start runs a host of group (as SHOP_GROUP writes it) with env added to its environment,
// until tb ends, and returns once it serves. Its logs at warning and above go to tb's log.
// Unless env says otherwise, it listens on free loopback ports.
func Start(tb testing.TB, group string, env map[string]string) *Host {
	tb.Helper()
	return StartConfig(tb, Config(tb, group, env))
}

// Config is the configuration Start runs a host of group with: the environment's, with
// health checks every 50 ms (a test sees a peer come and go at once) and short timeouts.
func Config(tb testing.TB, group string, env map[string]string) host.Config {
	tb.Helper()
	vars := map[string]string{"SHOP_GROUP": group, "SHOP_ADMIN_TOKEN": Token, bounded.AddrEnv: "127.0.0.1:0", "SHOP_GRPC_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		vars[k] = v
	}
	if vars[host.TLSDirEnv] == "" && vars[host.TLSEnv.Cert] == "" && vars[host.InsecureEnv] == "" {
		g, err := bounded.ParseGroup(group)
		if err != nil {
			tb.Fatal(err)
		}
		vars[host.TLSDirEnv] = IdentityDir(tb, g.Name())
	}
	cfg, err := host.ConfigFrom(func(k string) string { return vars[k] }, bounded.Group{})
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Group.Whole() && env["SHOP_GRPC_ADDR"] == "" {
		cfg.GRPCAddr = "" // as its main runs it: nobody calls a whole group
	}
	cfg.HealthEvery = 50 * time.Millisecond
	cfg.CallTimeout = 5 * time.Second
	cfg.DrainTimeout = 10 * time.Second
	return cfg
}

// Stack is the stack name in the identities of hosts started here.
const Stack = "hosttest"

// cas holds the CA of each test that made one, so that every host a test starts (in its
// subtests too) trusts the others, and no two tests trust each other's. A CA lives in the
// folder of the test that made it and goes with it: a subtest that makes one keeps it to
// itself, rather than leave its successors writing identities into a folder already
// removed (which recreated it, and left it behind in the temporary directory).
var cas sync.Map // test name → *identity.CA

// CA is the certificate authority of the hosts tb starts: that of tb or of the closest of
// its parents that has one, else a new one of tb's.
func CA(tb testing.TB) *identity.CA {
	tb.Helper()
	for name := tb.Name(); ; {
		if ca, ok := cas.Load(name); ok {
			return ca.(*identity.CA)
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			break
		}
		name = name[:i]
	}
	ca, err := identity.OpenCA(tb.TempDir(), Stack)
	if err != nil {
		tb.Fatal(err)
	}
	name := tb.Name()
	got, loaded := cas.LoadOrStore(name, ca)
	if !loaded {
		tb.Cleanup(func() { cas.Delete(name) })
	}
	return got.(*identity.CA)
}

// IdentityDir is the folder of service's identity (a process name: bounded.Group.Name, or
// identity.Tooling) under tb's CA.
func IdentityDir(tb testing.TB, service string) string {
	tb.Helper()
	dir, err := CA(tb).Ensure(service)
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Security is what a process running service (a group's name, or identity.Tooling) uses to
// call the hosts tb starts: its certificate from tb's CA.
func Security(tb testing.TB, service string) host.Security {
	tb.Helper()
	sec, err := host.Secure(IdentityDir(tb, service))
	if err != nil {
		tb.Fatal(err)
	}
	return sec
}

// RequestKey is the key of checkout request hashes of every host started here, unless its
// environment says otherwise.
const RequestKey = "hosttest-request-key"

// StartConfig is Start with a whole configuration.
func StartConfig(tb testing.TB, cfg host.Config) *Host {
	tb.Helper()
	if getenv := cfg.Getenv; getenv(bounded.RequestKeyEnv) == "" {
		cfg.Getenv = func(k string) string {
			if k == bounded.RequestKeyEnv {
				return RequestKey
			}
			return getenv(k)
		}
	}
	h := &Host{Config: cfg, serving: make(chan *host.Generation, 8), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	listening := make(chan struct{}, 3)
	go func() {
		h.done <- host.Run(ctx, cfg, logger, host.Hooks{
			Listening: func(kind string, a net.Addr) {
				switch {
				case kind == "http" && h.BaseURL == "":
					h.BaseURL = "http://" + a.String()
					listening <- struct{}{}
				case kind == "grpc" && h.GRPCAddr == "":
					h.GRPCAddr = a.String()
					listening <- struct{}{}
				case kind == "probes":
					h.ProbesURL = "http://" + a.String()
					listening <- struct{}{}
				}
			},
			Serving: func(g *host.Generation) { h.serving <- g },
		})
	}()
	var stopped bool
	var stopErr error
	h.stop = func() error {
		if stopped {
			return stopErr
		}
		stopped = true
		cancel()
		select {
		case stopErr = <-h.done:
		case <-time.After(60 * time.Second):
			stopErr = fmt.Errorf("host %s did not stop within 60s", cfg.Group)
		}
		return stopErr
	}
	tb.Cleanup(func() {
		if err := h.Stop(); err != nil {
			tb.Errorf("host %s stopped with: %v", cfg.Group, err)
		}
	})
	want := 0
	if cfg.Group.Edge {
		want++
	}
	if cfg.GRPCAddr != "" && len(cfg.Group.Contexts) > 0 {
		want++
	}
	if cfg.HealthAddr != "" && !cfg.Lambda {
		want++
	}
	for range want {
		select {
		case <-listening:
		case err := <-h.done:
			tb.Fatalf("host %s did not start: %v", cfg.Group, err)
		case <-time.After(60 * time.Second):
			tb.Fatalf("host %s not serving after 60s", cfg.Group)
		}
	}
	return h
}

// StartContexts runs one host per context, as the microservices run, each serving its
// context over gRPC on a free loopback port, with env added to its environment, until tb
// ends. It returns the variables an edge finds them by (AddrEnv of each context). The hosts
// start in bounded.Order, each after the contexts it calls (they have no cycle), so each is
// told its peers' addresses without any port being picked ahead of its listener.
func StartContexts(tb testing.TB, env map[string]string) map[string]string {
	tb.Helper()
	addrs := map[string]string{}
	for _, name := range bounded.Order(bounded.Names()) {
		own := maps.Clone(env)
		maps.Copy(own, addrs)
		own["SHOP_GRPC_ADDR"] = "127.0.0.1:0"
		addrs[host.AddrEnv(name)] = Start(tb, name, own).GRPCAddr
	}
	return addrs
}

// Stop stops the host and returns what it returned; it is idempotent.
func (h *Host) Stop() error { return h.stop() }

// Next waits for the host's next generation to serve: the first one, then one after each
// self-healing.
func (h *Host) Next(tb testing.TB) *host.Generation {
	tb.Helper()
	select {
	case g := <-h.serving:
		return g
	case <-time.After(30 * time.Second):
		tb.Fatal("no generation served within 30s")
		return nil
	}
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
