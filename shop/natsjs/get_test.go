package natsjs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestGetReadsDirectly: on a bucket of one copy, Get's direct read answers a value, a
// missing key, a deleted key and an expired one by itself, as KeyValue.Get would, rather
// than falling back to it; and the two agree.
func TestGetReadsDirectly(t *testing.T) {
	ctx := context.Background()
	b := natsjstest.New(t).Bucket(t, "direct")
	rev, err := b.Create(ctx, "a.b c", []byte(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if rev, err = b.Update(ctx, "a.b c", []byte(`{"v":2}`), rev); err != nil {
		t.Fatal(err)
	}
	e, handled, err := natsjs.GetDirect(ctx, b, "a.b c")
	if !handled || err != nil || string(e.Value) != `{"v":2}` || e.Revision != rev || e.Key != "a.b c" {
		t.Fatalf("direct read of a value: %+v handled=%v err=%v; want {\"v\":2} at %d", e, handled, err, rev)
	}
	if _, handled, err := natsjs.GetDirect(ctx, b, "never"); !handled || !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("direct read of a missing key: handled=%v err=%v, want ErrNotFound", handled, err)
	}
	if err := b.Delete(ctx, "a.b c", 0); err != nil {
		t.Fatal(err)
	}
	if _, handled, err := natsjs.GetDirect(ctx, b, "a.b c"); !handled || !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("direct read of a deleted key: handled=%v err=%v, want ErrNotFound", handled, err)
	}
	if _, err := b.Create(ctx, "short", []byte("1"), kv.TTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, handled, err := natsjs.GetDirect(ctx, b, "short")
		if !handled {
			t.Fatalf("direct read of an expiring key fell back (err %v)", err)
		}
		if errors.Is(err, kv.ErrNotFound) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("direct read of an expired key: %v, want ErrNotFound within 10s", err)
		}
		time.Sleep(50 * time.Millisecond) // polling a store-side expiry, bounded by deadline
	}
	if _, err := b.Get(ctx, "short"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get of an expired key: %v, want ErrNotFound", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, handled, err := natsjs.GetDirect(canceled, b, "never"); !handled || !errors.Is(err, context.Canceled) {
		t.Fatalf("direct read with a canceled context: handled=%v err=%v", handled, err)
	}
}
