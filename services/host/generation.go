package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// Generation is the group built on one store connection: its contexts, consumers, loops,
// gRPC server and edge handler. A host has one at a time.
type Generation struct {
	p       *process
	log     *slog.Logger
	nc      *nats.Conn // nil for a group without contexts (the gateway)
	js      jetstream.JetStream
	bus     *natsjs.Bus
	tracing *traced.Tracing

	impls   map[string]any // the group's contexts, as built
	calls   map[string]any // every context called here: traced in process, or a gRPC client
	handler http.Handler   // the edge, for a group that holds it

	server *grpc.Server // nil when the group serves no gRPC
	health *health.Server
	subs   []events.Subscription

	life   context.Context // ends at stop: the catalog's view and the loops live this long
	cancel context.CancelFunc
	loops  sync.WaitGroup

	mu       sync.Mutex
	stopping bool
	notReady error         // why health last said NOT_SERVING (watchHealth), or nil
	lost     chan struct{} // closed when the store connection closes and nobody asked it to
	lostWhy  error
	ncClosed chan struct{} // closed when the store connection has closed, for any reason
}

// build connects to the store and builds the group on the connection. On failure it undoes
// what it did.
func build(ctx context.Context, p *process) (_ *Generation, err error) {
	g := &Generation{p: p, log: p.log, tracing: traced.New(p.cfg.TracerProvider, nil), impls: map[string]any{}, calls: map[string]any{},
		lost: make(chan struct{}), ncClosed: make(chan struct{})}
	g.life, g.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			g.stop(ctx, 0)
		}
	}()
	started := time.Now()
	group := p.cfg.Group
	if len(group.Contexts) > 0 {
		if err := g.connect(); err != nil {
			return nil, err
		}
		if g.js, err = jetstream.New(g.nc); err != nil {
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		if group.UsesEvents() {
			if g.bus, err = natsjs.OpenBus(ctx, g.js, p.cfg.Store, group.EventConsumers(), g.log); err != nil {
				return nil, err
			}
		}
	}
	deps := func(name string, buckets map[string]kv.Bucket) bounded.Deps {
		d := bounded.Deps{Buckets: buckets, Logger: g.log, Now: time.Now, Getenv: p.cfg.Getenv,
			SoleReplica: p.cfg.SoleReplica, Started: started, Call: g.call}
		if g.bus != nil {
			d.Bus = g.bus
		}
		return d
	}
	for _, name := range group.Remote() {
		g.calls[name], _ = p.peers.Client(name) // the process dialed every remote context
	}
	for _, name := range bounded.Order(group.Contexts) {
		c, _ := bounded.Lookup(name)
		buckets := map[string]kv.Bucket{}
		for _, b := range c.Buckets {
			bucket, err := natsjs.OpenBucket(ctx, g.js, p.cfg.Store, b)
			if err != nil {
				return nil, err
			}
			buckets[b] = g.tracing.Bucket(b, bucket)
		}
		d := deps(name, buckets)
		impl, err := c.Build(g.life, d)
		if err != nil {
			return nil, err
		}
		g.impls[name] = impl
		g.calls[name] = c.Trace(g.tracing, impl)
		for _, k := range c.Consumers {
			sub, err := g.bus.Subscribe(g.life, k.Name, k.Subjects, k.Handler(impl))
			if err != nil {
				return nil, fmt.Errorf("subscribe %s: %w", k.Name, err)
			}
			g.subs = append(g.subs, sub)
		}
		for _, l := range c.Loops {
			g.loops.Go(func() { l.Run(g.life, impl, d) })
		}
	}
	if group.Edge {
		if g.handler, err = (bounded.Edge{}).Handler(deps(bounded.EdgeName, nil), p.cfg.AdminToken, g.Ready); err != nil {
			return nil, err
		}
	}
	if p.grpcAddr != "" && len(group.Contexts) > 0 {
		g.server = NewServer(g.log, p.cfg.Security)
		g.health = health.NewServer()
		healthpb.RegisterHealthServer(g.server, g.health)
		g.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		for _, name := range group.Contexts {
			c, _ := bounded.Lookup(name)
			c.Register(g.server, g.impls[name])
		}
	}
	return g, nil
}

