package xray

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceHeaderName is the HTTP header X-Ray and AWS's load balancers, API Gateway and Lambda carry
// a trace in: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
// (https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader).
const TraceHeaderName = "X-Amzn-Trace-Id"

// Sampling decisions a header can carry.
const (
	SampledUnknown   = ""  // no Sampled field
	SampledYes       = "1" // the caller sampled the trace
	SampledNo        = "0" // the caller did not
	SampledRequested = "?" // the caller asks the callee to decide
)

// TraceHeader is a parsed X-Amzn-Trace-Id: the trace (Root), the caller's segment (Parent, zero
// when the header names only the trace, as an ALB sends it) and the caller's sampling
// decision. Fields X-Ray adds for its own use (Self, Lineage) and custom ones are ignored.
type TraceHeader struct {
	TraceID trace.TraceID
	Parent  trace.SpanID
	Sampled string
}

// Trace header errors: any one makes the whole header malformed, so nothing of it is continued.
var (
	errNoRoot    = errors.New("no Root field")
	errMalformed = errors.New("malformed")
)

// ParseTraceHeader reads an X-Amzn-Trace-Id value. The rules, from AWS's documentation of the
// header: fields "Key=Value" separated by ";" (spaces around them ignored, an empty field
// too); Root is "1-" then 8 hex digits (the trace's start in epoch seconds) "-" then 24;
// Parent is 16 hex digits; Sampled is 1, 0 or ?. Root is required, each field appears once,
// hex digits are lower case as X-Ray writes them, and no ID is all zeros.
func ParseTraceHeader(v string) (TraceHeader, error) {
	var h TraceHeader
	seen := map[string]bool{}
	for field := range strings.SplitSeq(v, ";") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return TraceHeader{}, fmt.Errorf("%w field %q: want Key=Value", errMalformed, field)
		}
		switch key {
		case "Root", "Parent", "Sampled":
		default:
			continue
		}
		if seen[key] {
			return TraceHeader{}, fmt.Errorf("%w: %s twice", errMalformed, key)
		}
		seen[key] = true
		var err error
		switch key {
		case "Root":
			h.TraceID, err = parseRoot(value)
		case "Parent":
			h.Parent, err = parseSpanID(value)
		case "Sampled":
			switch value {
			case SampledYes, SampledNo, SampledRequested:
				h.Sampled = value
			default:
				err = fmt.Errorf("%w Sampled %q: want 1, 0 or ?", errMalformed, value)
			}
		}
		if err != nil {
			return TraceHeader{}, err
		}
	}
	if !seen["Root"] {
		return TraceHeader{}, errNoRoot
	}
	return h, nil
}

// parseRoot reads "1-<8 hex>-<24 hex>" into a trace ID (the two parts joined).
func parseRoot(v string) (trace.TraceID, error) {
	var id trace.TraceID
	if len(v) != 35 || v[:2] != "1-" || v[10] != '-' {
		return id, fmt.Errorf("%w Root %q: want 1-<8 hex digits>-<24 hex digits>", errMalformed, v)
	}
	if !lowerHex(v[2:10]) || !lowerHex(v[11:]) {
		return id, fmt.Errorf("%w Root %q: not lower-case hex", errMalformed, v)
	}
	_, _ = hex.Decode(id[:4], []byte(v[2:10]))
	_, _ = hex.Decode(id[4:], []byte(v[11:]))
	if !id.IsValid() {
		return id, fmt.Errorf("%w Root %q: all zeros", errMalformed, v)
	}
	return id, nil
}

func parseSpanID(v string) (trace.SpanID, error) {
	var id trace.SpanID
	if len(v) != 16 || !lowerHex(v) {
		return id, fmt.Errorf("%w Parent %q: want 16 lower-case hex digits", errMalformed, v)
	}
	_, _ = hex.Decode(id[:], []byte(v))
	if !id.IsValid() {
		return id, fmt.Errorf("%w Parent %q: all zeros", errMalformed, v)
	}
	return id, nil
}

func lowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// String writes the header as X-Ray does: Root, then Parent and Sampled when known.
func (h TraceHeader) String() string {
	var b strings.Builder
	b.Grow(len("Root=1-") + 8 + 1 + 24 + len(";Parent=") + 16 + len(";Sampled=") + 1)
	b.WriteString("Root=1-")
	b.WriteString(hex.EncodeToString(h.TraceID[:4]))
	b.WriteByte('-')
	b.WriteString(hex.EncodeToString(h.TraceID[4:]))
	if h.Parent.IsValid() {
		b.WriteString(";Parent=")
		b.WriteString(h.Parent.String())
	}
	if h.Sampled != SampledUnknown {
		b.WriteString(";Sampled=")
		b.WriteString(h.Sampled)
	}
	return b.String()
}

// Propagator carries a span context in X-Amzn-Trace-Id. It implements
// propagation.TextMapPropagator.
//
// Extract continues what the caller decided. A header with Root, Parent and Sampled=1 or 0
// becomes a remote parent with that decision. A header that names only the trace (a load
// balancer's: Root, perhaps Self and Sampled, no Parent), or whose caller left the decision
// to the callee (Sampled=? or none), becomes a remote span context with the trace ID and
// flags and no span ID: OpenTelemetry has no way to say "decide yourself" of a parent, so
// the SDK, seeing an invalid parent, keeps its trace ID and lets the root sampler decide, and
// the request's span is a root span of the caller's trace (as a service behind an ALB always
// looks in X-Ray: the ALB makes no segment of its own). A malformed header changes nothing.
type Propagator struct{}

var _ propagation.TextMapPropagator = Propagator{}

// Inject writes the header of ctx's span: Root, Parent and its sampling decision. A context
// without a valid span writes nothing.
func (Propagator) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	h := TraceHeader{TraceID: sc.TraceID(), Parent: sc.SpanID(), Sampled: SampledNo}
	if sc.IsSampled() {
		h.Sampled = SampledYes
	}
	carrier.Set(TraceHeaderName, h.String())
}

// Extract returns ctx with the remote span context of carrier's header, or ctx unchanged.
func (Propagator) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	v := carrier.Get(TraceHeaderName)
	if v == "" {
		return ctx
	}
	h, err := ParseTraceHeader(v)
	if err != nil {
		return ctx
	}
	cfg := trace.SpanContextConfig{TraceID: h.TraceID, Remote: true}
	switch h.Sampled {
	case SampledYes:
		cfg.TraceFlags = trace.FlagsSampled
		cfg.SpanID = h.Parent
	case SampledNo:
		cfg.SpanID = h.Parent
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
}

// Fields names the header the propagator reads and writes.
func (Propagator) Fields() []string { return []string{TraceHeaderName} }
