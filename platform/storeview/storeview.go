// Package storeview reads the shop's stores through a stack's NATS, read only, for what the
// public API does not show: the charges of the payments context. It is for tools that check
// a deployment from outside (the container suites, the load test's fault phase), as an
// operator with access to the store would; no context calls it, and it never writes (a
// watch is an ephemeral consumer, which the server drops once it is done).
package storeview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/payments"
)

// Connect reaches the NATS at url (nats://127.0.0.1:<published port>), with opts (a secure
// stack's TLS: platform/natsauth.AdminTLS), and returns its JetStream; closeConn releases the
// connection.
func Connect(url string, opts ...nats.Option) (js jetstream.JetStream, closeConn func(), err error) {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name("mitosis-storeview"), nats.Timeout(5 * time.Second)}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream at %s: %w", url, err)
	}
	return js, nc.Close, nil
}

// Charges returns the current record of every charge created at or after since (zero: all)
// in the payments context's bucket (payments.ChargesBucket): one record per idempotency key,
// which for a checkout is its order's ID, with its status (captured, refunded, voided,
// declined). One pass over the bucket's latest values; none when no charge was ever made.
func Charges(ctx context.Context, js jetstream.JetStream, since time.Time) ([]payments.Charge, error) {
	kv, err := js.KeyValue(ctx, payments.ChargesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", payments.ChargesBucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", payments.ChargesBucket, err)
	}
	defer func() { _ = w.Stop() }()
	var out []payments.Charge
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s: %w", payments.ChargesBucket, ctx.Err())
		case e := <-w.Updates():
			if e == nil { // every current value delivered
				return out, nil
			}
			var c payments.Charge
			if err := json.Unmarshal(e.Value(), &c); err != nil {
				return nil, fmt.Errorf("charge %s: %w", e.Key(), err)
			}
			if !c.CreatedAt.Before(since) {
				out = append(out, c)
			}
		}
	}
}
