package integration

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/platform/storeview"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// Charges reads every charge record of the payments context (its key-value bucket
// payments.ChargesBucket) from the NATS at url, read only (platform/storeview). The public
// API shows no charge, so this is how a test sees what was charged: a record per idempotency
// key (the order ID, for a checkout), with its status (captured, refunded, voided, declined).
// opts: the stack's TLS (Stack.NATSTLS).
func Charges(ctx context.Context, url string, opts ...nats.Option) ([]payments.Charge, error) {
	js, closeConn, err := storeview.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	defer closeConn()
	return storeview.Charges(ctx, js, time.Time{})
}
