package telemetry

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// batcher is the span processor of the OTLP exporter: the SDK's batch span processor and
// otlptrace.Exporter in one, for a fraction of their CPU. Each span is written in OTLP's
// protobuf encoding as it ends, in the goroutine that ends it, into the batch being filled;
// a full batch (or, every schedule delay, whatever the batch holds) goes to one goroutine
// that sends it with the stock OTLP client (HTTP or gRPC: endpoint, headers, TLS,
// compression, retries, all from the OTEL_EXPORTER_OTLP_* variables as usual), as the raw
// content of one ResourceSpans message per resource. The bytes sent are the ones the stock
// exporter sends (TestBatcherSendsWhatTheStockExporterSends and a fuzz test), but for a
// string that is not UTF-8: the stock exporter fails the whole batch over it, this one sends
// it repaired.
//
// Why: with every span sampled, the SDK's processor and exporter were most of what tracing
// cost the monolith. A cart add and a checkout (44 spans) take 5.32 million instructions
// untraced; 7.20 million traced through the SDK's batch span processor and OTLP exporter
// (+35%); 5.88 million through the SDK's processor to an exporter that drops everything; 5.96
// million through this processor (+12%). (monolith's BenchmarkCheckoutTracing, modes off,
// sdk-otlp, sdk-discard and on, under valgrind --tool=cachegrind with GOMAXPROCS=1: the
// difference between 200 and 600 iterations.) The SDK's processor woke its goroutine once per
// span through a channel; the exporter copied each span into generated protobuf structs,
// three allocations per attribute, and marshalled those by reflection. Here a span costs a
// few hundred bytes appended to a reused buffer, and the exporting goroutine wakes once per
// batch. This is hand-written on purpose: the library does the job, at a cost the tracing
// budget (10% of a request's CPU) cannot pay.
//
// It reads the batch span processor's variables (OTEL_BSP_SCHEDULE_DELAY,
// OTEL_BSP_EXPORT_TIMEOUT, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE) with the
// SDK's meaning, and like it never blocks the code that ends a span: when the queue is full
// the batch is dropped. It suits only clients that marshal protobuf (http/protobuf and grpc,
// the protocols Setup accepts): a JSON encoder would not see fields carried as raw bytes;
// for the same reason the clients' experimental self-observability (OTEL_GO_X_OBSERVABILITY)
// counts the spans it sends as zero.
type batcher struct {
	client otlptrace.Client
	cfg    batchConfig

	mu      sync.Mutex // guards cur and stopped
	cur     *batch     // the batch being filled
	stopped bool

	queue    chan *batch   // full batches and flush requests, for the export goroutine
	free     chan *batch   // exported batches, to fill again
	stop     chan struct{} // closed by Shutdown
	done     chan struct{} // closed when the export goroutine has returned
	dropped  atomic.Int64  // spans dropped because the queue was full
	reported atomic.Int64  // of those, how many the error handler has been told of
	stopOnce sync.Once
	scratch  sync.Pool // of *[]byte: where OnEnd writes a span before it takes the lock

	req []byte // the request being built: the export goroutine's only
}

// batch is spans encoded as the spans field of their ScopeSpans, grouped by resource and
// scope. A batch is filled again once sent, keeping its groups' buffers.
type batch struct {
	spans   int
	groups  []spanGroup
	flushed chan struct{} // a flush request's: closed once the batch (and all before) is sent
	err     error         // a flush request's: the export's error, set before flushed is closed
}

type spanGroup struct {
	res   *resource.Resource
	scope instrumentation.Scope
	spans []byte // each span with its key and length: field 2 of ScopeSpans
}

// batchConfig is what OTEL_BSP_* configure.
type batchConfig struct {
	delay    time.Duration // at most this long between a span's end and its export
	timeout  time.Duration // for one export, retries included
	maxQueue int           // spans waiting, the batch being filled included
	maxBatch int           // spans per export
}

// defaultQueueSize is the queue when OTEL_BSP_MAX_QUEUE_SIZE is unset: four times the SDK's
// 2048, since a checkout in the services makes about 70 spans and a load test runs hundreds
// of checkouts a second; a full queue drops spans.
const defaultQueueSize = 8192

