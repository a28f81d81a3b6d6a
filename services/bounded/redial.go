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
// client redials. This redials after 100 ms, and never waits more than 5 s.
func Redial() grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
		MinConnectTimeout: 5 * time.Second,
	}
}

// RedialWithin is the longest a client waits between two dials of a peer it lost: a replica
// back at its address is called again by every client within it. A rolling re-up waits this
// long after a new replica is ready before it stops the next old one (platform/podmanrt,
// platform/processrt), so that no client is left with none connected.
func RedialWithin() time.Duration {
	b := Redial().Backoff
	return time.Duration(float64(b.MaxDelay) * (1 + b.Jitter))
}
