package tracecollect

import (
	"bytes"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TraceID is a trace's 16 bytes.
type TraceID [16]byte

// DefaultMaxSpans bounds the store in spans when Config.MaxSpans is 0. The shop's spans take
// about 1.8 KB each in memory (see spanBytes), so DefaultMaxBytes binds first for them, at
// about 55,000 spans.
const DefaultMaxSpans = 100_000

// DefaultMaxBytes bounds the store in bytes (spanBytes' estimate) when Config.MaxBytes is 0.
// The collector's memory limit in the stack is 256 MiB, with GOMEMLIMIT at 192 MiB (see
// platform/topology): 96 MiB of spans, and a request being decoded (up to MaxDecodedBytes,
// 80 MiB) leave room for the runtime and the query API's answers.
const DefaultMaxBytes = 96 << 20

// Store keeps the most recent traces in memory, at most maxSpans spans and maxBytes bytes in
// all: when a new span would exceed either bound, the traces first seen longest ago are
// dropped whole. Safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	maxSpans int
	maxBytes int
	traces   map[TraceID]*storedTrace
	order    []TraceID // first-seen order, oldest first (with holes trimmed lazily)
	spans    int
	bytes    int   // spanBytes of every span kept, and what their traces were charged for resources and scopes
	evicted  int64 // traces dropped to stay within the bounds
	received int64 // spans received
}

// storedTrace is one trace's spans, each with the resource and scope it came with.
type storedTrace struct {
	id    TraceID
	spans []storedSpan
	start time.Time // earliest span start
	end   time.Time // latest span end
	bytes int       // what the trace is charged in Store.bytes

	// The resource and scope the trace was last charged for: a batch's spans share them,
	// and a trace pays for each once per run of its spans that hold it. A resource is in
	// memory as long as one trace holds it, so it is charged to every trace that does.
	lastResource *resourcepb.Resource
	lastScope    *commonpb.InstrumentationScope
}

type storedSpan struct {
	resource *resourcepb.Resource
	resURL   string
	scope    *commonpb.InstrumentationScope
	scopeURL string
	span     *tracepb.Span
	service  string
}

// NewStore returns an empty store holding at most maxSpans spans (0: DefaultMaxSpans) and
// maxBytes bytes (0: DefaultMaxBytes).
func NewStore(maxSpans, maxBytes int) *Store {
	if maxSpans <= 0 {
		maxSpans = DefaultMaxSpans
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Store{maxSpans: maxSpans, maxBytes: maxBytes, traces: map[TraceID]*storedTrace{}}
}

// Add stores every span of rs. Spans without a valid trace ID are skipped; the count of
// those is returned (the OTLP partial-success answer).
func (s *Store) Add(rs []*tracepb.ResourceSpans) (rejected int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		service := ServiceName(r.GetResource())
		resBytes := -1 // measured when first charged
		for _, ss := range r.GetScopeSpans() {
			scopeBytes := -1
			for _, sp := range ss.GetSpans() {
				if len(sp.GetTraceId()) != 16 || len(sp.GetSpanId()) != 8 {
					rejected++
					continue
				}
				var id TraceID
				copy(id[:], sp.GetTraceId())
				t := s.traces[id]
				if t == nil {
					t = &storedTrace{id: id}
					s.traces[id] = t
					s.order = append(s.order, id)
				}
				t.spans = append(t.spans, storedSpan{resource: r.GetResource(), resURL: r.GetSchemaUrl(),
					scope: ss.GetScope(), scopeURL: ss.GetSchemaUrl(), span: sp, service: service})
				start, end := time.Unix(0, int64(sp.GetStartTimeUnixNano())), time.Unix(0, int64(sp.GetEndTimeUnixNano()))
				if t.start.IsZero() || start.Before(t.start) {
					t.start = start
				}
				if end.After(t.end) {
					t.end = end
				}
				n := spanBytes(sp)
				if res := r.GetResource(); res != nil && t.lastResource != res {
					if resBytes < 0 {
						resBytes = proto.Size(res) + messageBytes*(1+len(res.GetAttributes())) + valuesBytes(res.GetAttributes())
					}
					n += resBytes
					t.lastResource = res
				}
				if scope := ss.GetScope(); scope != nil && t.lastScope != scope {
					if scopeBytes < 0 {
						scopeBytes = proto.Size(scope) + messageBytes*(1+len(scope.GetAttributes())) + valuesBytes(scope.GetAttributes())
					}
					n += scopeBytes
					t.lastScope = scope
				}
				t.bytes += n
				s.bytes += n
				s.spans++
				s.received++
			}
		}
	}
	s.evict()
	return rejected
}

