package natsjs

import (
	"context"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// GetDirect exposes getDirect to the tests, which check that it answers what it meets
// instead of leaving it to KeyValue.Get.
func GetDirect(ctx context.Context, b *Bucket, key string) (kv.Entry, bool, error) {
	return b.getDirect(ctx, key)
}
