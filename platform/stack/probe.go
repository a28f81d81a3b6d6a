package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// probeTimeout bounds one probe: a local request that a healthy service answers at once.
const probeTimeout = 2 * time.Second

// Check runs one readiness probe against addr (host:port on this machine): nil when ready.
// A gRPC probe presents the identity in tlsDir (any identity of the stack may ask health;
// platform/identity), or none when tlsDir is "" (a stack up insecure).
func Check(ctx context.Context, p topology.Probe, addr, tlsDir string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	switch p.Kind {
	case topology.HTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.Path, nil)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", p.Path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode/100 != 2 {
			// The body says why (nats-server names the listener it misses): kept short,
			// on one line, as it ends up in a status row.
			why := strings.Join(strings.Fields(string(body[:min(len(body), 300)])), " ")
			if why != "" {
				return fmt.Errorf("GET %s: %s: %s", p.Path, resp.Status, why)
			}
			return fmt.Errorf("GET %s: %s", p.Path, resp.Status)
		}
		return nil
	case topology.GRPC:
		creds := insecure.NewCredentials()
		if tlsDir != "" {
			id, err := identity.Load(tlsDir)
			if err != nil {
				return fmt.Errorf("grpc health: %w", err)
			}
			creds = credentials.NewTLS(id.ClientConfig(nil))
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return fmt.Errorf("grpc health: %w", err)
		}
		defer conn.Close()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return fmt.Errorf("grpc health: %w", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("grpc health: %s", resp.GetStatus())
		}
		return nil
	case topology.TCP:
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("tcp: %w", err)
		}
		return c.Close()
	}
	return fmt.Errorf("unknown probe kind %q", p.Kind)
}

// statusProbes probes in a row, statusProbeGap apart, must fail before CheckSteady calls a
// running service unready: one failed probe is a blip, not a state (Kubernetes' default
// failureThreshold is 3 too). A NATS server that had been ready answered its /healthz 500
// once, in the middle of a CI run, and a status that believed it failed a test.
const (
	statusProbes   = 3
	statusProbeGap = 100 * time.Millisecond
)

// CheckSteady is Check for a status: it probes again, up to statusProbes times in all,
// while the probe fails, and returns the last failure. A service that hangs costs a status
// no more than one probe's time out and the gaps.
func CheckSteady(ctx context.Context, p topology.Probe, addr, tlsDir string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout+statusProbes*statusProbeGap)
	defer cancel()
	err := Check(ctx, p, addr, tlsDir)
	for n := 1; err != nil && n < statusProbes; n++ {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(statusProbeGap):
		}
		err = Check(ctx, p, addr, tlsDir)
	}
	if err != nil {
		return fmt.Errorf("%w (%d probes in a row)", err, statusProbes)
	}
	return nil
}

// maxProbeDelay is the longest wait between two probes of WaitReady: a probe is one local
// request, and every wait past the moment a service became ready is time up spends idle.
const maxProbeDelay = 100 * time.Millisecond

// ErrNotReady wraps the last probe error when WaitReady gives up.
var ErrNotReady = errors.New("not ready")

// WaitReady polls the probe until it passes, ctx ends, timeout passes, or alive (if not nil)
// reports that the thing probed is gone. tlsDir is Check's.
func WaitReady(ctx context.Context, p topology.Probe, addr, tlsDir string, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	delay := 20 * time.Millisecond
	var last error
	for {
		if last = Check(ctx, p, addr, tlsDir); last == nil {
			return nil
		}
		if alive != nil {
			if err := alive(); err != nil {
				return fmt.Errorf("%w: %w (last probe: %v)", ErrNotReady, err, last)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %s: %w", ErrNotReady, timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w (last probe: %v)", ErrNotReady, ctx.Err(), last)
		case <-time.After(delay):
		}
		if delay < maxProbeDelay {
			delay = min(2*delay, maxProbeDelay)
		}
	}
}
