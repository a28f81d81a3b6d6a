package bounded

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Redial is how a client of a context redials a peer it lost. gRPC's default starts at a
// second and grows to two minutes, made for peers across the internet: a peer restarted next
// door (a crashed process, a remade pod, a replica rolled to a new version) is back in tens
// of milliseconds, and every call to it fails fast, or goes to its other replicas, until the
// client redials. This redials after 100 ms, and never waits more than 2 s: a redial is one
// TCP connection attempt, cheap even for many clients of a peer that stays down, while every
// second of back-off is a second a restarted peer's callers still fail (a caller that backed
// off to 5 s left payments uncalled 6 s after it was ready again, longer than its outage).
func Redial() grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
		MinConnectTimeout: 5 * time.Second,
	}
}

// RedialWithin is the longest a client waits between two dials of a peer it lost, and then
// dials (a TCP and a TLS handshake next door, given a second on a busy machine): a replica
// back at its address is called again by every client within it. A rolling re-up waits this
// long after a new replica is ready before it stops the next old one (platform/podmanrt,
// platform/processrt), so that no client is left with none connected.
func RedialWithin() time.Duration {
	b := Redial().Backoff
	return time.Duration(float64(b.MaxDelay)*(1+b.Jitter)) + dialAllowance
}

const dialAllowance = time.Second