// batchConfigFromEnv reads the variables of the SDK's batch span processor, with its
// defaults (but defaultQueueSize) and, for a value that is not a positive integer, its
// answer: the default.
func batchConfigFromEnv() batchConfig {
	ms := func(key string, def int) time.Duration { return time.Duration(envInt(key, def)) * time.Millisecond }
	c := batchConfig{
		delay:    ms("OTEL_BSP_SCHEDULE_DELAY", 5000),
		timeout:  ms("OTEL_BSP_EXPORT_TIMEOUT", 30000),
		maxQueue: envInt("OTEL_BSP_MAX_QUEUE_SIZE", defaultQueueSize),
		maxBatch: envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
	}
	if c.maxBatch > c.maxQueue {
		c.maxBatch = min(512, c.maxQueue)
	}
	return c
}

func envInt(key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		otel.Handle(fmt.Errorf("%s=%q: want a positive integer; using %d", key, v, def))
		return def
	}
	return n
}

// maxScratch bounds the buffers the scratch pool keeps: a span with large attributes is
// written in a buffer of its own, which is not kept.
const maxScratch = 4 << 10

// newBatcher starts client and the goroutine that exports through it.
func newBatcher(ctx context.Context, client otlptrace.Client, cfg batchConfig) (*batcher, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	queued := max(1, cfg.maxQueue/cfg.maxBatch-1) // the batch being filled is the last
	p := &batcher{client: client, cfg: cfg, cur: &batch{},
		queue: make(chan *batch, queued), free: make(chan *batch, queued+1),
		stop: make(chan struct{}), done: make(chan struct{})}
	p.scratch.New = func() any { b := make([]byte, 0, 512); return &b }
	go p.run()
	return p, nil
}

// OnStart does nothing: a span is written when it ends.
func (*batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd writes s into the current batch, and queues the batch when it is full. Spans not
// sampled (a RecordOnly sampler's) are not exported, as with the SDK's processor.
func (p *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	sc := s.SpanContext()
	if !sc.IsSampled() {
		return
	}
	res, scope := s.Resource(), s.InstrumentationScope()
	// The span is written outside the lock, which every span's end takes: written under it,
	// it kept the lock busy enough for the goroutines ending spans to queue on it (100 µs per
	// traced checkout, and the futex calls of the waits; monolith's
	// BenchmarkCheckoutTracing/tracing=on-all with -test.mutexprofile). Under the lock it is
	// only copied.
	buf := p.scratch.Get().(*[]byte)
	enc := appendSpan((*buf)[:0], s, sc)
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	b := p.cur
	g := b.group(res, scope)
	g.spans = append(g.spans, enc...)
	b.spans++
	full := b.spans >= p.cfg.maxBatch
	if full {
		p.cur = p.newBatch()
	}
	p.mu.Unlock()
	if cap(enc) <= maxScratch {
		*buf = enc
		p.scratch.Put(buf)
	}
	if full {
		select {
		case p.queue <- b:
		default:
			p.dropped.Add(int64(b.spans))
			p.recycle(b)
		}
	}
}

// ForceFlush sends every span ended before the call, and returns once they are sent.
func (p *batcher) ForceFlush(ctx context.Context) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	b := p.cur
	p.cur = p.newBatch()
	p.mu.Unlock()
	return p.flush(ctx, b)
}

// flush queues b as a flush request and waits for it: the queue is first in, first out, so
// every batch queued before b has been sent too.
func (p *batcher) flush(ctx context.Context, b *batch) error {
	b.flushed = make(chan struct{})
	select {
	case p.queue <- b:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-b.flushed:
		err := b.err
		b.flushed, b.err = nil, nil
		p.recycle(b)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown sends what is left, stops the export goroutine and then the client. Spans that
// end afterwards are dropped.
func (p *batcher) Shutdown(ctx context.Context) error {
	var err error
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopped = true
		last := p.cur
		p.cur = nil
		p.mu.Unlock()
		err = p.flush(ctx, last)
		close(p.stop)
		select {
		case <-p.done:
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
		}
		err = errors.Join(err, p.client.Stop(ctx))
		p.reportDrops()
	})
	return err
}

