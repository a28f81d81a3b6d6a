package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// listenProbes answers the orchestrator's probes on Config.HealthAddr, when set, over plain
// HTTP: a process that serves its contexts over mutual TLS takes no caller without a
// certificate of the stack, and Kubernetes's probes (gRPC, HTTP or TCP) present none. A TCP
// probe of the gRPC port says only that the port accepts, also while the process cannot
// serve (its store or a peer down), so a rolling update would go on to the next pod before
// this one serves. Here:
//
//   - /healthz is 200 while a generation serves, 503 while the group is rebuilt on a new
//     store connection: the edge's /healthz, for a liveness probe;
//   - /readyz is 200 when that generation's gRPC health says SERVING, what callers with a
//     certificate are told, and 503 naming why not (the store, a peer, a stop).
//
// It answers nothing else, reads no body and makes no spans (httpapi.Probes).
func (p *process) listenProbes() error {
	if p.cfg.HealthAddr == "" || p.cfg.Lambda {
		return nil
	}
	ln, err := net.Listen("tcp", p.cfg.HealthAddr)
	if err != nil {
		return fmt.Errorf("listen %s (%s): %w", p.cfg.HealthAddr, HealthAddrEnv, err)
	}
	p.probes = &http.Server{
		Handler:           httpapi.Probes(p.alive, p.ready),
		ReadHeaderTimeout: probeTimeout,
		ReadTimeout:       probeTimeout,
		WriteTimeout:      probeTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
	}
	p.log.Info("probes listening", "addr", ln.Addr().String())
	if p.hooks.Listening != nil {
		p.hooks.Listening("probes", ln.Addr())
	}
	go func() {
		if err := p.probes.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("probes stopped", "err", err)
		}
	}()
	return nil
}

// probeTimeout bounds a probe's request: Kubernetes gives one 1 s by default, at most a
// few; a client slower than this is not a prober.
const probeTimeout = 5 * time.Second

func (p *process) alive(context.Context) error {
	if p.current.Load() == nil {
		return errors.New("the group does not serve: starting, or reconnecting to the store")
	}
	return nil
}

func (p *process) ready(ctx context.Context) error {
	g := p.current.Load()
	if g == nil {
		return errors.New("the group does not serve: starting, or reconnecting to the store")
	}
	return g.serving(ctx)
}
