package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/payments"
)

// Charges reads every charge record of the payments context (its key-value bucket
// payments.ChargesBucket) from the NATS at url, read only. The public API shows no charge,
// so this is how a test sees what was charged: a record per idempotency key (the order ID,
// for a checkout), with its status (captured, refunded, voided, declined).
func Charges(ctx context.Context, url string) ([]payments.Charge, error) {
	nc, err := nats.Connect(url, nats.Name("mitosis-it"))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b, err := js.KeyValue(ctx, payments.ChargesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil // no charge was ever made
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", payments.ChargesBucket, err)
	}
	lister, err := b.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", payments.ChargesBucket, err)
	}
	defer func() { _ = lister.Stop() }()
	var out []payments.Charge
	for k := range lister.Keys() {
		e, err := b.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("get charge %s: %w", k, err)
		}
		var c payments.Charge
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return nil, fmt.Errorf("charge %s: %w", k, err)
		}
		out = append(out, c)
	}
	return out, nil
}