// What a decoded span costs in memory beyond its encoded bytes (proto.Size), measured with
// runtime.MemStats over 2,000 spans decoded from protobuf and stored, for 0 to 30 string
// attributes of 8 to 10,000 bytes: about 550 bytes for a span (its struct, its IDs, its
// place in the store), and about 175 for each attribute (a KeyValue, an AnyValue and its
// oneof wrapper, its key). A real monolith checkout's spans (254 encoded bytes on average) take
// 1.8 KB each. messageBytes is charged for every nested message of that kind: attributes,
// values inside arrays and key-value lists, events, links.
const (
	spanOverhead = 560
	messageBytes = 176
)

// spanBytes estimates the memory sp takes once decoded and stored.
func spanBytes(sp *tracepb.Span) int {
	n := proto.Size(sp) + spanOverhead + messageBytes*len(sp.GetAttributes()) + valuesBytes(sp.GetAttributes())
	for _, e := range sp.GetEvents() {
		n += messageBytes*(1+len(e.GetAttributes())) + valuesBytes(e.GetAttributes())
	}
	for _, l := range sp.GetLinks() {
		n += messageBytes*(1+len(l.GetAttributes())) + valuesBytes(l.GetAttributes())
	}
	return n
}

// valuesBytes is messageBytes for every value nested in kvs' arrays and key-value lists.
func valuesBytes(kvs []*commonpb.KeyValue) int {
	n := 0
	for _, kv := range kvs {
		n += nestedBytes(kv.GetValue())
	}
	return n
}

func nestedBytes(v *commonpb.AnyValue) int {
	n := 0
	switch v := v.GetValue().(type) {
	case *commonpb.AnyValue_ArrayValue:
		for _, e := range v.ArrayValue.GetValues() {
			n += messageBytes + nestedBytes(e)
		}
	case *commonpb.AnyValue_KvlistValue:
		n += messageBytes*len(v.KvlistValue.GetValues()) + valuesBytes(v.KvlistValue.GetValues())
	}
	return n
}

// evict drops the oldest traces until the store is within its bounds. The newest trace is
// never dropped, even alone over a bound: a query for it right after must find it.
func (s *Store) evict() {
	for (s.spans > s.maxSpans || s.bytes > s.maxBytes) && len(s.order) > 1 {
		id := s.order[0]
		s.order = s.order[1:]
		if t := s.traces[id]; t != nil {
			s.spans -= len(t.spans)
			s.bytes -= t.bytes
			delete(s.traces, id)
			s.evicted++
		}
	}
	if cap(s.order) > 4*len(s.order)+1024 { // let the dropped prefix's memory go
		s.order = slices.Clone(s.order)
	}
}

// Stats are the store's counters.
type Stats struct {
	Traces   int   `json:"traces"`
	Spans    int   `json:"spans"`
	MaxSpans int   `json:"max_spans"`
	Bytes    int   `json:"bytes"` // the estimate of spanBytes
	MaxBytes int   `json:"max_bytes"`
	Received int64 `json:"spans_received"`
	Evicted  int64 `json:"traces_evicted"`
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Traces: len(s.traces), Spans: s.spans, MaxSpans: s.maxSpans, Bytes: s.bytes, MaxBytes: s.maxBytes,
		Received: s.received, Evicted: s.evicted}
}

