package tracecollect_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// exportOfSize is an ExportTraceServiceRequest of exactly size bytes: one span of trace
// traceID whose attribute is padded to fit.
func exportOfSize(t *testing.T, traceID byte, size int) []byte {
	t.Helper()
	pad := size - 100
	for range 5 {
		req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "big")}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
				TraceId: bytes.Repeat([]byte{traceID}, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "padded",
				Attributes: []*commonpb.KeyValue{strAttr("pad", strings.Repeat("x", pad))}}}}}}}}
		n := proto.Size(req)
		if n == size {
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		pad -= n - size
	}
	t.Fatalf("no request of %d bytes", size)
	return nil
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// gzipBomb is 1 GiB of zeros, gzipped: 1,024 gzip members of 1 MiB each, about 1 MB in all.
// RFC 1952 makes a gzip file a series of members and every gzip reader here reads them
// all; one member of 1 GiB would take a minute to compress under the race detector.
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	member := gzipped(t, make([]byte, 1<<20))
	return bytes.Repeat(member, 1024)
}

// allocated runs f and returns how many bytes the process allocated meanwhile.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// inflateBudget is what refusing a request may allocate in all, the collector's reads and
// the test's client together: a few times MaxRequestBytes, far below the GiB of a bomb.
const inflateBudget = 8 * tracecollect.MaxRequestBytes

type otlpAnswer struct {
	status      int
	contentType string
	rpcStatus   *status.Status // the body of a failure
	body        []byte
}

// postOTLP posts body to the collector's OTLP/HTTP receiver. chunked hides its length.
func postOTLP(t *testing.T, c *tracecollect.Collector, contentType, encoding string, body []byte, chunked bool) otlpAnswer {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(r)
	}
	req, err := http.NewRequest("POST", "http://"+c.HTTPAddr()+"/v1/traces", r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	a := otlpAnswer{status: res.StatusCode, contentType: res.Header.Get("Content-Type")}
	if a.body, err = io.ReadAll(res.Body); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		a.rpcStatus = &status.Status{}
		if a.contentType == "application/json" {
			err = tracecollect.UnmarshalJSON(a.body, a.rpcStatus)
		} else {
			err = proto.Unmarshal(a.body, a.rpcStatus)
		}
		if err != nil {
			t.Fatalf("%s: the body is not a Status in %s: %v: %q", res.Status, a.contentType, err, a.body)
		}
	}
	return a
}

// A request is refused with 413 and a Status body in its own encoding once it is over
// MaxRequestBytes, before or after decompression, told by its Content-Length or not; one
// of exactly MaxRequestBytes is stored. A gzip bomb is refused without being inflated.
func TestOTLPHTTPRefusesRequestsOverTheLimit(t *testing.T) {
	c := startCollector(t, 0)
	traceOf := func(b byte) tracecollect.TraceID {
		var id tracecollect.TraceID
		copy(id[:], bytes.Repeat([]byte{b}, 16))
		return id
	}

	atLimit, overLimit := exportOfSize(t, 1, tracecollect.MaxRequestBytes), exportOfSize(t, 2, tracecollect.MaxRequestBytes+1)
	for _, tc := range []struct {
		name     string
		encoding string
		body     []byte
		chunked  bool
		trace    byte // stored if not 0
	}{
		{"at the limit", "", atLimit, false, 1},
		{"at the limit, gzipped", "gzip", gzipped(t, atLimit), true, 1},
		{"over the limit", "", overLimit, false, 0},
		{"over the limit, chunked", "", overLimit, true, 0},
		{"over the limit once inflated", "gzip", gzipped(t, overLimit), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := postOTLP(t, c, "application/x-protobuf", tc.encoding, tc.body, tc.chunked)
			if tc.trace != 0 {
				if a.status != http.StatusOK || c.Store().Trace(traceOf(tc.trace)) == nil {
					t.Fatalf("%d %q; stored: %v", a.status, a.body, c.Store().Trace(traceOf(tc.trace)) != nil)
				}
				return
			}
			if a.status != http.StatusRequestEntityTooLarge || a.contentType != "application/x-protobuf" ||
				codes.Code(a.rpcStatus.GetCode()) != codes.ResourceExhausted || !strings.Contains(a.rpcStatus.GetMessage(), "8388608 bytes") {
				t.Fatalf("%d %s %v", a.status, a.contentType, a.rpcStatus)
			}
		})
	}
	if c.Store().Trace(traceOf(2)) != nil {
		t.Error("a refused request's span was stored")
	}

	t.Run("gzip bomb", func(t *testing.T) {
		bomb := gzipBomb(t)
		var a otlpAnswer
		n := allocated(func() { a = postOTLP(t, c, "application/x-protobuf", "gzip", bomb, false) })
		if a.status != http.StatusRequestEntityTooLarge || codes.Code(a.rpcStatus.GetCode()) != codes.ResourceExhausted {
			t.Fatalf("%d %v", a.status, a.rpcStatus)
		}
		if n > inflateBudget {
			t.Errorf("refusing a %d-byte gzip bomb allocated %d MiB", len(bomb), n>>20)
		}
		t.Logf("a %d-byte gzip bomb of 1 GiB refused; %d MiB allocated", len(bomb), n>>20)
	})

	t.Run("64 MiB of JSON", func(t *testing.T) {
		span := `{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"op","kind":2,` +
			`"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"}`
		var b bytes.Buffer
		b.WriteString(`{"resourceSpans":[{"scopeSpans":[{"spans":[` + span)
		for b.Len() < 64<<20 {
			b.WriteString("," + span)
		}
		b.WriteString(`]}]}]}`)
		for _, chunked := range []bool{false, true} {
			var a otlpAnswer
			n := allocated(func() { a = postOTLP(t, c, "application/json", "", b.Bytes(), chunked) })
			if a.status != http.StatusRequestEntityTooLarge || a.contentType != "application/json" ||
				codes.Code(a.rpcStatus.GetCode()) != codes.ResourceExhausted || a.rpcStatus.GetMessage() == "" {
				t.Fatalf("chunked %v: %d %s %v", chunked, a.status, a.contentType, a.rpcStatus)
			}
			if n > inflateBudget {
				t.Errorf("chunked %v: refusing 64 MiB of JSON allocated %d MiB", chunked, n>>20)
			}
		}
		if st := c.Store().Stats(); st.Traces != 1 {
			t.Errorf("store %+v, want only the trace at the limit", st)
		}
	})
}

