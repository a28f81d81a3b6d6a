package natsjs_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

var discard = slog.New(slog.DiscardHandler)

func TestStoreConfigFromTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		value    string
		replicas int // 0: the value is refused
	}{
		{"", 1}, {"1", 1}, {"3", 3}, {"5", 5},
		{"0", 0}, {"6", 0}, {"-1", 0}, {"three", 0}, {" 3", 0}, {"3.0", 0},
	} {
		cfg := natsjs.StoreConfigFrom(func(k string) string {
			if k == natsjs.ReplicasEnv {
				return tc.value
			}
			return ""
		})
		err := cfg.Check()
		switch {
		case tc.replicas > 0 && (err != nil || cfg.Replicas != tc.replicas):
			t.Errorf("%s=%q: replicas %d, %v; want %d", natsjs.ReplicasEnv, tc.value, cfg.Replicas, err, tc.replicas)
		case tc.replicas == 0 && (err == nil || !strings.Contains(err.Error(), natsjs.ReplicasEnv)):
			t.Errorf("%s=%q: Check() = %v, want an error naming the variable", natsjs.ReplicasEnv, tc.value, err)
		}
	}
}

// A configuration that Check refuses opens nothing: the server is not asked.
func TestOpenRefusesABadStoreConfig(t *testing.T) {
	srv := natsjstest.New(t)
	bad := natsjs.StoreConfigFrom(func(string) string { return "lots" })
	for _, cfg := range []natsjs.StoreConfig{bad, {Replicas: 6}, {Replicas: -1}, {MaxBytes: map[string]int64{"b": 0}}} {
		if _, err := natsjs.OpenBucket(t.Context(), srv.JetStream(), cfg, "b"); err == nil {
			t.Errorf("OpenBucket with %+v: no error", cfg)
		}
		if _, err := natsjs.OpenBus(t.Context(), srv.JetStream(), cfg, nil, discard); err == nil {
			t.Errorf("OpenBus with %+v: no error", cfg)
		}
	}
	if n := countStreams(t, srv.JetStream()); n != 0 {
		t.Fatalf("%d streams made from bad configurations", n)
	}
}

func countStreams(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	n := 0
	for range js.StreamNames(t.Context()).Name() {
		n++
	}
	return n
}

// A bucket or stream made before the configuration (no byte limit, the stream discarding
// old events after a day) is brought to it when opened, keeping what it holds (the event
// for its consumer); opening again with other
// figures changes them again. More replicas than a lone server has is a clear error that
// leaves the bucket as it was.
func TestOpenUpdatesWhatExistsWithOtherSettings(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	ctx := t.Context()
	const name = "existing"
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Put(ctx, "k", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natsjs.StreamName, Subjects: []string{"shop.events.>"},
		Storage: jetstream.FileStorage, MaxAge: 24 * time.Hour, MaxBytes: 1 << 30, Discard: jetstream.DiscardOld}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, events.OrderPaidSubject, []byte(`{"order_id":"o-1"}`)); err != nil {
		t.Fatal(err)
	}

	for _, limit := range []int64{1 << 20, 2 << 20} {
		cfg := natsjs.StoreConfig{Replicas: 1, MaxBytes: map[string]int64{name: limit, natsjs.StreamName: 2 * limit}}
		b, err := natsjs.OpenBucket(ctx, js, cfg, name)
		if err != nil {
			t.Fatalf("reopen with %d bytes: %v", limit, err)
		}
		checkStream(t, js, "KV_"+name, limit, 1)
		if e, err := b.Get(ctx, "k"); err != nil || string(e.Value) != "kept" {
			t.Fatalf("value after reopening: %q, %v", e.Value, err)
		}
		if _, err := natsjs.OpenBus(ctx, js, cfg, shippingOnly, discard); err != nil {
			t.Fatalf("reopen the bus with %d bytes: %v", 2*limit, err)
		}
		checkStream(t, js, natsjs.StreamName, 2*limit, 1)
		if n := streamMsgs(t, js, natsjs.StreamName); n != 1 {
			t.Fatalf("the event stream holds %d events after reopening, want the one shipping has not read", n)
		}
	}

	_, err = natsjs.OpenBucket(ctx, js, natsjs.StoreConfig{Replicas: 3}, name)
	if err == nil || !strings.Contains(err.Error(), "3 replicas") {
		t.Fatalf("3 replicas on a lone server: %v, want an error saying so", err)
	}
	checkStream(t, js, "KV_"+name, 2<<20, 1)
	if _, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{Replicas: 3}, nil, discard); err == nil {
		t.Fatal("the bus opened with 3 replicas on a lone server")
	}
	checkStream(t, js, natsjs.StreamName, 4<<20, 1)
}

