package host

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Peers are a process's connections to the remote contexts it calls. They outlive the
// process's store connections: a peer is another process.
type Peers struct {
	mu    sync.Mutex
	peers []peer
}

type peer struct {
	ctx  bounded.Context
	conn *grpc.ClientConn
}

// peerCheckTimeout bounds one health check of one peer.
const peerCheckTimeout = 2 * time.Second

// Dial connects to the context name at addr (see Dial) with sec, and adds it to the peers
// that Check asks.
func (p *Peers) Dial(name, addr string, callTimeout time.Duration, sec Security) error {
	c, ok := bounded.Lookup(name)
	if !ok {
		return fmt.Errorf("peer %s: no such context", name)
	}
	conn, err := Dial(addr, c.ClientConfig(), callTimeout, sec.ClientCredentials(name))
	if err != nil {
		return fmt.Errorf("peer %s: %w", name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peers = append(p.peers, peer{ctx: c, conn: conn})
	return nil
}

// Client returns the port of the remote context name, over its connection.
func (p *Peers) Client(name string) (any, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.peers {
		if pr.ctx.Name == name {
			return pr.ctx.Client(pr.conn), true
		}
	}
	return nil, false
}

// Check asks every peer's health service, in parallel, whether its context is SERVING, and
// returns what is wrong with each peer that is not, by context.
func (p *Peers) Check(ctx context.Context) map[string]error {
	p.mu.Lock()
	peers := append([]peer(nil), p.peers...)
	p.mu.Unlock()
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, pr := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, peerCheckTimeout)
			defer cancel()
			res, err := healthpb.NewHealthClient(pr.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: pr.ctx.Service})
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("peer %s at %s: %w", pr.ctx.Name, pr.conn.Target(), err)
			case res.GetStatus() != healthpb.HealthCheckResponse_SERVING:
				errs[i] = fmt.Errorf("peer %s at %s: %s", pr.ctx.Name, pr.conn.Target(), res.GetStatus())
			}
		})
	}
	wg.Wait()
	out := make(map[string]error, len(peers))
	for i, pr := range peers {
		out[pr.ctx.Name] = errs[i]
	}
	return out
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