// OTLP/gRPC refuses a message over MaxRequestBytes, on the wire or once inflated, with
// RESOURCE_EXHAUSTED, and inflates a gzip bomb no further than that.
func TestOTLPGRPCRefusesMessagesOverTheLimit(t *testing.T) {
	c := startCollector(t, 0)
	export := func(t *testing.T, msg []byte, compressed bool) (codes.Code, string) {
		t.Helper()
		return grpcExport(t, c, msg, compressed)
	}

	atLimit, overLimit := exportOfSize(t, 1, tracecollect.MaxRequestBytes), exportOfSize(t, 2, tracecollect.MaxRequestBytes+1)
	for _, tc := range []struct {
		name       string
		msg        []byte
		compressed bool
		want       codes.Code
	}{
		{"at the limit", atLimit, false, codes.OK},
		{"at the limit, gzipped", gzipped(t, atLimit), true, codes.OK},
		{"over the limit", overLimit, false, codes.ResourceExhausted},
		{"over the limit once inflated", gzipped(t, overLimit), true, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, msg := export(t, tc.msg, tc.compressed); got != tc.want {
				t.Fatalf("%v %q, want %v", got, msg, tc.want)
			}
		})
	}
	t.Run("gzip bomb", func(t *testing.T) {
		bomb := gzipBomb(t)
		var code codes.Code
		var msg string
		n := allocated(func() { code, msg = export(t, bomb, true) })
		if code != codes.ResourceExhausted {
			t.Fatalf("%v %q", code, msg)
		}
		if n > inflateBudget {
			t.Errorf("refusing a %d-byte gzip bomb allocated %d MiB", len(bomb), n>>20)
		}
		t.Logf("a %d-byte gzip bomb of 1 GiB refused (%s); %d MiB allocated", len(bomb), msg, n>>20)
	})
	if st := c.Store().Stats(); st.Traces != 1 {
		t.Errorf("store %+v, want only the trace at the limit", st)
	}
}