// connect opens the generation's store connection. It reconnects by itself after a
// disconnect for as long as it takes; it closes for good only on an error the client takes
// as fatal, which lost reports.
func (g *Generation) connect() error {
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(nc *nats.Conn) {
			g.mu.Lock()
			defer g.mu.Unlock()
			close(g.ncClosed)
			if !g.stopping {
				g.lostWhy = nc.LastError()
				close(g.lost)
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				g.log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { g.log.Info("NATS reconnected") }),
		nats.ErrorHandler(asyncErrors(g.log, g.isStopping)),
		// Replies under a prefix of the group's own: with a NATS user per process
		// (platform/natsauth), only this one may read them.
		nats.CustomInboxPrefix(g.p.cfg.Group.InboxPrefix()),
	}
	var err error
	if g.p.embedded != nil {
		g.nc, err = g.p.embedded.Connect(g.p.cfg.Name, opts...)
		return err
	}
	tlsOpt, err := g.p.cfg.Security.natsTLS(g.p.cfg.NatsURL)
	if err != nil {
		return err
	}
	g.nc, err = nats.Connect(g.p.cfg.NatsURL, append(opts, nats.Name(g.p.cfg.Name), tlsOpt)...)
	if err != nil {
		return fmt.Errorf("connect NATS %s: %w", redacted(g.p.cfg.NatsURL), err)
	}
	return nil
}

// asyncErrors logs the errors the NATS client reports apart from any call (a permission
// violation, a slow consumer, a watch's consumer gone), which it would otherwise write to
// stderr as bare lines among the JSON logs. Those of a generation that is stopping are left
// out: its watches' consumers going with it is the stop, not a fault.
func asyncErrors(log *slog.Logger, stopping func() bool) nats.ErrHandler {
	return func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if stopping() {
			return
		}
		if sub != nil {
			log.Warn("NATS asynchronous error", "subject", sub.Subject, "err", err)
			return
		}
		log.Warn("NATS asynchronous error", "err", err)
	}
}

func (g *Generation) isStopping() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopping
}

// call returns the port of a context the group calls: in process, or over gRPC. The map is
// complete before anything calls it, and only read afterwards.
func (g *Generation) call(name string) any { return g.calls[name] }

// Ready reports whether the edge can serve: the store answers, and every context the edge
// calls is ready (see checks.ready). It is the edge's /readyz.
func (g *Generation) Ready(ctx context.Context) error {
	return g.check(ctx).ready((bounded.Edge{}).Calls())
}

// checks are one round of health checks: the store's answer and every peer's.
type checks struct {
	store error
	peers map[string]error
	local []string // the contexts this process holds
}

func (g *Generation) check(ctx context.Context) checks {
	c := checks{peers: g.p.peers.Check(ctx), local: g.p.cfg.Group.Contexts}
	if g.nc != nil {
		c.store = natsjs.Ping(ctx, g.nc, g.js)
	}
	return c
}

// ready says whether the contexts names can serve: a context held here needs the store and
// what it calls in turn, a remote one its process's word for it. Readiness follows the calls
// between contexts, which have no cycle, and not the processes: two groups that call each
// other (the edge with orders' peers, orders alone) are each ready once what their own
// contexts call is.
func (c checks) ready(names []string) error {
	var errs []error
	for _, name := range names {
		if !slices.Contains(c.local, name) {
			errs = append(errs, c.peers[name])
			continue
		}
		if c.store != nil {
			return c.store
		}
		ctx, _ := bounded.Lookup(name)
		errs = append(errs, c.ready(ctx.Calls))
	}
	return errors.Join(errs...)
}

// Port returns the context name as this process calls it: its implementation traced, when
// the group holds it, else its gRPC client; nil for a context the group does not call.
func (g *Generation) Port(name string) any { return g.calls[name] }

// Impl returns the implementation of a context the group holds, as built: for a test or a
// tool that needs more than its port (orders' Recover); nil for one it does not hold.
func (g *Generation) Impl(name string) any { return g.impls[name] }

// Conn is the generation's store connection (nil for a group without contexts).
func (g *Generation) Conn() *nats.Conn { return g.nc }