// shippingOnly are the consumers of the tests that publish before anyone subscribes: the
// event stream keeps an event only for the consumers that exist.
var shippingOnly = []natsjs.Consumer{{Name: "shipping", Subjects: []string{events.OrderPaidSubject}}}

// streamMsgs is how many messages the stream name holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// checkStream fails t unless the stream has the byte limit, discards new messages and has
// the replicas asked for; the event stream also keeps its events for their consumers, not
// for a time.
func checkStream(t *testing.T, js jetstream.JetStream, name string, maxBytes int64, replicas int) {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.MaxBytes != maxBytes || c.Discard != jetstream.DiscardNew || c.Replicas != replicas {
		t.Fatalf("stream %s: max bytes %d, discard %v, replicas %d; want %d, new, %d", name, c.MaxBytes, c.Discard, c.Replicas, maxBytes, replicas)
	}
	if name == natsjs.StreamName && (c.Retention != jetstream.InterestPolicy || c.MaxAge != 0) {
		t.Fatalf("stream %s: retention %v, max age %s; want interest, none", name, c.Retention, c.MaxAge)
	}
}

// A full bucket refuses what would grow it with ErrFull and keeps every value it holds; a
// write that does not grow it still goes through. A full stream refuses new events and keeps
// the old ones, which a consumer may not have read yet.
func TestFullBucketAndStreamRefuseNewWritesAndKeepTheOld(t *testing.T) {
	srv := natsjstest.New(t)
	ctx := t.Context()
	const limit = 4 << 10
	cfg := natsjs.StoreConfig{MaxBytes: map[string]int64{"tiny": limit, natsjs.StreamName: limit}}
	b, err := natsjs.OpenBucket(ctx, srv.JetStream(), cfg, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	value := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 200) }
	var full error
	written := 0
	for i := range 100 { // 100 × 200 bytes is five times the limit
		if _, err := b.Create(ctx, fmt.Sprintf("k%d", i), value(i)); err != nil {
			full = err
			break
		}
		written++
	}
	if !errors.Is(full, natsjs.ErrFull) || errors.Is(full, kv.ErrExists) || errors.Is(full, kv.ErrConflict) {
		t.Fatalf("the write past %d bytes: %v, want ErrFull only", limit, full)
	}
	if written == 0 {
		t.Fatal("not one write fitted")
	}
	for i := range written {
		if e, err := b.Get(ctx, fmt.Sprintf("k%d", i)); err != nil || !bytes.Equal(e.Value, value(i)) {
			t.Fatalf("k%d after the bucket filled: %q, %v", i, e.Value, err)
		}
	}
	if keys, err := b.Keys(ctx); err != nil || len(keys) != written {
		t.Fatalf("keys after the bucket filled: %d, %v; want %d", len(keys), err, written)
	}
	e, err := b.Get(ctx, "k0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "k0", bytes.Repeat([]byte("z"), 1000), e.Revision); !errors.Is(err, natsjs.ErrFull) {
		t.Fatalf("a longer value in a full bucket: %v, want ErrFull", err)
	}
	if _, err := b.Update(ctx, "k0", value(1), e.Revision); err != nil {
		t.Fatalf("a value as long as the one it replaces, in a full bucket: %v", err)
	}
	if err := b.Delete(ctx, "k1", 0); err != nil {
		t.Fatalf("a delete in a full bucket: %v", err)
	}

	bus, err := natsjs.OpenBus(ctx, srv.JetStream(), cfg, shippingOnly, discard)
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	for i := range 100 {
		err = bus.Publish(ctx, events.OrderPaidSubject, fmt.Sprintf("e%d", i), events.OrderPaid{OrderID: fmt.Sprintf("o-%d", i)})
		if err != nil {
			break
		}
		published++
	}
	if !errors.Is(err, natsjs.ErrFull) || published == 0 {
		t.Fatalf("after %d events: %v, want ErrFull", published, err)
	}
	stream, err := srv.JetStream().Stream(ctx, natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(published) || info.State.FirstSeq != 1 {
		t.Fatalf("stream holds %d events from sequence %d, want the %d published from 1", info.State.Msgs, info.State.FirstSeq, published)
	}
}