// grpcExport sends msg, an ExportTraceServiceRequest (gzipped if compressed), to the
// collector's OTLP/gRPC receiver as gRPC over HTTP/2 written by hand, and returns the
// answer's status. No gRPC client would send a message its compressor did not make: this
// way a gzip bomb is made once, not compressed from a GiB at every send.
func grpcExport(t *testing.T, c *tracecollect.Collector, msg []byte, compressed bool) (codes.Code, string) {
	t.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	frame := make([]byte, 5, 5+len(msg))
	if compressed {
		frame[0] = 1
	}
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	req, err := http.NewRequest("POST", "http://"+c.GRPCAddr()+"/opentelemetry.proto.collector.trace.v1.TraceService/Export",
		bytes.NewReader(append(frame, msg...)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if compressed {
		req.Header.Set("Grpc-Encoding", "gzip")
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatal(err)
	}
	// A failure before any message is a trailers-only answer: its status is in the headers.
	code, text := res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message")
	if code == "" {
		code, text = res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
	}
	var n uint32
	if _, err := fmt.Sscan(code, &n); err != nil {
		t.Fatalf("%s: grpc-status %q", res.Status, code)
	}
	return codes.Code(n), text
}

// The store keeps at most MaxBytes bytes (its estimate of their memory), dropping the oldest
// traces whole and counting them, however few spans they have.
func TestStoreDropsTheOldestTracesOverItsBytes(t *testing.T) {
	big := func(trace byte, value int) []*tracepb.ResourceSpans {
		return []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			{TraceId: bytes.Repeat([]byte{trace}, 16), SpanId: []byte{trace, 1, 1, 1, 1, 1, 1, 1}, Name: "a",
				Attributes: []*commonpb.KeyValue{strAttr("v", strings.Repeat("x", value))}},
			{TraceId: bytes.Repeat([]byte{trace}, 16), SpanId: []byte{trace, 2, 1, 1, 1, 1, 1, 1}, Name: "b"},
		}}}}}
	}
	s := tracecollect.NewStore(1000, 3<<20)
	for tr := byte(1); tr <= 5; tr++ {
		s.Add(big(tr, 1<<20)) // each trace a little over 1 MiB
	}
	st := s.Stats()
	if st.Traces != 2 || st.Spans != 4 || st.Evicted != 3 || st.Received != 10 || st.Bytes > st.MaxBytes || st.Bytes < 2<<20 {
		t.Fatalf("stats %+v, want traces 4 and 5 kept", st)
	}
	for tr := byte(1); tr <= 5; tr++ {
		var id tracecollect.TraceID
		copy(id[:], bytes.Repeat([]byte{tr}, 16))
		if kept := s.Trace(id) != nil; kept != (tr >= 4) {
			t.Errorf("trace %d kept: %v", tr, kept)
		}
	}
	// A trace alone over the bound is kept (a query right after must find it), and the
	// bytes of the ones dropped are given back.
	s.Add(big(9, 4<<20))
	if st := s.Stats(); st.Traces != 1 || st.Evicted != 5 || st.Bytes < 4<<20 || st.Bytes > 5<<20 {
		t.Errorf("after a large trace: %+v", st)
	}
}

// The store's bytes are an estimate of the memory its spans take, within a factor that keeps
// the bound meaningful, for spans of few or many, small or large attributes.
func TestStoreBytesEstimateTheMemoryOfItsSpans(t *testing.T) {
	for _, tc := range []struct{ attrs, value int }{{0, 0}, {5, 8}, {30, 8}, {10, 100}, {3, 10_000}} {
		t.Run(fmt.Sprintf("%d attributes of %d bytes", tc.attrs, tc.value), func(t *testing.T) {
			const n = 2000
			req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{}}}}}
			for i := range n {
				sp := &tracepb.Span{TraceId: make([]byte, 16), SpanId: make([]byte, 8), ParentSpanId: make([]byte, 8),
					Name: "GET /v1/products/{id}", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: 1, EndTimeUnixNano: 2}
				sp.TraceId[0], sp.TraceId[1], sp.TraceId[15] = byte(i), byte(i>>8), 1
				for a := range tc.attrs {
					sp.Attributes = append(sp.Attributes, strAttr(fmt.Sprint("attribute.", a), strings.Repeat("v", tc.value)))
				}
				req.ResourceSpans[0].ScopeSpans[0].Spans = append(req.ResourceSpans[0].ScopeSpans[0].Spans, sp)
			}
			b, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			s := tracecollect.NewStore(n, 1<<30)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.GC() // the second empties the sync.Pools that earlier tests filled
			runtime.ReadMemStats(&before)
			decoded := &coltracepb.ExportTraceServiceRequest{}
			if err := proto.Unmarshal(b, decoded); err != nil {
				t.Fatal(err)
			}
			s.Add(decoded.GetResourceSpans())
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(b) // live at both readings
			heap, est := int64(after.HeapAlloc)-int64(before.HeapAlloc), int64(s.Stats().Bytes)
			if est < heap*3/4 || est > heap*2 {
				t.Errorf("%d spans take %d bytes in memory; the store counts %d", n, heap, est)
			}
			t.Logf("%d spans of %d encoded bytes take %d bytes each in memory; the store counts %d", n, len(b)/n, heap/n, est/n)
			runtime.KeepAlive(s)
		})
	}
}

