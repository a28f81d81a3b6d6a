// Package xray speaks AWS X-Ray for OpenTelemetry: its trace header (X-Amzn-Trace-Id, a
// propagator: header.go), its trace IDs (an ID generator: ids.go), and its segments.
//
// It exports OpenTelemetry spans to AWS X-Ray: each span becomes one segment
// document, sent in its own UDP datagram to the X-Ray daemon (or the CloudWatch agent, or
// ADOT's awsxray receiver) in the daemon's wire format, a JSON header line then the document.
//
// A span that starts work in a process (SERVER, CONSUMER, or any span without a local
// parent) becomes a segment named after its service; every other span becomes a subsegment
// sent on its own ("type": "subsegment" with its trace and parent IDs), so no span waits for
// its parent to end. Calls out of the process (CLIENT, PRODUCER) are subsegments in the
// "remote" namespace named after what they call, which X-Ray draws as downstream nodes.
// Trace IDs must come from X-Ray's ID generator (first 32 bits the epoch seconds): X-Ray
// rejects others. It is not an X-Ray SDK: no sampling rules, no centralized sampling.
package xray

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultDaemonAddress is where the X-Ray daemon listens unless AWS_XRAY_DAEMON_ADDRESS
// says otherwise.
const DefaultDaemonAddress = "127.0.0.1:2000"

// Header is the line that precedes every document in a datagram.
const Header = `{"format": "json", "version": 1}` + "\n"

// maxDatagram is the largest document the daemon accepts (64 KiB, header included).
const maxDatagram = 64 * 1024

// Exporter sends spans to the X-Ray daemon over UDP. It implements sdktrace.SpanExporter.
type Exporter struct {
	mu   sync.Mutex
	conn net.Conn // nil once shut down
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// New returns an exporter sending to the daemon at addr: "host:port", or the daemon's
// two-address form "tcp:host:port udp:host:port" (UDP is used); "" means
// DefaultDaemonAddress.
func New(addr string) (*Exporter, error) {
	udp, err := DaemonUDPAddress(addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.Dial("udp", udp)
	if err != nil {
		return nil, fmt.Errorf("x-ray daemon %s: %w", udp, err)
	}
	return &Exporter{conn: conn}, nil
}

// DaemonUDPAddress returns the UDP address in an AWS_XRAY_DAEMON_ADDRESS value.
func DaemonUDPAddress(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultDaemonAddress, nil
	}
	fields := strings.Fields(v)
	if len(fields) == 1 && !strings.HasPrefix(fields[0], "tcp:") && !strings.HasPrefix(fields[0], "udp:") {
		return fields[0], nil
	}
	for _, f := range fields {
		if a, ok := strings.CutPrefix(f, "udp:"); ok && a != "" {
			return a, nil
		}
	}
	return "", fmt.Errorf("AWS_XRAY_DAEMON_ADDRESS=%q: want host:port or \"tcp:host:port udp:host:port\"", v)
}

// ExportSpans sends one datagram per span. A daemon that is not listening is an error for
// this batch, not for the exporter: the next batch tries again.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return errors.New("x-ray exporter is shut down")
	}
	var errs []error
	refused := 0
	for _, s := range spans {
		if err := ctx.Err(); err != nil {
			return err
		}
		doc, err := Document(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := e.conn.Write(append([]byte(Header), doc...)); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused++ // an earlier datagram found no daemon; say it once per batch
				continue
			}
			errs = append(errs, fmt.Errorf("send segment: %w", err))
		}
	}
	if refused > 0 {
		errs = append(errs, fmt.Errorf("x-ray daemon at %s refused %d segments: is it running?", e.conn.RemoteAddr(), refused))
	}
	return errors.Join(errs...)
}

// Shutdown closes the socket; nothing is buffered.
func (e *Exporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return nil
	}
	err := e.conn.Close()
	e.conn = nil
	return err
}

// segment is a segment or subsegment document; the field set is the schema's.
type segment struct {
	Name        string                    `json:"name"`
	ID          string                    `json:"id"`
	TraceID     string                    `json:"trace_id"`
	StartTime   float64                   `json:"start_time"`
	EndTime     float64                   `json:"end_time"`
	ParentID    string                    `json:"parent_id,omitempty"`
	Type        string                    `json:"type,omitempty"`      // "subsegment" for a subsegment sent alone
	Namespace   string                    `json:"namespace,omitempty"` // "remote" for calls out of the process
	Fault       bool                      `json:"fault,omitempty"`
	Error       bool                      `json:"error,omitempty"`
	Throttle    bool                      `json:"throttle,omitempty"`
	Cause       *cause                    `json:"cause,omitempty"`
	HTTP        *httpInfo                 `json:"http,omitempty"`
	AWS         *awsInfo                  `json:"aws,omitempty"`
	Service     *serviceInfo              `json:"service,omitempty"`
	Annotations map[string]any            `json:"annotations,omitempty"`
	Metadata    map[string]map[string]any `json:"metadata,omitempty"`
}

