package tracecollect

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Jaeger's api_v3 over HTTP as Jaeger v2's query service serves it (jaegertracing/jaeger,
// cmd/jaeger/internal/extension/jaegerquery/internal/apiv3: http_gateway.go and
// query_parser.go at 8498073, v2.20 and later): the same parameters under both their
// names, the same required time window, the same answers ({"result": OTLP/JSON}) and errors
// ({"error": {"httpCode", "message"}}).

// Search depths: how many traces a search returns.
const (
	// DefaultSearchDepth is the depth of a search that does not give one: Jaeger's.
	DefaultSearchDepth = 100
	// MaxSearchDepth bounds a search's depth, on every API (a larger one is refused with
	// 400): the Jaeger UI's own ceiling (its search.maxLimit), and about the whole store.
	MaxSearchDepth = 1500
)

// param is an api_v3 query parameter by its two names: the canonical one (camelCase,
// read since Jaeger v2.19) and the deprecated alias (snake_case), which every v2 release
// reads. Jaeger reads the canonical one first.
type param struct{ name, alias string }

func (p param) get(v url.Values) (value, name string) {
	if s := v.Get(p.name); s != "" {
		return s, p.name
	}
	return v.Get(p.alias), p.alias
}

// The parameters of GET /api/v3/traces, /api/v3/trace-summaries, /api/v3/traces/{id} and
// /api/v3/operations.
var (
	paramServiceName   = param{"query.serviceName", "query.service_name"}
	paramOperationName = param{"query.operationName", "query.operation_name"}
	paramTimeMin       = param{"query.startTimeMin", "query.start_time_min"} // required, RFC 3339 with nanoseconds
	paramTimeMax       = param{"query.startTimeMax", "query.start_time_max"} // required, after paramTimeMin
	paramSearchDepth   = param{"query.searchDepth", "query.search_depth"}
	paramDurationMin   = param{"query.durationMin", "query.duration_min"} // Go durations: 10ms
	paramDurationMax   = param{"query.durationMax", "query.duration_max"}
	paramQueryRaw      = param{"query.rawTraces", "query.raw_traces"}
	paramStartTime     = param{"startTime", "start_time"} // of a trace by ID: a hint, checked, not needed here
	paramEndTime       = param{"endTime", "end_time"}
	paramRawTraces     = param{"rawTraces", "raw_traces"}
	paramSpanKind      = param{"spanKind", "span_kind"}
)

const (
	// paramNumTraces is the search depth's name before query.search_depth (Jaeger v2.0 to
	// v2.18, whose memory storage refuses a search without it); Jaeger reads it when neither
	// other name is given, and so does this collector.
	paramNumTraces  = "query.num_traces"
	paramAttributes = "query.attributes" // a JSON object of strings: tags, as Query.Attributes
	paramFilter     = "query.filter"     // Jaeger's expression filter: not supported here
)

func (c *Collector) routeAPIv3(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v3/traces/{trace_id}", c.getTraceV3)
	mux.HandleFunc("GET /api/v3/traces", c.findTracesV3)
	mux.HandleFunc("GET /api/v3/trace-summaries", c.findTraceSummaries)
	mux.HandleFunc("GET /api/v3/services", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"services": c.store.Services()})
	})
	mux.HandleFunc("GET /api/v3/operations", func(w http.ResponseWriter, r *http.Request) {
		kind, _ := paramSpanKind.get(r.URL.Query())
		ops := c.store.Operations(r.URL.Query().Get("service"), kind)
		for i := range ops {
			if ops[i].SpanKind == "" { // as Jaeger answers a span of no kind
				ops[i].SpanKind = "internal"
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"operations": ops})
	})
}

func (c *Collector) getTraceV3(w http.ResponseWriter, r *http.Request) {
	id, err := parseAPITraceID(r.PathValue("trace_id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed parameter trace_id: "+err.Error())
		return
	}
	q := r.URL.Query()
	for _, p := range []param{paramStartTime, paramEndTime} {
		if s, name := p.get(q); s != "" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("malformed parameter %s: %v", name, err))
				return
			}
		}
	}
	if s, name := paramRawTraces.get(q); s != "" {
		if _, err := strconv.ParseBool(s); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("malformed parameter %s: %v", name, err))
			return
		}
	}
	td := c.store.Trace(id)
	if td == nil {
		writeError(w, http.StatusNotFound, "No traces found")
		return
	}
	c.writeTracesV3(w, []*tracepb.TracesData{td})
}

