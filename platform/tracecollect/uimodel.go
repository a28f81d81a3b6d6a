package tracecollect

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// The Jaeger UI's JSON model (jaegertracing/jaeger internal/uimodel: model.go, and
// converter/v1/json/from_domain.go for how it is filled), from OTLP as Jaeger v2's query
// service makes it: OpenTelemetry's translator to Jaeger's model
// (opentelemetry-collector-contrib pkg/translator/jaeger, traces_to_jaegerproto.go), after
// the query service's adjuster that sorts every attribute list by key.

// uiTrace is a trace: its spans, and the processes (services and their resource
// attributes) they name by key, p1, p2...
type uiTrace struct {
	TraceID   string               `json:"traceID"`
	Spans     []uiSpan             `json:"spans"`
	Processes map[string]uiProcess `json:"processes"`
	Warnings  []string             `json:"warnings"`
}

type uiSpan struct {
	TraceID       string        `json:"traceID"`
	SpanID        string        `json:"spanID"`
	OperationName string        `json:"operationName"`
	References    []uiReference `json:"references"` // the parent first (CHILD_OF), then the links
	StartTime     uint64        `json:"startTime"`  // microseconds since the Unix epoch
	Duration      uint64        `json:"duration"`   // microseconds
	Tags          []uiKeyValue  `json:"tags"`
	Logs          []uiLog       `json:"logs"` // the span's events
	ProcessID     string        `json:"processID"`
	Warnings      []string      `json:"warnings"`
}

type uiReference struct {
	RefType string `json:"refType"` // CHILD_OF or FOLLOWS_FROM
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type uiProcess struct {
	ServiceName string       `json:"serviceName"`
	Tags        []uiKeyValue `json:"tags"`
}

type uiLog struct {
	Timestamp uint64       `json:"timestamp"` // microseconds since the Unix epoch
	Fields    []uiKeyValue `json:"fields"`
}

// uiKeyValue is a tag: type string, bool, int64, float64 or binary (base64), and the value
// in JSON's type for it. An integer beyond JavaScript's exact range is written as a string.
type uiKeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type,omitempty"`
	Value any    `json:"value"`
}

// The tags OpenTelemetry's translator makes of a span's fields, and the link attribute
// that says a link is a parent.
const (
	tagScopeName     = "otel.scope.name"
	tagScopeVersion  = "otel.scope.version"
	tagSpanKind      = "span.kind"
	tagStatusCode    = "otel.status_code"
	tagError         = "error"
	tagStatusMessage = "otel.status_description"
	tagTraceState    = "w3c.tracestate"
	logEventName     = "event"
	linkRefType      = "opentracing.ref_type"
)

const jsMaxSafeInteger = 1<<53 - 1

// uiTraceOf converts one trace (a TracesData of one trace ID) to the UI's model. A span
// whose parent is not in the trace says so in its warnings, as Jaeger's adjuster does.
func uiTraceOf(td *tracepb.TracesData) uiTrace {
	spans := allSpans(td)
	t := uiTrace{Spans: make([]uiSpan, 0, len(spans)), Processes: map[string]uiProcess{}}
	ids := make(map[string]bool, len(spans))
	for _, sp := range spans {
		ids[string(sp.span.GetSpanId())] = true
	}
	keyOf := map[*tracepb.ResourceSpans]string{} // resources seen
	keyByProcess := map[string]string{}          // a process's JSON → its key: equal processes share one, as in Jaeger
	for _, sp := range spans {
		key, ok := keyOf[sp.resource]
		if !ok {
			p := uiProcessOf(sp.resource.GetResource())
			b, _ := json.Marshal(p) // tags of JSON-safe values only (uiKeyValueOf)
			if key, ok = keyByProcess[string(b)]; !ok {
				key = "p" + strconv.Itoa(len(keyByProcess)+1)
				keyByProcess[string(b)] = key
				t.Processes[key] = p
			}
			keyOf[sp.resource] = key
		}
		s := uiSpanOf(sp, key)
		if p := sp.span.GetParentSpanId(); len(p) > 0 && !ids[string(p)] {
			s.Warnings = append(s.Warnings, fmt.Sprintf("parent span ID=%s is not in the trace", hex.EncodeToString(p)))
		}
		if t.TraceID == "" {
			t.TraceID = s.TraceID
		}
		t.Spans = append(t.Spans, s)
	}
	return t
}

// jaegerTraceID writes a trace ID as Jaeger's model does: 32 hex digits, or 16 when its
// high half is zero.
func jaegerTraceID(id []byte) string {
	if len(id) == 16 && !slices.ContainsFunc(id[:8], func(b byte) bool { return b != 0 }) {
		return hex.EncodeToString(id[8:])
	}
	return hex.EncodeToString(id)
}