type cause struct {
	Exceptions []exception `json:"exceptions"`
}

type exception struct {
	ID      string `json:"id"`
	Message string `json:"message,omitempty"`
	Type    string `json:"type,omitempty"`
	Remote  bool   `json:"remote,omitempty"`
}

type httpInfo struct {
	Request  *httpRequest  `json:"request,omitempty"`
	Response *httpResponse `json:"response,omitempty"`
}

type httpRequest struct {
	Method    string `json:"method,omitempty"`
	URL       string `json:"url,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

type httpResponse struct {
	Status        int64 `json:"status,omitempty"`
	ContentLength int64 `json:"content_length,omitempty"`
}

type awsInfo struct {
	Tracing *struct {
		SDK string `json:"sdk"`
	} `json:"tracing,omitempty"`
}

type serviceInfo struct {
	Version string `json:"version"`
}

// Attribute keys read from spans and resources (OpenTelemetry's conventions).
const (
	keyServiceName    = attribute.Key("service.name")
	keyServiceVersion = attribute.Key("service.version")
	keyArchitecture   = attribute.Key("mitosis.architecture")
	keyHTTPMethod     = attribute.Key("http.request.method")
	keyHTTPStatus     = attribute.Key("http.response.status_code")
	keyHTTPBodySize   = attribute.Key("http.response.body.size")
	keyURLScheme      = attribute.Key("url.scheme")
	keyURLPath        = attribute.Key("url.path")
	keyURLFull        = attribute.Key("url.full")
	keyServerAddress  = attribute.Key("server.address")
	keyClientAddress  = attribute.Key("client.address")
	keyUserAgent      = attribute.Key("user_agent.original")
	keyRPCMethod      = attribute.Key("rpc.method")
	keyDBSystem       = attribute.Key("db.system.name")
	keyDBCollection   = attribute.Key("db.collection.name")
	keyMsgDestination = attribute.Key("messaging.destination.name")
)

// Limits of the schema.
const (
	maxName       = 200
	maxHTTPField  = 250
	maxAnnotation = 1000
)

// Document returns span's segment document (without the daemon's header line).
func Document(s sdktrace.ReadOnlySpan) ([]byte, error) {
	seg := convert(s)
	doc, err := json.Marshal(seg)
	if err != nil {
		return nil, fmt.Errorf("segment of span %s: %w", s.Name(), err)
	}
	if len(doc)+len(Header) > maxDatagram {
		seg.Metadata = nil // the attributes are what can grow; the rest is bounded
		if doc, err = json.Marshal(seg); err != nil {
			return nil, fmt.Errorf("segment of span %s: %w", s.Name(), err)
		}
	}
	return doc, nil
}

func convert(s sdktrace.ReadOnlySpan) *segment {
	sc := s.SpanContext()
	tid := sc.TraceID().String()
	attrs := attrMap(s.Attributes())
	res := attrMap(s.Resource().Attributes())
	service := res[keyServiceName].AsString()
	if service == "" {
		service = "unknown_service"
	}

	seg := &segment{
		ID:        sc.SpanID().String(),
		TraceID:   "1-" + tid[:8] + "-" + tid[8:],
		StartTime: epochSeconds(s.StartTime().UnixNano()),
		EndTime:   epochSeconds(s.EndTime().UnixNano()),
		Annotations: map[string]any{
			"otel_kind": s.SpanKind().String(),
			"span_name": truncate(s.Name(), maxAnnotation),
		},
	}
	if a := res[keyArchitecture].AsString(); a != "" {
		seg.Annotations["architecture"] = truncate(a, maxAnnotation)
	}
	if p := s.Parent(); p.IsValid() {
		seg.ParentID = p.SpanID().String()
	}
	if startsWork(s) {
		seg.Name = name(service)
		if v := res[keyServiceVersion].AsString(); v != "" {
			seg.Service = &serviceInfo{Version: v}
		}
		seg.AWS = &awsInfo{Tracing: &struct {
			SDK string `json:"sdk"`
		}{SDK: "opentelemetry-go (mitosis xray exporter)"}}
	} else {
		seg.Type = "subsegment"
		seg.Name = name(subsegmentName(s, attrs))
		if k := s.SpanKind(); k == trace.SpanKindClient || k == trace.SpanKindProducer {
			seg.Namespace = "remote"
		}
	}

	seg.HTTP = httpOf(s.SpanKind(), attrs)
	status := int64(0)
	if seg.HTTP != nil && seg.HTTP.Response != nil {
		status = seg.HTTP.Response.Status
	}
	switch {
	case status == 429:
		seg.Throttle, seg.Error = true, true
	case status >= 500:
		seg.Fault = true
	case status >= 400:
		seg.Error = true
	case s.Status().Code == codes.Error:
		seg.Fault = true
	}
	if s.Status().Code == codes.Error || status >= 400 {
		seg.Cause = causeOf(s)
	}

	if len(attrs) > 0 {
		md := make(map[string]any, len(attrs))
		for k, v := range attrs {
			md[string(k)] = v.AsInterface()
		}
		seg.Metadata = map[string]map[string]any{"default": md}
	}
	return seg
}

// startsWork reports whether s is where work begins in its process: a segment.
func startsWork(s sdktrace.ReadOnlySpan) bool {
	switch s.SpanKind() {
	case trace.SpanKindServer, trace.SpanKindConsumer:
		return true
	}
	return !s.Parent().IsValid() || s.Parent().IsRemote()
}

// subsegmentName names a subsegment: what a call out of the process reaches (the gRPC
// service, the bucket, the subject), or the span's own name for work inside it.
func subsegmentName(s sdktrace.ReadOnlySpan, attrs map[attribute.Key]attribute.Value) string {
	if s.SpanKind() == trace.SpanKindClient || s.SpanKind() == trace.SpanKindProducer {
		if m := attrs[keyRPCMethod].AsString(); m != "" {
			if svc, _, ok := strings.Cut(m, "/"); ok {
				return svc
			}
			return m
		}
		if db := attrs[keyDBSystem].AsString(); db != "" {
			if c := attrs[keyDBCollection].AsString(); c != "" {
				return db + ":" + c
			}
			return db
		}
		if d := attrs[keyMsgDestination].AsString(); d != "" {
			return d
		}
		if h := attrs[keyServerAddress].AsString(); h != "" {
			return h
		}
	}
	return s.Name()
}

func httpOf(kind trace.SpanKind, attrs map[attribute.Key]attribute.Value) *httpInfo {
	method := attrs[keyHTTPMethod].AsString()
	status := attrs[keyHTTPStatus].AsInt64()
	if method == "" && status == 0 {
		return nil
	}
	h := &httpInfo{}
	if method != "" {
		req := &httpRequest{Method: truncate(method, maxHTTPField)}
		switch {
		case attrs[keyURLFull].AsString() != "":
			req.URL = attrs[keyURLFull].AsString()
		case attrs[keyURLPath].AsString() != "":
			scheme := attrs[keyURLScheme].AsString()
			if scheme == "" {
				scheme = "http"
			}
			req.URL = scheme + "://" + attrs[keyServerAddress].AsString() + attrs[keyURLPath].AsString()
		}
		req.URL = truncate(req.URL, maxHTTPField)
		if kind == trace.SpanKindServer {
			req.ClientIP = truncate(attrs[keyClientAddress].AsString(), maxHTTPField)
			req.UserAgent = truncate(attrs[keyUserAgent].AsString(), maxHTTPField)
		}
		h.Request = req
	}
	if status != 0 {
		h.Response = &httpResponse{Status: status, ContentLength: attrs[keyHTTPBodySize].AsInt64()}
	}
	return h
}

// causeOf lists the span's exception events, or its status as the one exception.
func causeOf(s sdktrace.ReadOnlySpan) *cause {
	c := &cause{}
	for _, ev := range s.Events() {
		if ev.Name != "exception" {
			continue
		}
		ea := attrMap(ev.Attributes)
		c.Exceptions = append(c.Exceptions, exception{
			ID:      exceptionID(),
			Message: ea["exception.message"].AsString(),
			Type:    ea["exception.type"].AsString(),
		})
	}
	if len(c.Exceptions) == 0 {
		msg := s.Status().Description
		if msg == "" {
			msg = "error"
		}
		c.Exceptions = append(c.Exceptions, exception{ID: exceptionID(), Message: msg,
			Remote: s.SpanKind() == trace.SpanKindClient})
	}
	return c
}

func exceptionID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// epochSeconds turns nanoseconds into X-Ray's floating point seconds (microsecond
// resolution survives a float64 at today's epoch).
func epochSeconds(ns int64) float64 {
	return float64(ns/1000) / 1e6
}

// name makes s a valid segment name: Unicode letters, numbers and spaces and the symbols
// _ . : / % & # = + \ - @, at most 200 characters. Anything else becomes '_' (chi's route
// patterns have braces, for one).
func name(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxName {
			break
		}
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Zs, r) ||
			unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) || strings.ContainsRune(`_.:/%&#=+\-@`, r)) {
			r = '_'
		}
		b.WriteRune(r)
		n++
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// truncate cuts s to at most n characters.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
