package servicehost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Peers are a process's connections to the services it calls.
type Peers struct {
	mu    sync.Mutex
	peers []peer
}

type peer struct {
	name    string // the context, e.g. "catalog"
	service string // its gRPC service name, asked for in health checks
	conn    *grpc.ClientConn
}

// peerCheckTimeout bounds one health check of one peer.
const peerCheckTimeout = 2 * time.Second

// Dial connects to a peer (see Dial) and adds it to the peers that Check asks.
func (p *Peers) Dial(name, addr, service, serviceConfig string, callTimeout time.Duration) (*grpc.ClientConn, error) {
	conn, err := Dial(addr, serviceConfig, callTimeout)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peers = append(p.peers, peer{name: name, service: service, conn: conn})
	return conn, nil
}

// Check asks every peer's health service, in parallel, whether it is SERVING; the error
// names each peer that is not.
func (p *Peers) Check(ctx context.Context) error {
	p.mu.Lock()
	peers := append([]peer(nil), p.peers...)
	p.mu.Unlock()
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, pr := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, peerCheckTimeout)
			defer cancel()
			res, err := healthpb.NewHealthClient(pr.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: pr.service})
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("peer %s at %s: %w", pr.name, pr.conn.Target(), err)
			case res.GetStatus() != healthpb.HealthCheckResponse_SERVING:
				errs[i] = fmt.Errorf("peer %s at %s: %s", pr.name, pr.conn.Target(), res.GetStatus())
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes every connection.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.peers {
		_ = pr.conn.Close() // closing never fails in a way the caller could act on
	}
	p.peers = nil
}