// smallSpans is an ExportTraceServiceRequest of about size bytes, of spans like the shop's
// (30 attributes of a few bytes: the most a span takes in memory for its encoded size),
// from trace traceID. The span's encoding is repeated: marshalling thousands of spans under
// the race detector takes seconds.
func smallSpans(t *testing.T, traceID byte, size int) []byte {
	t.Helper()
	var attrs []*commonpb.KeyValue
	for a := range 30 {
		attrs = append(attrs, strAttr(fmt.Sprint("attribute.", a), "value"))
	}
	span, err := proto.Marshal(&tracepb.Span{TraceId: bytes.Repeat([]byte{traceID}, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8},
		ParentSpanId: make([]byte, 8), Name: "GET /v1/products/{id}", Kind: tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: 1, EndTimeUnixNano: 2, Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	field := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), span) // ScopeSpans.spans
	scopeSpans := bytes.Repeat(field, (size-32)/len(field))                                // 32: the envelopes
	resourceSpans := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), scopeSpans)
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), resourceSpans)
}

// A request within MaxRequestBytes whose decoding would take over MaxDecodedBytes, 8 MiB of
// empty spans (2 bytes each on the wire, 288 in memory) or of "{}," in JSON, is refused
// before it is decoded, on both receivers; one as large of spans like the shop's is stored.
func TestOTLPRefusesRequestsThatWouldDecodeTooLarge(t *testing.T) {
	c := startCollector(t, 0)

	// ExportTraceServiceRequest{ResourceSpans: {{ScopeSpans: {{Spans: {{}, {}, ...}}}}}}
	emptySpans := func(n int) []byte {
		scopeSpans := bytes.Repeat([]byte{0x12, 0}, n) // field 2 (spans), 0 bytes long
		resourceSpans := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), scopeSpans)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), resourceSpans)
	}
	small := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(emptySpans(10), small); err != nil || len(small.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()) != 10 {
		t.Fatalf("10 empty spans decode to %v, %v", small, err)
	}
	empty := emptySpans((tracecollect.MaxRequestBytes - 16) / 2)

	var jsonBomb bytes.Buffer
	jsonBomb.WriteString(`{"resourceSpans":[{"scopeSpans":[{"spans":[{}`)
	for jsonBomb.Len() < tracecollect.MaxRequestBytes-100 {
		jsonBomb.WriteString(",{}")
	}
	jsonBomb.WriteString(`]}]}]}`)

	for _, tc := range []struct {
		name, contentType string
		body              []byte
	}{
		{"protobuf", "application/x-protobuf", empty},
		{"JSON", "application/json", jsonBomb.Bytes()},
	} {
		t.Run("HTTP "+tc.name, func(t *testing.T) {
			var a otlpAnswer
			n := allocated(func() { a = postOTLP(t, c, tc.contentType, "gzip", gzipped(t, tc.body), false) })
			if a.status != http.StatusRequestEntityTooLarge || !strings.Contains(a.rpcStatus.GetMessage(), "decoded") {
				t.Fatalf("%d %v", a.status, a.rpcStatus)
			}
			if n > inflateBudget {
				t.Errorf("refusing %d bytes allocated %d MiB", len(tc.body), n>>20)
			}
		})
	}
	t.Run("gRPC", func(t *testing.T) {
		var code codes.Code
		var msg string
		n := allocated(func() { code, msg = grpcExport(t, c, empty, false) })
		// grpc-go answers a codec's refusal with INTERNAL, which OTLP clients do not retry.
		if code != codes.Internal || !strings.Contains(msg, "decoded") {
			t.Fatalf("%v %q", code, msg)
		}
		if n > inflateBudget {
			t.Errorf("refusing %d bytes allocated %d MiB", len(empty), n>>20)
		}
	})
	if st := c.Store().Stats(); st.Spans != 0 {
		t.Fatalf("store %+v after refusals", st)
	}

	// As large a request of real spans goes through, on both receivers. (The store keeps
	// the last one only: each takes over half of its bytes.)
	stored := func(tr byte) bool {
		var id tracecollect.TraceID
		copy(id[:], bytes.Repeat([]byte{tr}, 16))
		return c.Store().Trace(id) != nil
	}
	if a := postOTLP(t, c, "application/x-protobuf", "", smallSpans(t, 1, tracecollect.MaxRequestBytes), false); a.status != http.StatusOK || !stored(1) {
		t.Fatalf("HTTP: %d %v, stored %v", a.status, a.rpcStatus, stored(1))
	}
	if code, msg := grpcExport(t, c, smallSpans(t, 2, tracecollect.MaxRequestBytes), false); code != codes.OK || !stored(2) {
		t.Fatalf("gRPC: %v %q, stored %v", code, msg, stored(2))
	}
}