// On a cluster, opening a bucket or the stream that has one copy with Replicas 3 makes three,
// keeping what it holds: how a deployment moves to the production overlay's setting.
func TestOpenScalesWhatExistsToTheCluster(t *testing.T) {
	cluster := natsjstest.NewCluster(t, 3)
	js := cluster.JetStream(t, 0, "scale")
	ctx := t.Context()
	one := natsjs.StoreConfig{Replicas: 1}
	b, err := natsjs.OpenBucket(ctx, js, one, "scaled")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "k", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	bus, err := natsjs.OpenBus(ctx, js, one, shippingOnly, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, events.OrderPaidSubject, "e1", events.OrderPaid{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	checkStream(t, js, "KV_scaled", natsjs.DefaultMaxBytes, 1)
	if s, err := js.Stream(ctx, "KV_scaled"); err != nil || !s.CachedInfo().Config.AllowDirect {
		t.Fatalf("a bucket of one copy reads without direct gets (%v): they are consistent there, and faster", err)
	}

	three := natsjs.StoreConfig{Replicas: 3}
	if b, err = natsjs.OpenBucket(ctx, js, three, "scaled"); err != nil {
		t.Fatal(err)
	}
	if _, err := natsjs.OpenBus(ctx, js, three, shippingOnly, discard); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"KV_scaled", natsjs.StreamName} {
		checkStream(t, js, name, three.Limit(strings.TrimPrefix(name, "KV_")), 3)
		natsjstest.WaitReplicated(t, js, name, 3)
	}
	// A replicated bucket is read from its leader: no copy answers direct gets.
	if s, err := js.Stream(ctx, "KV_scaled"); err != nil || s.CachedInfo().Config.AllowDirect {
		t.Fatalf("the replicated bucket allows direct gets (%v)", err)
	}
	if e, err := b.Get(ctx, "k"); err != nil || string(e.Value) != "kept" {
		t.Fatalf("value after scaling: %q, %v", e.Value, err)
	}
	s, err := js.Stream(ctx, natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("events after scaling: %+v, %v", info, err)
	}
}

// A bucket's stream allows per-message TTLs only once a write asks for one: until then the
// server would start a timer at every write for nothing. The write that asks turns them on
// (with the markers watches learn of expiries from), its value expires, and reopening the
// bucket, as every process start does, keeps them on rather than failing to turn them off.
func TestTTLsAreAllowedByTheFirstWriteThatTakesOne(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	ctx := t.Context()
	const name = "lazy_ttls"
	allows := func() jetstream.StreamConfig {
		t.Helper()
		s, err := js.Stream(ctx, "KV_"+name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config
	}
	b, err := natsjs.OpenBucket(ctx, js, natsjs.StoreConfig{}, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "kept", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if c := allows(); c.AllowMsgTTL || c.SubjectDeleteMarkerTTL != 0 {
		t.Fatalf("a bucket no write asked a TTL of allows them: %+v", c)
	}
	if _, err := b.Create(ctx, "brief", []byte("2"), kv.TTL(time.Second)); err != nil {
		t.Fatalf("the first write with a TTL: %v", err)
	}
	if c := allows(); !c.AllowMsgTTL || c.SubjectDeleteMarkerTTL <= 0 {
		t.Fatalf("after a write with a TTL, the stream allows TTLs %v with markers kept %s", c.AllowMsgTTL, c.SubjectDeleteMarkerTTL)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := b.Get(ctx, "brief"); errors.Is(err, kv.ErrNotFound) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the value written with a TTL of 1s is still there after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	again, err := natsjs.OpenBucket(ctx, js, natsjs.StoreConfig{}, name)
	if err != nil {
		t.Fatalf("reopen a bucket that allows TTLs: %v", err)
	}
	if c := allows(); !c.AllowMsgTTL {
		t.Fatal("reopening turned TTLs off")
	}
	if e, err := again.Get(ctx, "kept"); err != nil || string(e.Value) != "1" {
		t.Fatalf("value after reopening: %q, %v", e.Value, err)
	}
	if _, err := again.Create(ctx, "brief", []byte("3"), kv.TTL(time.Hour)); err != nil {
		t.Fatalf("a write with a TTL after reopening: %v", err)
	}
}

// Racing Creates of a key, new or deleted, on a replicated bucket: one wins, the others get
// kv.ErrExists, as on a single server (where kvtest.Run checks it).
func TestConcurrentCreatesOnACluster(t *testing.T) {
	cluster := natsjstest.NewCluster(t, 3)
	js := cluster.JetStream(t, 0, "creates")
	b, err := natsjs.OpenBucket(t.Context(), js, natsjs.StoreConfig{Replicas: 3}, "creates")
	if err != nil {
		t.Fatal(err)
	}
	kvtest.ConcurrentCreates(t, b)
}