func uiSpanOf(sp spanOf, processID string) uiSpan {
	span := sp.span
	traceID := jaegerTraceID(span.GetTraceId())
	start, end := span.GetStartTimeUnixNano(), span.GetEndTimeUnixNano()
	s := uiSpan{TraceID: traceID, SpanID: hex.EncodeToString(span.GetSpanId()), OperationName: span.GetName(),
		References: []uiReference{}, StartTime: start / 1000, Tags: uiSpanTags(sp), Logs: []uiLog{}, ProcessID: processID}
	if end > start {
		s.Duration = (end - start) / 1000
	}
	parent := hex.EncodeToString(span.GetParentSpanId())
	if parent != "" {
		s.References = append(s.References, uiReference{RefType: "CHILD_OF", TraceID: traceID, SpanID: parent})
	}
	for _, l := range span.GetLinks() {
		ref := uiReference{RefType: "FOLLOWS_FROM", TraceID: jaegerTraceID(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())}
		for _, kv := range l.GetAttributes() {
			if kv.GetKey() == linkRefType && kv.GetValue().GetStringValue() == "child_of" {
				ref.RefType = "CHILD_OF"
			}
		}
		if parent != "" && ref.TraceID == traceID && ref.SpanID == parent { // the link says what kind of parent it is
			s.References[0].RefType = ref.RefType
			continue
		}
		s.References = append(s.References, ref)
	}
	for _, e := range span.GetEvents() {
		l := uiLog{Timestamp: e.GetTimeUnixNano() / 1000, Fields: []uiKeyValue{}}
		if e.GetName() != "" && !slices.ContainsFunc(e.GetAttributes(), func(kv *commonpb.KeyValue) bool { return kv.GetKey() == logEventName }) {
			l.Fields = append(l.Fields, uiKeyValue{Key: logEventName, Type: "string", Value: e.GetName()})
		}
		l.Fields = appendTags(l.Fields, e.GetAttributes())
		s.Logs = append(s.Logs, l)
	}
	return s
}

// uiSpanTags are a span's tags in the translator's order: its scope, its attributes, then
// its kind, status and trace state.
func uiSpanTags(sp spanOf) []uiKeyValue {
	span := sp.span
	tags := []uiKeyValue{}
	if name := sp.scope.GetScope().GetName(); name != "" {
		tags = append(tags, uiKeyValue{Key: tagScopeName, Type: "string", Value: name})
	}
	if version := sp.scope.GetScope().GetVersion(); version != "" {
		tags = append(tags, uiKeyValue{Key: tagScopeVersion, Type: "string", Value: version})
	}
	tags = appendTags(tags, span.GetAttributes())
	if k := KindName(span.GetKind()); k != "" {
		tags = append(tags, uiKeyValue{Key: tagSpanKind, Type: "string", Value: k})
	}
	switch span.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_OK:
		tags = append(tags, uiKeyValue{Key: tagStatusCode, Type: "string", Value: "OK"})
	case tracepb.Status_STATUS_CODE_ERROR:
		tags = append(tags, uiKeyValue{Key: tagStatusCode, Type: "string", Value: "ERROR"},
			uiKeyValue{Key: tagError, Type: "bool", Value: true})
	}
	if m := span.GetStatus().GetMessage(); m != "" {
		tags = append(tags, uiKeyValue{Key: tagStatusMessage, Type: "string", Value: m})
	}
	if ts := span.GetTraceState(); ts != "" {
		tags = append(tags, uiKeyValue{Key: tagTraceState, Type: "string", Value: ts})
	}
	return tags
}

func uiProcessOf(r *resourcepb.Resource) uiProcess {
	p := uiProcess{ServiceName: ServiceName(r), Tags: []uiKeyValue{}}
	for _, kv := range sortedAttributes(r.GetAttributes()) {
		if kv.GetKey() != "service.name" {
			p.Tags = append(p.Tags, uiKeyValueOf(kv.GetKey(), kv.GetValue()))
		}
	}
	return p
}

// appendTags appends kvs, sorted by key, to tags.
func appendTags(tags []uiKeyValue, kvs []*commonpb.KeyValue) []uiKeyValue {
	for _, kv := range sortedAttributes(kvs) {
		tags = append(tags, uiKeyValueOf(kv.GetKey(), kv.GetValue()))
	}
	return tags
}

func sortedAttributes(kvs []*commonpb.KeyValue) []*commonpb.KeyValue {
	return slices.SortedStableFunc(slices.Values(kvs), func(a, b *commonpb.KeyValue) int { return strings.Compare(a.GetKey(), b.GetKey()) })
}

func uiKeyValueOf(key string, v *commonpb.AnyValue) uiKeyValue {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return uiKeyValue{Key: key, Type: "string", Value: x.StringValue}
	case *commonpb.AnyValue_BoolValue:
		return uiKeyValue{Key: key, Type: "bool", Value: x.BoolValue}
	case *commonpb.AnyValue_IntValue:
		if x.IntValue > jsMaxSafeInteger || x.IntValue < -jsMaxSafeInteger {
			return uiKeyValue{Key: key, Type: "int64", Value: strconv.FormatInt(x.IntValue, 10)}
		}
		return uiKeyValue{Key: key, Type: "int64", Value: x.IntValue}
	case *commonpb.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) { // no JSON number for them
			return uiKeyValue{Key: key, Type: "float64", Value: strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)}
		}
		return uiKeyValue{Key: key, Type: "float64", Value: x.DoubleValue}
	case *commonpb.AnyValue_BytesValue:
		return uiKeyValue{Key: key, Type: "binary", Value: x.BytesValue}
	}
	return uiKeyValue{Key: key, Type: "string", Value: valueString(v)} // arrays and lists as JSON
}
