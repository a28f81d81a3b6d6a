package servicehost

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// Process is one running service: its NATS connection and stores, its gRPC server, its
// peers, its event consumers and background loops. A main builds it with Start, wires its
// context onto it, then calls Serve, which returns once a stop signal has drained it.
type Process struct {
	cfg    Config
	log    *slog.Logger
	server *grpc.Server
	health *health.Server
	peers  Peers

	nc       *nats.Conn
	js       jetstream.JetStream
	ncClosed chan struct{} // closed once nc is closed, after its drain
	bus      *natsjs.Bus
	tracing  *traced.Tracing // store spans, as the monolith has them

	life   context.Context // ends at stop: the catalog's view and the loops live this long
	cancel context.CancelFunc
	loops  sync.WaitGroup

	mu     sync.Mutex
	subs   []events.Subscription
	closed bool
}

// Start connects to NATS and makes the gRPC server (with its health service NOT_SERVING
// until Serve finds stores and peers answering). The caller must Close it.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Process, error) {
	p := &Process{cfg: cfg, log: logger, ncClosed: make(chan struct{}), health: health.NewServer(), tracing: traced.New(nil, nil)}
	p.life, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.server = NewServer(logger)
	healthpb.RegisterHealthServer(p.server, p.health)
	p.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	var err error
	p.nc, err = nats.Connect(cfg.NatsURL,
		nats.Name("shop-"+cfg.Name),
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(p.ncClosed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { logger.Info("NATS reconnected") }))
	if err != nil {
		p.cancel()
		return nil, fmt.Errorf("connect NATS %s: %w", cfg.NatsURL, err)
	}
	if p.js, err = jetstream.New(p.nc); err != nil {
		p.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return p, nil
}

// Config returns the process's configuration.
func (p *Process) Config() Config { return p.cfg }

// Life is a context that ends when the process stops: for what must outlive the call that
// started it (a store's watch, a loop).
func (p *Process) Life() context.Context { return p.life }

// GRPC is the server that the context's service is registered on.
func (p *Process) GRPC() grpc.ServiceRegistrar { return p.server }

// Bucket opens (creating if needed) one of the context's key-value buckets; its operations
// inside a trace are spans (shop/traced), as in the monolith.
func (p *Process) Bucket(ctx context.Context, name string) (kv.Bucket, error) {
	b, err := natsjs.OpenBucket(ctx, p.js, name)
	if err != nil {
		return nil, err
	}
	return p.tracing.Bucket(name, b), nil
}

// Bus opens the event stream (once) and returns the bus on it.
func (p *Process) Bus(ctx context.Context) (*natsjs.Bus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bus == nil {
		bus, err := natsjs.OpenBus(ctx, p.js, p.log)
		if err != nil {
			return nil, err
		}
		p.bus = bus
	}
	return p.bus, nil
}

// Subscribe starts a durable event consumer, stopped (messages in flight finishing) at stop.
// Replicas of one context share the consumer name, so that each event is handled by one.
func (p *Process) Subscribe(ctx context.Context, consumer string, subjects []string, h events.Handler) error {
	bus, err := p.Bus(ctx)
	if err != nil {
		return err
	}
	sub, err := bus.Subscribe(p.life, consumer, subjects, h)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", consumer, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs = append(p.subs, sub)
	return nil
}

// Peer connects to the context peer at its configured address (see Peers.Dial); its health
// is part of this process's readiness.
func (p *Process) Peer(name, service, serviceConfig string) (*grpc.ClientConn, error) {
	addr, ok := p.cfg.Peers[name]
	if !ok {
		return nil, fmt.Errorf("peer %s is not configured for %s", name, p.cfg.Name)
	}
	return p.peers.Dial(name, addr, service, serviceConfig, p.cfg.CallTimeout)
}

// Logger is the process's logger.
func (p *Process) Logger() *slog.Logger { return p.log }

// Go runs f in the background until it returns; stop cancels its context and waits for it.
func (p *Process) Go(f func(ctx context.Context)) {
	p.loops.Go(func() { f(p.life) })
}

// Ready reports whether the process's stores and every peer answer.
func (p *Process) Ready(ctx context.Context) error {
	if err := natsjs.Ping(ctx, p.nc, p.js); err != nil {
		return err
	}
	return p.peers.Check(ctx)
}

// Serve listens on the configured address and serves the services named (their health
// status, and the overall one, follow Ready) until ctx ends. Then it stops gracefully: health
// says NOT_SERVING, calls in flight finish (up to DrainTimeout), and the process closes.
// onListen, if set, learns the bound address (it is also logged).
func (p *Process) Serve(ctx context.Context, services []string, onListen func(net.Addr)) error {
	defer p.Close()
	ln, err := net.Listen("tcp", p.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", p.cfg.GRPCAddr, err)
	}
	p.log.Info("listening", "addr", ln.Addr().String(), "grpc_services", services)
	if onListen != nil {
		onListen(ln.Addr())
	}
	p.loops.Go(func() { p.watchHealth(services) })
	served := make(chan error, 1)
	go func() { served <- p.server.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	p.log.Info("shutting down: draining calls")
	p.health.Shutdown() // NOT_SERVING everywhere: balancers stop sending new calls
	drained := make(chan struct{})
	go func() {
		p.server.GracefulStop()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(p.cfg.DrainTimeout):
		p.log.Warn("calls still in flight after the drain timeout; closing them", "timeout", p.cfg.DrainTimeout)
		p.server.Stop()
		<-drained
	}
	<-served
	p.log.Info("stopped")
	return nil
}

// watchHealth sets the health status from Ready, at once and then every HealthEvery, until
// stop, logging every change. While not serving it looks again sooner (notServingRecheck),
// so that a process whose peer just came back turns SERVING within a fraction of a second
// rather than a whole period: a restarted pod's callers wait for that.
func (p *Process) watchHealth(services []string) {
	t := time.NewTimer(p.cfg.HealthEvery)
	defer t.Stop()
	serving := false
	for {
		err := p.Ready(p.life)
		if p.life.Err() != nil {
			return
		}
		status := healthpb.HealthCheckResponse_SERVING
		if err != nil {
			status = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if (err == nil) != serving {
			serving = err == nil
			if serving {
				p.log.Info("serving: stores and peers answer")
			} else {
				p.log.Warn("not serving", "err", err)
			}
		}
		p.health.SetServingStatus("", status)
		for _, s := range services {
			p.health.SetServingStatus(s, status)
		}
		next := p.cfg.HealthEvery
		if !serving {
			next = min(next, notServingRecheck)
		}
		t.Reset(next)
		select {
		case <-p.life.Done():
			return
		case <-t.C:
		}
	}
}

// notServingRecheck is how soon a process that is not serving checks its readiness again.
const notServingRecheck = 200 * time.Millisecond

// Close stops the consumers (messages in flight finish) and the loops, closes the peers and
// the server, and drains the NATS connection so that writes and acknowledgements in flight
// are not lost. It is idempotent.
func (p *Process) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	subs := p.subs
	p.subs = nil
	p.mu.Unlock()
	for _, s := range subs {
		s.Stop()
	}
	p.cancel()
	p.loops.Wait()
	p.server.Stop()
	p.peers.Close()
	if p.nc != nil {
		if err := p.nc.Drain(); err == nil {
			select {
			case <-p.ncClosed:
			case <-time.After(10 * time.Second):
			}
		}
		p.nc.Close()
	}
}
