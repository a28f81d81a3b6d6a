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

// measure records the operation op that started at start and returned err.
func (b *bucketCalls) measure(ctx context.Context, op int, start time.Time, err error) {
	o := 0
	if err != nil {
		o = len(outcomes) - 1
		if i := slices.Index(outcomes[:], errOutcome(err)); i > 0 {
			o = i
		}
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

func endStore(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		if o := errOutcome(err); o != "" {
			span.SetAttributes(KVOutcome.String(o))
		} else {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

func (b *bucketCalls) Get(ctx context.Context, key string) (kv.Entry, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 0)
	e, err := b.next.Get(ctx, key)
	endStore(span, err)
	b.measure(ctx, 0, start, err)
	return e, err
}

func (b *bucketCalls) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 1)
	rev, err := b.next.Create(ctx, key, value, opts...)
	endStore(span, err)
	b.measure(ctx, 1, start, err)
	return rev, err
}

func (b *bucketCalls) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 2)
	rev, err := b.next.Update(ctx, key, value, rev, opts...)
	endStore(span, err)
	b.measure(ctx, 2, start, err)
	return rev, err
}

func (b *bucketCalls) Delete(ctx context.Context, key string, rev uint64) error {
	start := time.Now()
	ctx, span := b.start(ctx, 3)
	err := b.next.Delete(ctx, key, rev)
	endStore(span, err)
	b.measure(ctx, 3, start, err)
	return err
}

func (b *bucketCalls) Keys(ctx context.Context) ([]string, error) {
	start := time.Now()
	ctx, span := b.start(ctx, 4)
	keys, err := b.next.Keys(ctx)
	endStore(span, err)
	b.measure(ctx, 4, start, err)
	return keys, err
}

func (b *bucketCalls) Watch(ctx context.Context) (<-chan kv.Entry, error) {
	return b.next.Watch(ctx)
}
