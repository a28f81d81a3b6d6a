package notify_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/notify"
)

// requests is a real bucket that counts the requests it passes on.
type requests struct {
	kv.Bucket
	n atomic.Int64
}

func (r *requests) Get(ctx context.Context, key string) (kv.Entry, error) {
	r.n.Add(1)
	return r.Bucket.Get(ctx, key)
}

func (r *requests) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	r.n.Add(1)
	return r.Bucket.Create(ctx, key, value, opts...)
}

func (r *requests) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	r.n.Add(1)
	return r.Bucket.Update(ctx, key, value, rev, opts...)
}

// TestNotifyInOneRoundTrip: an order's notifications are one write each when this process
// made the user's inbox or last saw it: the first is a create-if-absent, the next a
// compare-and-set at the revision it wrote. When another process (another replica) wrote the
// inbox in between, the write is refused and made again after a read, and a notification
// another process made is found, not made twice.
func TestNotifyInOneRoundTrip(t *testing.T) {
	ctx := t.Context()
	store := natsjstest.New(t).Bucket(t, "notifications")
	counted := &requests{Bucket: store}
	svc, other := notify.New(counted, time.Now), notify.New(store, time.Now)

	step := func(name string, s notify.Service, kind, order string, want int64) notify.Notification {
		t.Helper()
		counted.n.Store(0)
		n, err := s.Notify(ctx, "dana", kind, order)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := counted.n.Load(); s == svc && got != want {
			t.Fatalf("%s made %d requests, want %d", name, got, want)
		}
		return n
	}
	step("first notification", svc, notify.KindOrderPaid, "ord-1", 1)
	step("next notification", svc, notify.KindOrderShipped, "ord-1", 1)
	step("another process's notification", other, notify.KindOrderPaid, "ord-2", 0)
	step("notification over a stale memory", svc, notify.KindOrderShipped, "ord-2", 3) // refused write, read, write
	made := step("another process's repeat", other, notify.KindOrderShipped, "ord-2", 0)
	if again := step("repeat", svc, notify.KindOrderShipped, "ord-2", 0); again != made {
		t.Fatalf("repeat = %+v, want the notification made before, %+v", again, made)
	}
	page, err := other.List(ctx, notify.ListRequest{UserID: "dana"})
	if err != nil || len(page.Notifications) != 4 {
		t.Fatalf("List = %+v, %v; want 4 notifications", page, err)
	}
}
