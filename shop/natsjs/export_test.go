package natsjs

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// GetDirect exposes getDirect to the tests, which check that it answers what it meets
// instead of leaving it to KeyValue.Get.
func GetDirect(ctx context.Context, b *Bucket, key string) (kv.Entry, bool, error) {
	return b.getDirect(ctx, key)
}

// Requester exposes the requester to the tests, which check what it promises of its reply
// subjects and of requests that go unanswered.
type Requester = requester

// NewRequester returns a requester on nc.
func NewRequester(nc *nats.Conn) *Requester { return newRequester(nc) }

// Request sends m and waits up to timeout for its answer.
func (r *requester) Request(m *nats.Msg, timeout time.Duration) (*nats.Msg, error) {
	return r.request(m, timeout)
}
