package traced

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Bucket returns b, named name, with every operation made inside a recorded trace a CLIENT
// span named "<operation> <bucket>" (e.g. "Get orders_sagas"). Operations outside any trace
// (the background loops, the catalog's watch) make no span: they would each start a trace of
// their own and bury the requests' traces; nor do those of a trace sampled out. Watch is not traced: it lives as long as its
// context, not as long as a request.
//
// Every operation, in a trace or not, is also measured: db.client.operation.duration, by
// bucket, operation and outcome (ok, or the store's answer: not_found, conflict, exists; or
// error), whose count is the store round trips the shop makes.
func (t *Tracing) Bucket(name string, b kv.Bucket) kv.Bucket {
	s := &bucketCalls{t: t, name: name, next: b}
	for i, op := range [...]string{"Get", "Create", "Update", "Delete", "Keys"} {
		attrs := []attribute.KeyValue{DBSystem.String(storeSystem), DBOperation.String(op), DBCollection.String(name)}
		s.ops[i] = storeOp{name: op + " " + name, attrs: attrs}
		for j, o := range outcomes {
			set := attribute.NewSet(append(slices.Clip(attrs), KVOutcome.String(o))...)
			s.ops[i].record[j] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
	}
	return s
}

// outcomes are the values of KVOutcome on the store's metric, in the order of storeOp.record.
var outcomes = [...]string{"ok", "not_found", "conflict", "exists", "error"}

// storeOp is one operation on one bucket: its span's name and attributes, and its metric's
// attributes by outcome, computed once.
type storeOp struct {
	name   string
	attrs  []attribute.KeyValue
	record [len(outcomes)][]metric.RecordOption
}

// outcome is the index in outcomes of what an operation that returned err answered.
func outcome(err error) int {
	if err == nil {
		return 0
	}
	if i := slices.Index(outcomes[:], errOutcome(err)); i > 0 {
		return i
	}
	return len(outcomes) - 1
}

// end ends the operation op that started at start, whose span (nil outside a recorded
// trace) is span, and that returned err: the span is marked with the store's answer, or as
// failed, and the operation measured.
func (b *bucketCalls) end(ctx context.Context, op int, start time.Time, span trace.Span, err error) {
	o := outcome(err)
	if span != nil {
		switch o {
		case 0:
		case len(outcomes) - 1:
			span.SetStatus(codes.Error, err.Error())
		default:
			span.SetAttributes(b.t.outcomes[o]...)
		}
		span.End()
	}
	b.t.store.Record(ctx, time.Since(start).Seconds(), b.ops[op].record[o]...)
}

type bucketCalls struct {
	t    *Tracing
	name string
	next kv.Bucket
	ops  [5]storeOp // Get, Create, Update, Delete, Keys
}

func (b *bucketCalls) start(ctx context.Context, op int) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	// As with the INTERNAL spans (see Tracing.start), the attributes go in after the start.
	ctx, span := b.t.tracer.Start(ctx, b.ops[op].name, b.t.client...)
	span.SetAttributes(b.ops[op].attrs...)
	return ctx, span
}

func (b *bucketCalls) Get(ctx context.Context, key string) (kv.Entry, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 0)
	e, err := b.next.Get(ctx, key)
	b.end(ctx, 0, start, span, err)
	return e, err
}

func (b *bucketCalls) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 1)
	rev, err := b.next.Create(ctx, key, value, opts...)
	b.end(ctx, 1, start, span, err)
	return rev, err
}

func (b *bucketCalls) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 2)
	rev, err := b.next.Update(ctx, key, value, rev, opts...)
	b.end(ctx, 2, start, span, err)
	return rev, err
}

func (b *bucketCalls) Delete(ctx context.Context, key string, rev uint64) error {
	start := time.Now()
	ctx, span := b.start(ctx, 3)
	err := b.next.Delete(ctx, key, rev)
	b.end(ctx, 3, start, span, err)
	return err
}

func (b *bucketCalls) Keys(ctx context.Context) ([]string, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 4)
	keys, err := b.next.Keys(ctx)
	b.end(ctx, 4, start, span, err)
	return keys, err
}

func (b *bucketCalls) Watch(ctx context.Context) (<-chan kv.Entry, error) {
	return b.next.Watch(ctx)
}