// reportDrops tells the error handler (the log) how many spans were dropped since it last
// did. It runs every schedule delay, so that a collector too slow or gone shows while it
// happens, not only at exit.
func (p *batcher) reportDrops() {
	for {
		r, n := p.reported.Load(), p.dropped.Load()
		if n <= r {
			return
		}
		if p.reported.CompareAndSwap(r, n) {
			otel.Handle(fmt.Errorf("otlp trace exporter: dropped %d spans, the queue (OTEL_BSP_MAX_QUEUE_SIZE=%d) being full", n-r, p.cfg.maxQueue))
			return
		}
	}
}

// run exports what is queued, and every schedule delay the batch being filled, until
// Shutdown; then what is still queued.
func (p *batcher) run() {
	defer close(p.done)
	tick := time.NewTicker(p.cfg.delay)
	defer tick.Stop()
	for {
		select {
		case b := <-p.queue:
			p.exportQueued(b)
		case <-tick.C:
			p.mu.Lock()
			b := p.cur
			if b != nil && b.spans > 0 {
				p.cur = p.newBatch()
			} else {
				b = nil
			}
			p.mu.Unlock()
			if b != nil {
				p.exportQueued(b)
			}
			p.reportDrops()
		case <-p.stop:
			for {
				select {
				case b := <-p.queue:
					p.exportQueued(b)
				default:
					return
				}
			}
		}
	}
}

func (p *batcher) exportQueued(b *batch) {
	err := p.export(b)
	if b.flushed != nil {
		b.err = err
		close(b.flushed)
		return // its flusher recycles it
	}
	if err != nil {
		otel.Handle(err)
	}
	p.recycle(b)
}