func (c *Collector) findTracesV3(w http.ResponseWriter, r *http.Request) {
	q, err := parseQueryV3(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tds := c.store.Find(q)
	if len(tds) == 0 {
		writeError(w, http.StatusNotFound, "No traces found")
		return
	}
	c.writeTracesV3(w, tds)
}

// findTraceSummaries answers what the Jaeger UI's search lists (since v2.19): a summary of
// each trace found, newest first; none found is {}, not 404, as Jaeger answers it.
func (c *Collector) findTraceSummaries(w http.ResponseWriter, r *http.Request) {
	q, err := parseQueryV3(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tds := c.store.Find(q)
	if len(tds) == 0 {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	out := make([]traceSummary, len(tds))
	for i, td := range tds {
		out[i] = summarize(td)
	}
	writeJSON(w, http.StatusOK, map[string]any{"summaries": out})
}

// parseQueryV3 reads a search's parameters as Jaeger v2 does, and refuses what it refuses:
// a search without both ends of its time window, or with them the wrong way round. Beyond
// Jaeger, it refuses a depth outside 1..MaxSearchDepth (Jaeger leaves that to its storage,
// whose memory one refuses 0) and the expression filter, which this collector does not
// evaluate.
func parseQueryV3(v url.Values) (Query, error) {
	q := Query{}
	q.ServiceName, _ = paramServiceName.get(v)
	q.OperationName, _ = paramOperationName.get(v)
	if s := v.Get(paramAttributes); s != "" {
		if err := json.Unmarshal([]byte(s), &q.Attributes); err != nil {
			return q, fmt.Errorf("malformed parameter %s: %w", paramAttributes, err)
		}
	}
	if v.Get(paramFilter) != "" {
		return q, fmt.Errorf("parameter %s is not supported by this collector: use %s", paramFilter, paramAttributes)
	}
	minS, minName := paramTimeMin.get(v)
	maxS, maxName := paramTimeMax.get(v)
	if minS == "" || maxS == "" {
		return q, fmt.Errorf("%s and %s are required", paramTimeMin.name, paramTimeMax.name)
	}
	var err error
	if q.StartMin, err = time.Parse(time.RFC3339Nano, minS); err != nil {
		return q, fmt.Errorf("malformed parameter %s: %w", minName, err)
	}
	if q.StartMax, err = time.Parse(time.RFC3339Nano, maxS); err != nil {
		return q, fmt.Errorf("malformed parameter %s: %w", maxName, err)
	}
	if !q.StartMin.Before(q.StartMax) {
		return q, fmt.Errorf("%s must be before %s", paramTimeMin.name, paramTimeMax.name)
	}
	n, name := paramSearchDepth.get(v)
	if n == "" {
		n, name = v.Get(paramNumTraces), paramNumTraces
	}
	q.NumTraces = DefaultSearchDepth
	if n != "" {
		if q.NumTraces, err = strconv.Atoi(n); err != nil {
			return q, fmt.Errorf("malformed parameter %s: %w", name, err)
		}
		if q.NumTraces < 1 || q.NumTraces > MaxSearchDepth {
			return q, fmt.Errorf("malformed parameter %s: %d, want 1 to %d", name, q.NumTraces, MaxSearchDepth)
		}
	}
	for _, p := range []struct {
		param
		d *time.Duration
	}{{paramDurationMin, &q.DurationMin}, {paramDurationMax, &q.DurationMax}} {
		if s, name := p.get(v); s != "" {
			if *p.d, err = time.ParseDuration(s); err != nil {
				return q, fmt.Errorf("malformed parameter %s: %w", name, err)
			}
		}
	}
	if s, name := paramQueryRaw.get(v); s != "" {
		if _, err := strconv.ParseBool(s); err != nil {
			return q, fmt.Errorf("malformed parameter %s: %w", name, err)
		}
	}
	return q, nil
}

// parseAPITraceID reads a trace ID as Jaeger's APIs do: up to 32 hex digits (fewer are the
// low end: Jaeger writes an ID whose high half is zero in 16), or 16 bytes in base64.
func parseAPITraceID(s string) (TraceID, error) {
	var id TraceID
	if len(s) > 0 && len(s) <= 32 {
		if b, err := hex.DecodeString(strings.Repeat("0", 32-len(s)) + s); err == nil {
			copy(id[:], b)
			return id, nil
		}
	}
	if len(s) <= 24 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil && len(b) == len(id) {
				copy(id[:], b)
				return id, nil
			}
		}
	}
	return id, fmt.Errorf("trace ID %q: want up to 32 hex digits, or 16 bytes in base64", s)
}

// writeTracesV3 answers traces as Jaeger does: all their resource spans in one TracesData,
// inside {"result": ...}. It encodes one resource's spans at a time as it writes, so that
// a large answer costs the memory of its largest piece, not of the whole.
func (c *Collector) writeTracesV3(w http.ResponseWriter, tds []*tracepb.TracesData) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"result":{"resourceSpans":[`)
	first := true
	for _, td := range tds {
		for _, rs := range td.GetResourceSpans() {
			b, err := MarshalJSON(rs)
			if err != nil { // the store holds only what decoded, strings valid UTF-8: not seen
				c.log.Error("encode traces", "err", err)
				continue
			}
			if !first {
				_ = bw.WriteByte(',')
			}
			first = false
			_, _ = bw.Write(b)
		}
	}
	_, _ = bw.WriteString("]}}\n")
	_ = bw.Flush()
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"httpCode": status, "message": msg}})
}

// traceSummary is api_v3's TraceSummary as Jaeger writes it (protobuf's JSON: zero values
// left out, 64-bit numbers as strings).
type traceSummary struct {
	TraceID              string           `json:"traceId"`
	RootServiceName      string           `json:"rootServiceName,omitempty"`
	RootOperationName    string           `json:"rootOperationName,omitempty"`
	MinStartTimeUnixNano string           `json:"minStartTimeUnixNano,omitempty"`
	MaxEndTimeUnixNano   string           `json:"maxEndTimeUnixNano,omitempty"`
	SpanCount            int              `json:"spanCount,omitempty"`
	ErrorSpanCount       int              `json:"errorSpanCount,omitempty"`
	OrphanSpanCount      int              `json:"orphanSpanCount,omitempty"` // spans whose parent is not in the trace
	Services             []serviceSummary `json:"services,omitempty"`        // sorted by name
}

type serviceSummary struct {
	Name           string `json:"name,omitempty"`
	SpanCount      int    `json:"spanCount,omitempty"`
	ErrorSpanCount int    `json:"errorSpanCount,omitempty"`
}

// summarize describes one trace as Jaeger's storage does (tracestore.TraceSummary): its
// root is the span without a parent, the earliest if several.
func summarize(td *tracepb.TracesData) traceSummary {
	var s traceSummary
	ids := map[[8]byte]bool{}
	for _, sp := range allSpans(td) {
		if id := sp.span.GetSpanId(); len(id) == 8 {
			ids[[8]byte(id)] = true
		}
	}
	var minStart, maxEnd uint64
	var root *tracepb.Span
	byService := map[string]*serviceSummary{}
	for _, sp := range allSpans(td) {
		span := sp.span
		if s.TraceID == "" {
			s.TraceID = hex.EncodeToString(span.GetTraceId())
		}
		s.SpanCount++
		svc := byService[sp.service]
		if svc == nil {
			svc = &serviceSummary{Name: sp.service}
			byService[sp.service] = svc
		}
		svc.SpanCount++
		if span.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			s.ErrorSpanCount++
			svc.ErrorSpanCount++
		}
		if p := span.GetParentSpanId(); len(p) == 0 {
			if root == nil || span.GetStartTimeUnixNano() < root.GetStartTimeUnixNano() {
				root, s.RootServiceName, s.RootOperationName = span, sp.service, span.GetName()
			}
		} else if len(p) != 8 || !ids[[8]byte(p)] {
			s.OrphanSpanCount++
		}
		if minStart == 0 || span.GetStartTimeUnixNano() < minStart {
			minStart = span.GetStartTimeUnixNano()
		}
		maxEnd = max(maxEnd, span.GetEndTimeUnixNano())
	}
	s.MinStartTimeUnixNano = strconv.FormatUint(minStart, 10)
	s.MaxEndTimeUnixNano = strconv.FormatUint(maxEnd, 10)
	for _, svc := range byService {
		s.Services = append(s.Services, *svc)
	}
	slices.SortFunc(s.Services, func(a, b serviceSummary) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// spanOf is a span of a TracesData with its resource's service and its scope.
type spanOf struct {
	span     *tracepb.Span
	service  string
	resource *tracepb.ResourceSpans
	scope    *tracepb.ScopeSpans
}

// allSpans lists td's spans in order, each with what it came with.
func allSpans(td *tracepb.TracesData) []spanOf {
	var out []spanOf
	for _, rs := range td.GetResourceSpans() {
		service := ServiceName(rs.GetResource())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				out = append(out, spanOf{span: sp, service: service, resource: rs, scope: ss})
			}
		}
	}
	return out
}
