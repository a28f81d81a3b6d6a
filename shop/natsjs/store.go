package natsjs

import (
	"fmt"
	"strconv"
)

// ReplicasEnv is the variable the binaries read StoreConfig.Replicas from (StoreConfigFrom).
const ReplicasEnv = "SHOP_NATS_REPLICAS"

// MaxReplicas is the most copies of a stream JetStream keeps.
const MaxReplicas = 5

// StoreConfig says how the shop's buckets and event stream are kept: on how many servers,
// and in how many bytes. OpenBucket and OpenBus create them with it, and update one that
// exists with other settings to it: JetStream changes both in place (more replicas only on
// a cluster with that many servers). The zero value is one copy and the default limits.
type StoreConfig struct {
	// Replicas is how many servers keep a copy of every bucket and stream: 1 on a lone
	// server (which refuses more), 3 on the production cluster, where any one node can go
	// without losing a write that was acknowledged. 0 means 1.
	Replicas int
	// MaxBytes overrides DefaultLimits by bucket or stream name.
	MaxBytes map[string]int64

	err error // the variable StoreConfigFrom could not read; Check reports it
}

// DefaultMaxBytes caps a bucket that DefaultLimits does not name (one a context adds later,
// a test's).
const DefaultMaxBytes = 128 << 20

// DefaultLimits is the byte limit of every bucket and of the event stream, in one place.
//
// A limit turns a store that would grow until the disk is full into one that refuses a new
// write with ErrFull (503 at the edge) while what it holds stays readable: buckets discard
// new, never old (see OpenBucket), and so does the event stream. The record sizes below were
// measured on the JetStream files after 200 checkouts of two lines each (each stream's
// State.Bytes over its messages, headers and subject included). Each bucket that grows with
// checkouts holds about half a million of them, far beyond a `make compare` run (a few tens
// of thousands); those that grow with products or users get less. The sum, 3.3 GiB, stays
// under StoreBudget.
//
// The keys are the names the contexts give their buckets (orders.SagasBucket...), written
// out because this package cannot import the contexts (their own tests import natsjstest);
// a test checks them against the buckets the shop opens.
func DefaultLimits() map[string]int64 {
	const mib = 1 << 20
	return map[string]int64{
		"orders_sagas":           512 * mib, // ~940 B per checkout: ~570k
		"orders_orders":          512 * mib, // ~650 B per order of two lines: ~820k
		"orders_by_user":         128 * mib, // ~180 B per user of one order, ~40 B more per order: ~700k
		"payments_charges":       256 * mib, // ~360 B per charge: ~750k
		"inventory_reservations": 256 * mib, // ~450 B per checkout, kept once committed: ~600k
		"shipping_shipments":     256 * mib, // ~430 B per order: ~620k
		"notify_notifications":   256 * mib, // ~230 B per notification, two per order: ~580k orders
		"cart_carts":             128 * mib, // ~100 B per emptied cart, ~60 B per line: ~1M users
		"catalog_products":       64 * mib,  // ~320 B per product: ~200k
		"inventory_stock":        32 * mib,  // ~155 B per product: ~200k
		"payments_cards":         8 * mib,   // ~250 B per card held for a Step Functions checkout, 15 min: ~30k in flight
		// ~430 B per event, two per order, kept until every consumer has processed it
		// (OpenBus): 2.5M events, the backlog of a consumer down for a day at 14 checkouts a
		// second. When it is full, publishes fail (ErrFull); `mitosis status` warns at half.
		StreamName: 1 << 30,
		// A dead letter is an event (under 2 KB) with its headers: tens of thousands, far more
		// than anyone replays by hand (mitosis events replay). When it is full it refuses new
		// ones (DiscardNew) rather than drop the oldest: the consumer then keeps the message
		// and retries, and its log says why.
		DeadLetterStream: 64 * mib,
	}
}

// StoreBudget bounds the sum of DefaultLimits (a test checks). JetStream reserves a stream's
// byte limit on each server that keeps a copy when the stream is created, and refuses what
// does not fit in its store: 8 GiB in the mitosis NATS (platform/cmd/nats-server) and on each
// production node (the overlay's nats.conf), 75% of the free disk for the embedded server.
// Half of 8 GiB leaves room for streams and buckets added later.
const StoreBudget = 4 << 30

// Limit returns the byte limit of the bucket or stream name.
func (c StoreConfig) Limit(name string) int64 {
	if n, ok := c.MaxBytes[name]; ok {
		return n
	}
	if n, ok := DefaultLimits()[name]; ok {
		return n
	}
	return DefaultMaxBytes
}

// replicas is Replicas with 0 meaning 1.
func (c StoreConfig) replicas() int { return max(c.Replicas, 1) }

// Check reports a configuration no bucket or stream can be opened with.
func (c StoreConfig) Check() error {
	if c.err != nil {
		return c.err
	}
	if c.Replicas < 0 || c.Replicas > MaxReplicas {
		return fmt.Errorf("store: %d replicas: want 1 to %d", c.Replicas, MaxReplicas)
	}
	for name, n := range c.MaxBytes {
		if n <= 0 {
			return fmt.Errorf("store: %s: byte limit %d: want a positive number", name, n)
		}
	}
	return nil
}

// StoreConfigFrom reads the store configuration from the environment: ReplicasEnv, 1 when
// unset. A value that is not a number from 1 to MaxReplicas makes Check (and so the first
// OpenBucket or OpenBus) fail with an error naming the variable.
func StoreConfigFrom(getenv func(string) string) StoreConfig {
	v := getenv(ReplicasEnv)
	if v == "" {
		return StoreConfig{Replicas: 1}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxReplicas {
		return StoreConfig{err: fmt.Errorf("%s=%q: want a number from 1 to %d (1 on a lone NATS server, 3 on a 3-node cluster)", ReplicasEnv, v, MaxReplicas)}
	}
	return StoreConfig{Replicas: n}
}
