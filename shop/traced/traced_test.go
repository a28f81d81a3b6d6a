package traced_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/traced"
	"github.com/mitosis-dev/mitosis/shop/traced/tracedtest"
)

// The span names of the calls between contexts, and their nesting, are tested where the
// contexts are wired: services/host.

func TestStoreSpansOnlyInsideATrace(t *testing.T) {
	rec := tracedtest.New()
	tr := traced.New(rec, nil)
	b := tr.Bucket("things", kv.NewMemory())
	ctx := t.Context()

	if _, err := b.Create(ctx, "a", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans outside any trace, want none", n)
	}

	ctx, parent := rec.Tracer("test").Start(ctx, "request")
	e, err := b.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "a", []byte(`2`), e.Revision+100); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("Update with a stale revision: %v", err)
	}
	if _, err := b.Get(ctx, "missing"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if _, err := b.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var names []string
	for _, s := range rec.Ended() {
		if s.Name == "request" {
			continue
		}
		names = append(names, s.Name+"/"+s.Attr(traced.KVOutcome))
		if s.Kind != trace.SpanKindClient || s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %s: kind %v parent %v, want a CLIENT child of the request", s.Name, s.Kind, s.Parent.SpanID())
		}
		if s.Status == codes.Error {
			t.Errorf("span %s is an error: a missing key or a lost race is an answer", s.Name)
		}
		if s.Attr(traced.DBCollection) != "things" || s.Attr(traced.DBSystem) == "" {
			t.Errorf("span %s attributes %v", s.Name, s.Attributes)
		}
	}
	want := []string{"Get things/", "Update things/conflict", "Get things/not_found", "Keys things/", "Delete things/"}
	if !slices.Equal(names, want) {
		t.Fatalf("store spans %v, want %v", names, want)
	}
}

// down is a store whose reads fail as an unreachable JetStream's do.
type down struct{ kv.Bucket }

var errDown = errors.New("store down")

func (down) Get(context.Context, string) (kv.Entry, error) { return kv.Entry{}, errDown }

func TestStoreSpanOfAFailureIsAnError(t *testing.T) {
	rec := tracedtest.New()
	b := traced.New(rec, nil).Bucket("things", down{kv.NewMemory()})
	ctx, parent := rec.Tracer("test").Start(t.Context(), "request")
	if _, err := b.Get(ctx, "a"); !errors.Is(err, errDown) {
		t.Fatalf("Get: %v, want the store's error", err)
	}
	parent.End()
	for _, s := range rec.Ended() {
		if s.Name != "Get things" {
			continue
		}
		if s.Status != codes.Error || s.Attr(traced.KVOutcome) != "" {
			t.Fatalf("span of a failed Get: status %v, outcome %q; want an error and no outcome", s.Status, s.Attr(traced.KVOutcome))
		}
		return
	}
	t.Fatalf("no span of the failed Get among %v", rec.Ended())
}

// TestCallSpansFollowTheTrace: a call inside a recorded trace is a child span of it, a call
// with no trace around it (a background loop's) starts one, and a call inside a trace that
// is not recorded (sampled out, or named by an edge with no SDK) makes no span at all: the
// sampler would not record it either.
func TestCallSpansFollowTheTrace(t *testing.T) {
	rec := tracedtest.New()
	carts := traced.New(rec, nil).Cart("mitosis.cart.v1.CartService", cart.New(kv.NewMemory()))
	const name = "mitosis.cart.v1.CartService/Get"

	ctx, parent := rec.Tracer("test").Start(t.Context(), "request")
	if _, err := carts.Get(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if got := rec.Named(name); len(got) != 1 || got[0].Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("call inside a recorded trace: spans %+v, want one child of the request", got)
	}

	rec.Reset()
	if _, err := carts.Get(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if got := rec.Named(name); len(got) != 1 || got[0].Parent.IsValid() {
		t.Fatalf("call outside any trace: spans %+v, want one root", got)
	}

	rec.Reset()
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})
	if _, err := carts.Get(trace.ContextWithSpanContext(t.Context(), unsampled), "alice"); err != nil {
		t.Fatal(err)
	}
	if got := rec.Ended(); len(got) != 0 {
		t.Fatalf("call inside a trace not recorded: spans %+v, want none", got)
	}
}