// Trace returns the trace's spans as OTLP data, grouped by resource and scope, or nil.
func (s *Store) Trace(id TraceID) *tracepb.TracesData {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.traces[id]
	if t == nil {
		return nil
	}
	return tracesData(t.spans)
}

// Query selects traces as Jaeger's FindTraces does: a trace matches when one of its spans
// matches every field set.
type Query struct {
	ServiceName   string
	OperationName string // a span name
	// Attributes are tags the span must hold, each compared as a string, as Jaeger's memory
	// storage compares them (see matchAttribute): in the span's attributes, its resource's,
	// its scope's, its events' or its links'; "error", "span.kind", "span.status",
	// "scope.name", "scope.version" and "resource.<key>" ask about those fields instead.
	Attributes  map[string]string
	StartMin    time.Time     // the span started at or after
	StartMax    time.Time     // ... at or before
	DurationMin time.Duration // the span lasted at least
	DurationMax time.Duration // ... at most
	// NumTraces is how many traces to return at most, newest first (Jaeger's search depth,
	// sent as query.search_depth); 0 means 20.
	NumTraces int
}

// Find returns the traces that match q, newest (by start) first.
func (s *Store) Find(q Query) []*tracepb.TracesData {
	if q.NumTraces <= 0 {
		q.NumTraces = 20
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []*storedTrace
	for _, t := range s.traces {
		if slices.ContainsFunc(t.spans, q.matches) {
			hits = append(hits, t)
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if !hits[i].start.Equal(hits[j].start) {
			return hits[i].start.After(hits[j].start)
		}
		return bytes.Compare(hits[i].id[:], hits[j].id[:]) < 0
	})
	if len(hits) > q.NumTraces {
		hits = hits[:q.NumTraces]
	}
	out := make([]*tracepb.TracesData, len(hits))
	for i, t := range hits {
		out[i] = tracesData(t.spans)
	}
	return out
}

func (q Query) matches(sp storedSpan) bool {
	if q.ServiceName != "" && sp.service != q.ServiceName {
		return false
	}
	if q.OperationName != "" && sp.span.GetName() != q.OperationName {
		return false
	}
	start := time.Unix(0, int64(sp.span.GetStartTimeUnixNano()))
	if !q.StartMin.IsZero() && start.Before(q.StartMin) {
		return false
	}
	if !q.StartMax.IsZero() && start.After(q.StartMax) {
		return false
	}
	d := time.Duration(sp.span.GetEndTimeUnixNano() - sp.span.GetStartTimeUnixNano())
	if q.DurationMin > 0 && d < q.DurationMin {
		return false
	}
	if q.DurationMax > 0 && d > q.DurationMax {
		return false
	}
	for k, v := range q.Attributes {
		if !matchAttribute(sp, k, v) {
			return false
		}
	}
	return true
}

// Services lists the service names of every stored span, sorted.
func (s *Store) Services() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, t := range s.traces {
		for _, sp := range t.spans {
			seen[sp.service] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Operation is a span name and kind seen for a service.
type Operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

// Operations lists the span names of service (all services if ""), optionally of one kind
// ("server", "client", "producer", "consumer", "internal"), sorted.
func (s *Store) Operations(service, kind string) []Operation {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[Operation]bool{}
	for _, t := range s.traces {
		for _, sp := range t.spans {
			if service != "" && sp.service != service {
				continue
			}
			op := Operation{Name: sp.span.GetName(), SpanKind: KindName(sp.span.GetKind())}
			if kind != "" && op.SpanKind != kind {
				continue
			}
			seen[op] = true
		}
	}
	out := make([]Operation, 0, len(seen))
	for op := range seen {
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].SpanKind < out[j].SpanKind
	})
	return out
}

// KindName is Jaeger's lower-case name of a span kind ("" when unspecified).
func KindName(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "internal"
	}
	return ""
}