// export sends b: one ResourceSpans per resource, of one ScopeSpans per scope.
func (p *batcher) export(b *batch) error {
	if b.spans == 0 {
		return nil
	}
	r := p.req[:0]
	var starts []int // where each ResourceSpans begins in r
	sent := make([]bool, len(b.groups))
	for first, g := range b.groups {
		if sent[first] || len(g.spans) == 0 {
			continue
		}
		starts = append(starts, len(r))
		if g.res != nil {
			var m int
			r, m = openMessage(r, 1) // ResourceSpans.resource
			r = appendKeyValues(r, 1, g.res.Iter())
			r = closeMessage(r, m)
		}
		for i := first; i < len(b.groups); i++ {
			o := &b.groups[i]
			if sent[i] || len(o.spans) == 0 || !sameResource(o.res, g.res) {
				continue
			}
			sent[i] = true
			var m int
			r, m = openMessage(r, 2) // ResourceSpans.scope_spans
			r = appendScope(r, o.scope)
			r = append(r, o.spans...)
			r = appendString(r, 3, o.scope.SchemaURL) // ScopeSpans.schema_url
			r = closeMessage(r, m)
		}
		r = appendString(r, 3, g.res.SchemaURL()) // ResourceSpans.schema_url
	}
	p.req = r

	// The client marshals the request before UploadTraces returns: r is free again after.
	rss := make([]*tracepb.ResourceSpans, len(starts))
	for i, start := range starts {
		end := len(r)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		rss[i] = &tracepb.ResourceSpans{}
		rss[i].ProtoReflect().SetUnknown(protoreflect.RawFields(r[start:end:end]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.timeout)
	defer cancel()
	if err := p.client.UploadTraces(ctx, rss); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// newBatch returns an empty batch, reusing an exported one's buffers when there is one.
// Called with p.mu held.
func (p *batcher) newBatch() *batch {
	select {
	case b := <-p.free:
		return b
	default:
		return &batch{}
	}
}

func (p *batcher) recycle(b *batch) {
	b.spans = 0
	for i := range b.groups {
		b.groups[i].spans = b.groups[i].spans[:0]
	}
	if len(b.groups) > 16 { // scopes come and go: do not keep them all forever
		b.groups = nil
	}
	select {
	case p.free <- b:
	default:
	}
}

// group returns the group of spans of res and scope, adding it if need be.
func (b *batch) group(res *resource.Resource, scope instrumentation.Scope) *spanGroup {
	for i := range b.groups {
		if g := &b.groups[i]; g.scope == scope && sameResource(g.res, res) {
			return g
		}
	}
	b.groups = append(b.groups, spanGroup{res: res, scope: scope})
	return &b.groups[len(b.groups)-1]
}

// sameResource compares resources as the stock exporter groups them: by their attributes.
func sameResource(a, b *resource.Resource) bool {
	return a == b || a.Equivalent() == b.Equivalent()
}

// The encoding below follows opentelemetry-proto's trace.proto, common.proto and
// resource.proto (v1), field by field, as the stock transform fills them: proto3 scalars
// are left out when zero, message fields the transform always sets (a span's status, an
// attribute's value) are written even when empty, and a oneof member (AnyValue's) is written
// whatever its value.

// appendSpan writes s, whose span context is sc, as field 2 (spans) of a ScopeSpans. (Each
// of a ReadOnlySpan's methods copies the whole span: each is called once.)
func appendSpan(b []byte, s sdktrace.ReadOnlySpan, sc trace.SpanContext) []byte {
	b, m := openMessage(b, 2)
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, 1, tid[:])
	b = appendBytes(b, 2, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = appendString(b, 3, ts.String())
	}
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = appendBytes(b, 4, psid[:])
	}
	b = appendString(b, 5, s.Name())
	b = appendVarint(b, 6, uint64(spanKind(s.SpanKind())))
	b = appendFixed64(b, 7, unixNano(s.StartTime()))
	b = appendFixed64(b, 8, unixNano(s.EndTime()))
	for _, kv := range s.Attributes() {
		b = appendKeyValue(b, 9, kv)
	}
	b = appendVarint(b, 10, clampUint32(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		var m int
		b, m = openMessage(b, 11)
		b = appendFixed64(b, 1, unixNano(ev.Time))
		b = appendString(b, 2, ev.Name)
		for _, kv := range ev.Attributes {
			b = appendKeyValue(b, 3, kv)
		}
		b = appendVarint(b, 4, clampUint32(ev.DroppedAttributeCount))
		b = closeMessage(b, m)
	}
	b = appendVarint(b, 12, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		var m int
		b, m = openMessage(b, 13)
		b = appendBytes(b, 1, ltid[:])
		b = appendBytes(b, 2, lsid[:])
		// The stock transform leaves a link's trace_state (3) out; so does this.
		for _, kv := range l.Attributes {
			b = appendKeyValue(b, 4, kv)
		}
		b = appendVarint(b, 5, clampUint32(l.DroppedAttributeCount))
		b = appendFlags(b, 6, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		b = closeMessage(b, m)
	}
	b = appendVarint(b, 14, clampUint32(s.DroppedLinks()))
	st := s.Status()
	st.Description = validUTF8(st.Description) // its size is counted before it is written
	code := uint64(statusCode(st.Code))
	n := 0 // the Status's size
	if st.Description != "" {
		n += 1 + protowire.SizeBytes(len(st.Description))
	}
	if code != 0 {
		n += 1 + protowire.SizeVarint(code)
	}
	b = appendUvarint(appendTag(b, 15, protowire.BytesType), uint64(n))
	b = appendString(b, 2, st.Description)
	b = appendVarint(b, 3, code)
	b = appendFlags(b, 16, spanFlags(sc.TraceFlags(), parent))
	return closeMessage(b, m)
}

// appendScope writes ScopeSpans.scope (field 1), left out for the zero scope.
func appendScope(b []byte, s instrumentation.Scope) []byte {
	if s == (instrumentation.Scope{}) {
		return b
	}
	b, m := openMessage(b, 1)
	b = appendString(b, 1, s.Name)
	b = appendString(b, 2, s.Version)
	b = appendKeyValues(b, 3, s.Attributes.Iter())
	return closeMessage(b, m)
}

func spanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	}
	return tracepb.Span_SPAN_KIND_UNSPECIFIED
}

func statusCode(c codes.Code) tracepb.Status_StatusCode {
	switch c {
	case codes.Ok:
		return tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

// spanFlags are the W3C trace flags plus whether the parent is known to be remote.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if parent.IsRemote() {
		f |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return f
}

func clampUint32(v int) uint64 {
	return uint64(min(max(v, 0), math.MaxUint32))
}

func unixNano(t time.Time) uint64 {
	return uint64(max(0, t.UnixNano()))
}

func appendKeyValues(b []byte, field protowire.Number, it attribute.Iterator) []byte {
	for it.Next() {
		b = appendKeyValue(b, field, it.Attribute())
	}
	return b
}

// appendKeyValue writes kv as a KeyValue message in field. The usual values (a string, a
// number, a bool) have sizes known up front, which spares moving the bytes written to put
// the lengths before them.
func appendKeyValue(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	kv.Key = attribute.Key(validUTF8(string(kv.Key))) // its size is counted before it is written
	var n int                                         // the AnyValue's size
	switch kv.Value.Type() {
	case attribute.STRING:
		v := validUTF8(kv.Value.AsString())
		// Most attributes: a key and a string short enough for every length to take one byte.
		if kvSize := 2 + len(kv.Key) + 2 + 2 + len(v); kv.Key != "" && kvSize < 0x80 {
			b = append(b, byte(field)<<3|byte(protowire.BytesType), byte(kvSize), 1<<3|byte(protowire.BytesType), byte(len(kv.Key)))
			b = append(b, kv.Key...)
			b = append(b, 2<<3|byte(protowire.BytesType), byte(2+len(v)), 1<<3|byte(protowire.BytesType), byte(len(v)))
			return append(b, v...)
		}
		n = 1 + protowire.SizeBytes(len(v))
	case attribute.BOOL:
		n = 2
	case attribute.INT64:
		n = 1 + protowire.SizeVarint(uint64(kv.Value.AsInt64()))
	case attribute.FLOAT64:
		n = 1 + 8
	default:
		b, m := openMessage(b, field)
		b = appendString(b, 1, string(kv.Key))
		b, v := openMessage(b, 2)
		b = appendAnyValue(b, kv.Value)
		return closeMessage(closeMessage(b, v), m)
	}
	size := 1 + protowire.SizeBytes(n)
	if kv.Key != "" {
		size += 1 + protowire.SizeBytes(len(kv.Key))
	}
	b = appendUvarint(appendTag(b, field, protowire.BytesType), uint64(size))
	b = appendString(b, 1, string(kv.Key))
	b = appendUvarint(appendTag(b, 2, protowire.BytesType), uint64(n))
	return appendAnyValue(b, kv.Value)
}

// appendAnyValue writes the fields of an AnyValue message: one member of its oneof.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.EMPTY:
		return b
	case attribute.STRING:
		return appendOneofString(b, 1, v.AsString())
	case attribute.BOOL:
		return appendUvarint(appendTag(b, 2, protowire.VarintType), protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		return appendUvarint(appendTag(b, 3, protowire.VarintType), uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return binary.LittleEndian.AppendUint64(appendTag(b, 4, protowire.Fixed64Type), math.Float64bits(v.AsFloat64()))
	case attribute.BYTESLICE:
		return protowire.AppendBytes(appendTag(b, 7, protowire.BytesType), v.AsByteSlice())
	case attribute.MAP:
		b, m := openMessage(b, 6)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, 1, kv) // KeyValueList.values
		}
		return closeMessage(b, m)
	}
	// The slices: an ArrayValue (field 5) of AnyValues (its field 1).
	start := len(b)
	b, m := openMessage(b, 5)
	switch v.Type() {
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.SLICE:
		b = appendArray(b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	default: // a type this code does not know: what the stock transform writes
		return appendOneofString(b[:start], 1, "INVALID")
	}
	return closeMessage(b, m)
}

// appendArray writes the values of xs, each an AnyValue in field 1 of an ArrayValue.
func appendArray[T any](b []byte, xs []T, value func(T) attribute.Value) []byte {
	for _, x := range xs {
		b = appendAnyValueIn(b, 1, value(x))
	}
	return b
}

func appendAnyValueIn(b []byte, field protowire.Number, v attribute.Value) []byte {
	b, m := openMessage(b, field)
	return closeMessage(appendAnyValue(b, v), m)
}

// appendOneofString writes s in field even when empty, as a oneof member is.
func appendOneofString(b []byte, field protowire.Number, s string) []byte {
	s = validUTF8(s)
	b = appendTag(b, field, protowire.BytesType)
	if len(s) < 0x80 {
		b = append(b, byte(len(s)))
	} else {
		b = protowire.AppendVarint(b, uint64(len(s)))
	}
	return append(b, s...)
}

// validUTF8 returns s with each invalid byte sequence replaced by U+FFFD. Protobuf strings
// must be UTF-8: the stock exporter fails a whole batch over one bad string (a client's
// User-Agent, say), and a collector refuses a request that carries one.
func validUTF8(s string) string {
	if ascii(s) || utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// ascii reports whether s is all ASCII, eight bytes at a time and the tail in one overlapping
// word: nearly every string a span carries (names, keys, IDs, routes) is ASCII, and a
// traced checkout writes some 400 of them. utf8.ValidString alone, which goes byte by byte
// from the last whole word on, was 7% of what tracing cost the monolith's checkout
// (BenchmarkCheckoutTracing/tracing=on-all under cachegrind).
func ascii(s string) bool {
	const high = 0x8080808080808080
	if len(s) < 8 {
		var w uint64
		for i := range len(s) {
			w |= uint64(s[i])
		}
		return w&0x80 == 0
	}
	var w uint64
	for i := 0; i+8 <= len(s); i += 8 {
		w |= word(s[i : i+8])
	}
	w |= word(s[len(s)-8:])
	return w&high == 0
}

// word is the first eight bytes of s in one load (the compiler merges the shifts).
func word(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendOneofString(b, field, s)
}

// appendBytes writes v, a trace or span ID (never longer than 127 bytes).
func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return append(append(b, byte(field)<<3|byte(protowire.BytesType), byte(len(v))), v...)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendUvarint(appendTag(b, field, protowire.VarintType), v)
}

func appendFixed64(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return binary.LittleEndian.AppendUint64(appendTag(b, field, protowire.Fixed64Type), v)
}

// appendTag writes the key of field, below 16 (one byte) but for a span's flags.
func appendTag(b []byte, field protowire.Number, t protowire.Type) []byte {
	return append(b, byte(field)<<3|byte(t))
}

// appendFlags writes a span's or a link's flags: field 16 of Span, 6 of Link, fixed32.
func appendFlags(b []byte, field protowire.Number, flags uint32) []byte {
	if field >= 16 {
		b = protowire.AppendTag(b, field, protowire.Fixed32Type)
	} else {
		b = appendTag(b, field, protowire.Fixed32Type)
	}
	return binary.LittleEndian.AppendUint32(b, flags)
}

// appendUvarint writes v; below 128 it is one byte, and inlined.
func appendUvarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// openMessage writes the key of a message in field and reserves two bytes for its length,
// which suits 128 bytes to 16 KiB (a span); closeMessage writes the length once the message
// is written after it, at m, moving the message when the length needs another size.
func openMessage(b []byte, field protowire.Number) (_ []byte, m int) {
	b = append(appendTag(b, field, protowire.BytesType), 0, 0)
	return b, len(b)
}

func closeMessage(b []byte, m int) []byte {
	n := len(b) - m
	if n >= 1<<7 && n < 1<<14 {
		b[m-2], b[m-1] = byte(n)|0x80, byte(n>>7)
		return b
	}
	var buf [binary.MaxVarintLen64]byte
	l := protowire.AppendVarint(buf[:0], uint64(n))
	if len(l) == 1 {
		copy(b[m-1:], b[m:])
		b = b[:len(b)-1]
	} else {
		b = append(b, l[2:]...) // room to move the message right
		copy(b[m-2+len(l):], b[m:m+n])
	}
	copy(b[m-2:], l)
	return b
}
