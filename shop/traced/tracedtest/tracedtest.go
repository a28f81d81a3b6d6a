// Package tracedtest is an in-process span recorder built on the OpenTelemetry API alone, for
// the tests of the shop module (which depends on the API, not on the SDK). It records what a
// test asserts on: names, kinds, parents, attributes, status and times. It samples every span
// and propagates nothing by itself; it is not an SDK.
package tracedtest

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// Span is a recorded span.
type Span struct {
	Name        string
	Kind        trace.SpanKind
	SpanContext trace.SpanContext
	Parent      trace.SpanContext // invalid for a root
	Attributes  []attribute.KeyValue
	Status      codes.Code
	StatusMsg   string
	Start, End  time.Time
}

// Attr returns the value of the attribute key, or "" if the span has none.
func (s Span) Attr(key attribute.Key) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

// Recorder is a trace.TracerProvider that keeps every span ended through it.
type Recorder struct {
	embedded.TracerProvider

	mu    sync.Mutex
	ended []Span
}

var _ trace.TracerProvider = (*Recorder)(nil)

// New returns an empty recorder.
func New() *Recorder { return &Recorder{} }

// Tracer returns a tracer whose spans r records.
func (r *Recorder) Tracer(string, ...trace.TracerOption) trace.Tracer { return tracer{r: r} }

// Ended returns the spans ended so far, in the order they ended.
func (r *Recorder) Ended() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ended)
}

// Named returns the ended spans called name.
func (r *Recorder) Named(name string) []Span {
	var out []Span
	for _, s := range r.Ended() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Reset forgets every span recorded so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = nil
}

type tracer struct {
	embedded.Tracer
	r *Recorder
}

func (t tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	parent := trace.SpanContextFromContext(ctx)
	if cfg.NewRoot() {
		parent = trace.SpanContext{}
	}
	tid := parent.TraceID()
	if !parent.IsValid() {
		tid = randomTraceID()
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: randomSpanID(), TraceFlags: trace.FlagsSampled})
	start := cfg.Timestamp()
	if start.IsZero() {
		start = time.Now()
	}
	kind := cfg.SpanKind()
	if kind == trace.SpanKindUnspecified {
		kind = trace.SpanKindInternal
	}
	s := &span{r: t.r, rec: Span{Name: name, Kind: kind, SpanContext: sc, Parent: parent,
		Attributes: slices.Clone(cfg.Attributes()), Start: start}}
	return trace.ContextWithSpan(ctx, s), s
}

type span struct {
	embedded.Span
	r *Recorder

	mu    sync.Mutex
	rec   Span
	ended bool
}

func (s *span) End(opts ...trace.SpanEndOption) {
	cfg := trace.NewSpanEndConfig(opts...)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.rec.End = cfg.Timestamp()
	if s.rec.End.IsZero() {
		s.rec.End = time.Now()
	}
	rec := s.rec
	s.mu.Unlock()
	s.r.mu.Lock()
	s.r.ended = append(s.r.ended, rec)
	s.r.mu.Unlock()
}

func (s *span) AddEvent(string, ...trace.EventOption) {}
func (s *span) AddLink(trace.Link)                    {}
func (s *span) RecordError(error, ...trace.EventOption) {
}

func (s *span) IsRecording() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended
}

func (s *span) SpanContext() trace.SpanContext { return s.rec.SpanContext }

func (s *span) SetStatus(code codes.Code, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.Status, s.rec.StatusMsg = code, description
}

func (s *span) SetName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.Name = name
}

func (s *span) SetAttributes(kv ...attribute.KeyValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.Attributes = append(s.rec.Attributes, kv...)
}

func (s *span) TracerProvider() trace.TracerProvider { return s.r }

func randomTraceID() trace.TraceID {
	var id trace.TraceID
	for id == (trace.TraceID{}) {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
		}
	}
	return id
}

func randomSpanID() trace.SpanID {
	var id trace.SpanID
	for id == (trace.SpanID{}) {
		a := rand.Uint64()
		for i := range 8 {
			id[i] = byte(a >> (8 * i))
		}
	}
	return id
}
