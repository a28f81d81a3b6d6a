package notify_test

import (
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/notify"
)

// TestNotifyInOneRoundTrip: an order's notifications are one write each when this process
// made the user's inbox or last saw it: the first is a create-if-absent, the next a
// compare-and-set at the revision it wrote. When another process (another replica) wrote the
// inbox in between, the write is refused and made again after a read, and a notification
// another process made is found, not made twice.
func TestNotifyInOneRoundTrip(t *testing.T) {
	ctx := t.Context()
	store := natsjstest.New(t).Bucket(t, "notifications")
	rec := kvtest.NewRecorder(0) // counts the requests
	counted := rec.Bucket("notifications", store)
	svc, other := notify.New(counted, time.Now), notify.New(store, time.Now)

	step := func(name string, s notify.Service, kind, order string, want int) notify.Notification {
		t.Helper()
		rec.Reset()
		n, err := s.Notify(ctx, "dana", kind, order)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ops := rec.Reset(); s == svc && len(ops) != want {
			t.Fatalf("%s made %d requests, want %d:\n%s", name, len(ops), want, kvtest.Names(ops))
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
