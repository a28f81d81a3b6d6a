package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// Hooks let a caller (a test, a main) learn what a host does; every field is optional.
type Hooks struct {
	// Listening learns each address once it serves: "http" for the edge, "grpc" for the
	// contexts (again after each self-healing, at the same address), "probes" for
	// Config.HealthAddr.
	Listening func(kind string, addr net.Addr)
	// Serving is called each time the host has built its contexts on a store connection
	// and serves them: once at start, once more after each self-healing.
	Serving func(*Generation)
}

// Run runs the group until ctx ends, then drains: requests and calls in flight finish (up
// to DrainTimeout), consumers stop with the messages in flight handled, loops end, the store
// connection drains. It heals a store connection lost for good (see the package doc). A
// checkout step function (Config.CheckoutSteps) serves the state machine's calls instead
// (checkoutsteps.go).
func Run(ctx context.Context, cfg Config, logger *slog.Logger, hooks Hooks) error {
	if cfg.CheckoutSteps {
		return serveCheckoutSteps(ctx, cfg, logger, hooks)
	}
	p := &process{cfg: cfg, log: logger, hooks: hooks}
	defer p.close()
	if err := p.start(); err != nil {
		return err
	}
	// The edge starts accepting once the group first serves: until then a client waits in
	// the listen backlog, as it would for a process still starting. Afterwards, while the
	// group is rebuilt on a new store connection, it answers 503.
	edgeDone := make(chan error, 1)
	edgeStarted := false
	startEdge := func() {
		if edgeStarted {
			return
		}
		edgeStarted = true
		if p.cfg.Lambda {
			go func() { edgeDone <- serveLambda(ctx, &p.edge, logger) }()
			return
		}
		if p.httpLn == nil {
			edgeDone <- nil
			return
		}
		go func() { edgeDone <- httpapi.Serve(ctx, p.httpLn, &p.edge, logger, cfg.DrainTimeout) }()
		if hooks.Listening != nil {
			hooks.Listening("http", p.httpLn.Addr())
		}
	}
	for attempt := 0; ; attempt++ {
		g, err := p.serve(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// The store or a peer may be coming up too: say so, and try again.
			delay := min(time.Duration(attempt+1)*restartDelay, maxRestartDelay)
			logger.Error("could not build the group; trying again", "err", err, "in", delay)
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		attempt = 0
		startEdge()
		select {
		case <-ctx.Done():
			// Requests in flight finish on the contexts they started on, then those stop.
			err := <-edgeDone
			g.stop(ctx, cfg.DrainTimeout)
			return err
		case <-g.lost:
			logger.Error("the store connection is closed for good; building the group again on a new one",
				"err", g.lostErr())
			p.edge.set(nil) // /healthz and every request: 503 until the new one serves
			p.current.Store(nil)
			g.stop(ctx, 0)
		}
	}
	if !edgeStarted {
		return nil // stopped before it ever served
	}
	return <-edgeDone
}

// restartDelay and maxRestartDelay space the attempts to build a group whose store or
// peers do not answer yet.
const (
	restartDelay    = 200 * time.Millisecond
	maxRestartDelay = 5 * time.Second
)

// embeddedStore is the store a whole group keeps in its own process when no SHOP_NATS_URL
// is given (embedded.go).
type embeddedStore interface {
	Connect(name string, opts ...nats.Option) (*nats.Conn, error)
	Shutdown()
}

// errNoEmbeddedStore refuses a whole group without SHOP_NATS_URL in a binary that cannot
// embed the store (embedsStore).
var errNoEmbeddedStore = errors.New("SHOP_NATS_URL is required: this binary is an image's, which links no embedded store (go run ./monolith embeds one)")

// process is what outlives a store connection: the listeners' addresses, the embedded
// store, the connections to peers, and the edge's handler.
type process struct {
	cfg   Config
	log   *slog.Logger
	hooks Hooks

	embedded embeddedStore // nil when the store is external
	httpLn   net.Listener
	grpcAddr string // the gRPC address once bound (a port 0 is resolved once)
	peers    Peers
	edge     swapHandler
	current  atomic.Pointer[Generation] // the generation that serves; nil while none does
	probes   *http.Server               // Config.HealthAddr's, or nil (probes.go)
}

func (p *process) start() error {
	if p.cfg.NatsURL == "" && len(p.cfg.Group.Contexts) > 0 {
		ns, err := startEmbedded(p.cfg.DataDir)
		if err != nil {
			return err
		}
		p.embedded = ns
		p.log.Info("embedded NATS started", "data_dir", p.cfg.DataDir)
		// A store of its own keeps its own secrets beside its data, made on first use, so
		// that `go run ./monolith` needs nothing set (a replay after a restart still hashes
		// alike).
		if getenv := p.cfg.Getenv; getenv(bounded.RequestKeyEnv) == "" {
			key, err := stack.Secret(p.cfg.DataDir, "request-key", bounded.RequestKeyEnv)
			if err != nil {
				return err
			}
			p.cfg.Getenv = func(k string) string {
				if k == bounded.RequestKeyEnv {
					return key
				}
				return getenv(k)
			}
		}
	}
	if p.cfg.Group.Edge && !p.cfg.Lambda {
		ln, err := net.Listen("tcp", p.cfg.HTTPAddr)
		if err != nil {
			// The edge's well-known addresses are make up's too: say how to take another.
			return fmt.Errorf("listen %s (%s sets another): %w", p.cfg.HTTPAddr, bounded.AddrEnv, err)
		}
		p.httpLn = ln
		p.log.Info("edge listening", "addr", ln.Addr().String())
	}
	if err := p.listenProbes(); err != nil {
		return err
	}
	p.grpcAddr = p.cfg.GRPCAddr
	for _, name := range p.cfg.Group.Remote() {
		if err := p.peers.Dial(name, p.cfg.Peers[name], p.cfg.CallTimeout, p.cfg.Security); err != nil {
			return err
		}
	}
	switch sec := p.cfg.Security; {
	case sec.Insecure:
		p.log.Warn("INSECURE: gRPC runs in plaintext and any caller may call any method (SHOP_INSECURE=true); use this to measure what security costs, never otherwise")
	case sec.Identity != nil:
		// Renewed files are read at the next handshake (platform/identity): say so in the
		// process's log, and say when they cannot be read and the last good ones stay.
		sec.Identity.SetLogger(p.log)
		p.log.Info("gRPC over mutual TLS", "identity", sec.Identity.ID().String())
	}
	if p.cfg.AdminToken == "" && p.cfg.Group.Edge {
		p.log.Warn("SHOP_ADMIN_TOKEN is unset: admin routes answer 401")
	}
	return nil
}

// serve builds the group on a new store connection and serves it.
func (p *process) serve(ctx context.Context) (*Generation, error) {
	g, err := build(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := g.listen(p); err != nil {
		g.stop(ctx, 0)
		return nil, err
	}
	p.edge.set(g.handler)
	p.current.Store(g)
	if p.hooks.Serving != nil {
		p.hooks.Serving(g)
	}
	return g, nil
}

func (p *process) close() {
	if p.probes != nil {
		_ = p.probes.Close() // the process is going: its probes may fail at once
	}
	p.peers.Close()
	if p.httpLn != nil {
		_ = p.httpLn.Close() // closed already once the edge has drained
	}
	if p.embedded != nil {
		p.embedded.Shutdown()
	}
}

// swapHandler serves the edge of the generation that serves, and a 503 problem for every
// path, /healthz included, while none does: the process is alive but cannot do its job, and
// a supervisor that restarts it on a failing liveness probe is right to.
type swapHandler struct {
	h atomic.Pointer[http.Handler]
}

func (s *swapHandler) set(h http.Handler) {
	if h == nil {
		s.h.Store(nil)
		return
	}
	s.h.Store(&h)
}

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	httpapi.Unavailable("the store connection was lost; reconnecting").ServeHTTP(w, r)
}
