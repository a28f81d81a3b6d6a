// Package tracecompare puts traces of the same operation in the two architectures side by
// side and says where the extra time goes: for each trace its root latency, its critical
// path and what that is made of, and its shape (spans, services, remote hops, depth,
// fan-out); for sets of traces (the last N checkouts on each edge), the medians. It renders
// a terminal table, JSON, and a self-contained HTML page with the two waterfalls on one time
// scale. `mitosis traces compare` (Command) reads the traces from a collector's /api/v3 or
// from files.
//
// The time of a critical path is split into:
//
//	domain     time in the shop's own code: the own time (not waiting on a child) of SERVER,
//	           INTERNAL and CONSUMER spans, the edge and gRPC handlers included
//	store      time in key-value store operations (spans with db.system.name)
//	transport  time in a gRPC CLIENT span not covered by its SERVER span: the wire,
//	           serialization and scheduling on both sides; a client span without its server
//	           span counts whole
//	queueing   time handing an event to the broker (PRODUCER spans, until JetStream acked)
//	           and, on the end-to-end path, the wait between a publish and its delivery
//
// The request's critical path ends with the root span (what the caller waits for); the
// end-to-end path follows the events to the last consumer. Event lag is how long after the
// response the last consumer finished.
package tracecompare

import (
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// Span is one span of a trace, linked to its children.
type Span struct {
	ID       string            `json:"span_id"`
	ParentID string            `json:"parent_span_id,omitempty"`
	Name     string            `json:"name"`
	Kind     string            `json:"kind"` // server, client, producer, consumer, internal
	Service  string            `json:"service"`
	Start    time.Time         `json:"start"`
	End      time.Time         `json:"end"`
	Error    bool              `json:"error,omitempty"`
	Attrs    map[string]string `json:"attributes,omitempty"`

	Parent   *Span   `json:"-"`
	Children []*Span `json:"-"`     // by start time
	Depth    int     `json:"depth"` // the root is 1
}

// Duration is the span's own duration.
func (s *Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Trace is one trace as a tree.
type Trace struct {
	ID      string  `json:"trace_id"`
	Root    *Span   `json:"-"`
	Spans   []*Span `json:"-"`                 // depth first, children by start
	Orphans int     `json:"orphans,omitempty"` // spans whose parent is missing, and extra roots
}

// Attribute keys the analysis reads.
const (
	attrDBSystem      = "db.system.name"
	attrRPCSystem     = "rpc.system.name"
	attrRPCMethod     = "rpc.method"
	AttrConsumerGroup = "messaging.consumer.group.name" // a consumer span's durable consumer
	attrArchitect     = "mitosis.architecture"
	rpcSystemGRPC     = "grpc"
	rpcSystemLocal    = "inprocess"
)

// FromOTLP builds the traces in td, one per trace ID, newest first.
func FromOTLP(td *tracepb.TracesData) ([]*Trace, error) {
	var out []*Trace
	for _, one := range tracecollect.SplitTraces(td) {
		t, err := build(one)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func build(td *tracepb.TracesData) (*Trace, error) {
	var spans []*Span
	var traceID string
	for _, rs := range td.GetResourceSpans() {
		service := tracecollect.ServiceName(rs.GetResource())
		resAttrs := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := &Span{
					ID:      hex.EncodeToString(sp.GetSpanId()),
					Name:    sp.GetName(),
					Kind:    tracecollect.KindName(sp.GetKind()),
					Service: service,
					Start:   time.Unix(0, int64(sp.GetStartTimeUnixNano())),
					End:     time.Unix(0, int64(sp.GetEndTimeUnixNano())),
					Error:   sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Attrs:   attrs(sp.GetAttributes()),
				}
				if a := resAttrs[attrArchitect]; a != "" {
					s.Attrs[attrArchitect] = a
				}
				if len(sp.GetParentSpanId()) > 0 {
					s.ParentID = hex.EncodeToString(sp.GetParentSpanId())
				}
				if s.End.Before(s.Start) {
					s.End = s.Start
				}
				traceID = hex.EncodeToString(sp.GetTraceId())
				spans = append(spans, s)
			}
		}
	}
	if len(spans) == 0 {
		return nil, fmt.Errorf("a trace without spans")
	}
	t := &Trace{ID: traceID}
	byID := make(map[string]*Span, len(spans))
	for _, s := range spans {
		byID[s.ID] = s
	}
	var roots []*Span
	for _, s := range spans {
		if p := byID[s.ParentID]; p != nil && s.ParentID != "" {
			s.Parent = p
			p.Children = append(p.Children, s)
		} else {
			roots = append(roots, s)
		}
	}
	// The root is the earliest parentless span: the request at the edge. Any other is an
	// orphan (its parent was not exported, or was dropped): it hangs under the root so that
	// it is seen, and is counted.
	sort.SliceStable(roots, func(i, j int) bool { return roots[i].Start.Before(roots[j].Start) })
	t.Root = roots[0]
	for _, o := range roots[1:] {
		t.Orphans++
		o.Parent = t.Root
		t.Root.Children = append(t.Root.Children, o)
	}
	var walk func(s *Span, depth int)
	walk = func(s *Span, depth int) {
		s.Depth = depth
		t.Spans = append(t.Spans, s)
		sort.SliceStable(s.Children, func(i, j int) bool { return s.Children[i].Start.Before(s.Children[j].Start) })
		for _, c := range s.Children {
			walk(c, depth+1)
		}
	}
	walk(t.Root, 1)
	return t, nil
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = valueString(kv.GetValue())
	}
	return m
}

func valueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	}
	return ""
}

// Category is where a stretch of a critical path goes.
type Category string

// Categories, in the order reports list them.
const (
	Domain    Category = "domain"
	Store     Category = "store"
	Transport Category = "transport"
	Queueing  Category = "queueing"
)

// Categories lists every category in report order.
func Categories() []Category { return []Category{Domain, Store, Transport, Queueing} }

// category is where s's own time goes.
func (s *Span) category() Category {
	switch {
	case s.Attrs[attrDBSystem] != "":
		return Store
	case s.Kind == "client":
		return Transport
	case s.Kind == "producer":
		return Queueing
	}
	return Domain
}

// isRemoteCall reports whether s is a call to another process (gRPC), and isLocalCall a call
// from one context to another in the same process (the monolith's shop/traced spans).
func (s *Span) isRemoteCall() bool {
	return s.Kind == "client" && (s.Attrs[attrRPCSystem] == rpcSystemGRPC || s.Attrs["rpc.system"] == rpcSystemGRPC)
}

func (s *Span) isLocalCall() bool {
	return s.Kind == "internal" && s.Attrs[attrRPCSystem] == rpcSystemLocal
}

// Label is how reports name a span: its name, and for an event consumer its consumer.
func (s *Span) Label() string {
	if g := s.Attrs[AttrConsumerGroup]; g != "" && s.Kind == "consumer" {
		return s.Name + " [" + g + "]"
	}
	return s.Name
}