// listen serves the group's contexts over gRPC, with health following Ready.
func (g *Generation) listen(p *process) error {
	if g.server == nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.grpcAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", p.grpcAddr, err)
	}
	p.grpcAddr = ln.Addr().String() // a port 0 once picked is kept: peers know this one
	g.log.Info("listening", "addr", p.grpcAddr, "contexts", p.cfg.Group.Contexts)
	if p.hooks.Listening != nil {
		p.hooks.Listening("grpc", ln.Addr())
	}
	g.loops.Go(func() {
		if err := g.server.Serve(ln); err != nil {
			g.log.Error("gRPC server stopped", "err", err)
		}
	})
	g.loops.Go(g.watchHealth)
	return nil
}

// watchHealth sets the health status of each context, and of the whole (""), at once and
// then every HealthEvery, until stop, logging every change. While not serving it looks again sooner (notServingRecheck),
// so that a process whose peer just came back turns SERVING within a fraction of a second
// rather than a whole period: a restarted pod's callers wait for that.
func (g *Generation) watchHealth() {
	every := g.p.cfg.HealthEvery
	t := time.NewTimer(every)
	defer t.Stop()
	serving := false
	for {
		checks := g.check(g.life)
		if g.life.Err() != nil {
			return
		}
		var errs []error
		for _, name := range g.p.cfg.Group.Contexts {
			c, _ := bounded.Lookup(name)
			err := checks.ready([]string{name})
			errs = append(errs, err)
			g.health.SetServingStatus(c.Service, servingStatus(err))
		}
		err := errors.Join(errs...)
		g.health.SetServingStatus("", servingStatus(err))
		g.mu.Lock()
		g.notReady = err
		g.mu.Unlock()
		if (err == nil) != serving {
			serving = err == nil
			if serving {
				g.log.Info("serving: the store and the peers answer")
			} else {
				g.log.Warn("not serving", "err", err)
			}
		}
		next := every
		if !serving {
			next = min(next, notServingRecheck)
		}
		t.Reset(next)
		select {
		case <-g.life.Done():
			return
		case <-t.C:
		}
	}
}

// serving says whether the generation serves its contexts: what its gRPC health says of the
// whole (""), which watchHealth keeps and a stop turns to NOT_SERVING, with the reason
// watchHealth last found; for a group that serves no gRPC (an edge), its readiness.
func (g *Generation) serving(ctx context.Context) error {
	if g.health == nil {
		return g.Ready(ctx)
	}
	resp, err := g.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	if resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.stopping:
		return errors.New("stopping")
	case g.notReady != nil:
		return g.notReady
	}
	return errors.New("not serving yet")
}

func servingStatus(err error) healthpb.HealthCheckResponse_ServingStatus {
	if err != nil {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

// notServingRecheck is how soon a process that is not serving checks its readiness again.
const notServingRecheck = 200 * time.Millisecond

// lostErr says why the store connection closed.
func (g *Generation) lostErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lostWhy
}

// stop stops the generation: gRPC health says NOT_SERVING and calls in flight finish (up to
// drain; 0 cuts them), consumers stop with the messages in flight handled, loops end, and
// the store connection drains so that writes and acknowledgements in flight are not lost.
func (g *Generation) stop(ctx context.Context, drain time.Duration) {
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
	if g.server != nil {
		g.health.Shutdown() // NOT_SERVING everywhere: balancers stop sending new calls
		drained := make(chan struct{})
		go func() {
			g.server.GracefulStop()
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(drain):
			if drain > 0 {
				g.log.Warn("calls still in flight after the drain timeout; closing them", "timeout", drain)
			}
			g.server.Stop()
			<-drained
		}
	}
	for _, s := range g.subs {
		s.Stop()
	}
	g.cancel()
	g.loops.Wait()
	if g.nc != nil {
		if err := g.nc.Drain(); err == nil {
			select {
			case <-g.ncClosed:
			case <-time.After(10 * time.Second):
			}
		}
		g.nc.Close()
	}
}

// Handler is the edge's handler of this generation (nil for a group without the edge).
func (g *Generation) Handler() http.Handler { return g.handler }

// redacted is a NATS URL fit for a log: its password (the process's NATS user,
// platform/natsauth) replaced.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a NATS URL that does not parse)"
	}
	return u.Redacted()
}