// tracesData groups spans by resource and scope, in the order they arrived.
func tracesData(spans []storedSpan) *tracepb.TracesData {
	td := &tracepb.TracesData{}
	byRes := map[*resourcepb.Resource]*tracepb.ResourceSpans{}
	byScope := map[*tracepb.ResourceSpans]map[*commonpb.InstrumentationScope]*tracepb.ScopeSpans{}
	for _, sp := range spans {
		rs := byRes[sp.resource]
		if rs == nil {
			rs = &tracepb.ResourceSpans{Resource: sp.resource, SchemaUrl: sp.resURL}
			byRes[sp.resource] = rs
			byScope[rs] = map[*commonpb.InstrumentationScope]*tracepb.ScopeSpans{}
			td.ResourceSpans = append(td.ResourceSpans, rs)
		}
		ss := byScope[rs][sp.scope]
		if ss == nil {
			ss = &tracepb.ScopeSpans{Scope: sp.scope, SchemaUrl: sp.scopeURL}
			byScope[rs][sp.scope] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, sp.span)
	}
	return td
}

// ServiceName returns the service.name attribute of r ("unknown_service" without one, as
// OpenTelemetry names a service nobody named).
func ServiceName(r *resourcepb.Resource) string {
	for _, kv := range r.GetAttributes() {
		if kv.GetKey() == "service.name" {
			if v := kv.GetValue().GetStringValue(); v != "" {
				return v
			}
		}
	}
	return "unknown_service"
}

// Summary describes a stored trace for a listing.
type Summary struct {
	ID       string        `json:"trace_id"`
	Service  string        `json:"service"` // the root span's service
	Name     string        `json:"name"`    // the root span's name
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"` // from the first span's start to the last span's end
	Spans    int           `json:"spans"`
}

// Recent lists the n traces that started last, newest first.
func (s *Store) Recent(n int) []Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*storedTrace, 0, len(s.traces))
	for _, t := range s.traces {
		all = append(all, t)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].start.After(all[j].start) })
	out := make([]Summary, 0, min(n, len(all)))
	for _, t := range all[:min(n, len(all))] {
		sum := Summary{ID: hex.EncodeToString(t.id[:]), Start: t.start, Duration: t.end.Sub(t.start), Spans: len(t.spans)}
		// The root: a span without a parent, the earliest if several.
		var root *storedSpan
		for i := range t.spans {
			sp := &t.spans[i]
			if len(sp.span.GetParentSpanId()) == 0 && (root == nil || sp.span.GetStartTimeUnixNano() < root.span.GetStartTimeUnixNano()) {
				root = sp
			}
		}
		if root != nil {
			sum.Service, sum.Name = root.service, root.span.GetName()
		}
		out = append(out, sum)
	}
	return out
}

// DependencyLink counts the calls from one service to another: the spans of Child whose
// parent span is one of Parent's.
type DependencyLink struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}

// Dependencies counts, over the traces that started in [start, end], every span whose
// parent span is in its trace, by the parent's service and its own, as Jaeger's memory
// storage does (a service that calls itself counts too). Sorted by parent, then child.
func (s *Store) Dependencies(start, end time.Time) []DependencyLink {
	type edge struct{ parent, child string }
	counts := map[edge]uint64{}
	s.mu.Lock()
	for _, t := range s.traces {
		if t.start.Before(start) || t.start.After(end) {
			continue
		}
		service := make(map[[8]byte]string, len(t.spans))
		for _, sp := range t.spans {
			service[[8]byte(sp.span.GetSpanId())] = sp.service
		}
		for _, sp := range t.spans {
			if p := sp.span.GetParentSpanId(); len(p) == 8 {
				if ps, ok := service[[8]byte(p)]; ok {
					counts[edge{ps, sp.service}]++
				}
			}
		}
	}
	s.mu.Unlock()
	out := make([]DependencyLink, 0, len(counts))
	for e, n := range counts {
		out = append(out, DependencyLink{Parent: e.parent, Child: e.child, CallCount: n})
	}
	slices.SortFunc(out, func(a, b DependencyLink) int {
		if a.Parent != b.Parent {
			return strings.Compare(a.Parent, b.Parent)
		}
		return strings.Compare(a.Child, b.Child)
	})
	return out
}
