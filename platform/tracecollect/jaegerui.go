package tracecollect

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// The JSON API the Jaeger UI and Grafana's Jaeger data source read: Jaeger's "internal HTTP
// JSON" API as Jaeger v2's query service serves it (jaegertracing/jaeger,
// cmd/jaeger/internal/extension/jaegerquery/internal: http_handler.go, query_parser.go and
// default_params.go, at 639eefe^, v2.20; 639eefe then dropped the search endpoints for
// api_v3, which the UI's v2.20 release uses, but every earlier UI and Grafana still call
// them). Every answer is an envelope {"data", "total", "limit", "offset", "errors"}; times
// are microseconds since the Unix epoch, the dependencies' milliseconds.

// Defaults of the UI API, Jaeger's.
const (
	defaultUISearchLimit      = 100               // traces of a search that does not say
	defaultUISearchLookback   = 48 * time.Hour    // a search without start looks this far back
	defaultDependencyLookback = 24 * time.Hour    // a dependencies query without lookback
	errTraceNotFound          = "trace not found" // Jaeger's spanstore.ErrTraceNotFound
	errServiceRequired        = "parameter 'service' is required"
	uiLookbackUnits           = "m (minutes), h, d or w"
)

type uiResponse struct {
	Data   any       `json:"data"`
	Total  int       `json:"total"`
	Limit  int       `json:"limit"`
	Offset int       `json:"offset"`
	Errors []uiError `json:"errors"`
}

type uiError struct {
	Code    int    `json:"code,omitempty"`
	Msg     string `json:"msg"`
	TraceID string `json:"traceID,omitempty"`
}

func (c *Collector) routeJaegerUI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/services", func(w http.ResponseWriter, _ *http.Request) {
		s := c.store.Services()
		writeJSON(w, http.StatusOK, uiResponse{Data: s, Total: len(s)})
	})
	// Every span name of a service, whatever its kind: what the UI's search form lists.
	mux.HandleFunc("GET /api/services/{service}/operations", func(w http.ResponseWriter, r *http.Request) {
		names := []string{}
		for _, op := range c.store.Operations(r.PathValue("service"), "") {
			if len(names) == 0 || names[len(names)-1] != op.Name { // sorted by name
				names = append(names, op.Name)
			}
		}
		writeJSON(w, http.StatusOK, uiResponse{Data: names, Total: len(names)})
	})
	mux.HandleFunc("GET /api/operations", func(w http.ResponseWriter, r *http.Request) {
		service := r.URL.Query().Get("service")
		if service == "" {
			writeUIError(w, http.StatusBadRequest, errServiceRequired, "")
			return
		}
		ops := c.store.Operations(service, r.URL.Query().Get("spanKind"))
		writeJSON(w, http.StatusOK, uiResponse{Data: ops, Total: len(ops)})
	})
	mux.HandleFunc("GET /api/traces", c.uiSearch)
	mux.HandleFunc("GET /api/traces/{traceID}", c.uiGetTrace)
	mux.HandleFunc("GET /api/dependencies", c.uiDependencies)
}

func writeUIError(w http.ResponseWriter, status int, msg, traceID string) {
	writeJSON(w, status, uiResponse{Errors: []uiError{{Code: status, Msg: msg, TraceID: traceID}}})
}

func (c *Collector) uiGetTrace(w http.ResponseWriter, r *http.Request) {
	id, err := parseAPITraceID(r.PathValue("traceID"))
	if err != nil {
		writeUIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	v := r.URL.Query()
	for _, p := range []string{"start", "end"} { // a hint of where to look: checked, not needed here
		if s := v.Get(p); s != "" {
			if _, err := parseMicros(p, s); err != nil {
				writeUIError(w, http.StatusBadRequest, err.Error(), "")
				return
			}
		}
	}
	if err := checkBool(v, "raw"); err != nil {
		writeUIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	td := c.store.Trace(id)
	if td == nil {
		writeUIError(w, http.StatusNotFound, errTraceNotFound, "")
		return
	}
	c.writeUITraces(w, []*tracepb.TracesData{td}, nil)
}

// uiSearch finds traces (GET /api/traces?service=...), or fetches several by ID
// (?traceID=a&traceID=b), answering each one missing in the errors.
func (c *Collector) uiSearch(w http.ResponseWriter, r *http.Request) {
	q, ids, err := parseUISearch(r.URL.Query(), time.Now())
	if err != nil {
		writeUIError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	if len(ids) == 0 {
		c.writeUITraces(w, c.store.Find(q), nil)
		return
	}
	var found []*tracepb.TracesData
	var missing []uiError
	for _, id := range ids {
		if td := c.store.Trace(id); td != nil {
			found = append(found, td)
		} else {
			missing = append(missing, uiError{Msg: errTraceNotFound, TraceID: jaegerTraceID(id[:])})
		}
	}
	c.writeUITraces(w, found, missing)
}

// parseUISearch reads the UI's search as Jaeger does: service, operation, tags (a JSON
// object) or tag (key:value, repeated), start and end (microseconds; by default the last
// two days), limit (default 100), minDuration and maxDuration (Go durations), traceID
// (repeated). Beyond Jaeger: without start, lookback (the UI's 1h, 2d...) sets the window
// back from end, and limit is held to 1..MaxSearchDepth.
func parseUISearch(v url.Values, now time.Time) (Query, []TraceID, error) {
	q := Query{ServiceName: v.Get("service"), OperationName: v.Get("operation"), NumTraces: defaultUISearchLimit}
	end := now
	var err error
	if s := v.Get("end"); s != "" {
		if end, err = parseMicros("end", s); err != nil {
			return q, nil, err
		}
	}
	start := end.Add(-defaultUISearchLookback)
	if s := v.Get("start"); s != "" {
		if start, err = parseMicros("start", s); err != nil {
			return q, nil, err
		}
	} else if lb := v.Get("lookback"); lb != "" && lb != "custom" {
		d, err := parseLookback(lb)
		if err != nil {
			return q, nil, err
		}
		start = end.Add(-d)
	}
	q.StartMin, q.StartMax = start, end
	for _, tag := range v["tag"] {
		k, val, ok := strings.Cut(tag, ":")
		if !ok {
			return q, nil, fmt.Errorf("malformed 'tag' parameter, expecting key:value, received: %s", tag)
		}
		if q.Attributes == nil {
			q.Attributes = map[string]string{}
		}
		q.Attributes[k] = val
	}
	for _, tags := range v["tags"] {
		var m map[string]string
		if err := json.Unmarshal([]byte(tags), &m); err != nil {
			return q, nil, fmt.Errorf("malformed 'tags' parameter, cannot unmarshal JSON: %w", err)
		}
		if q.Attributes == nil {
			q.Attributes = map[string]string{}
		}
		for k, val := range m {
			q.Attributes[k] = val
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return q, nil, parseError("limit", err)
		}
		if n < 1 || n > MaxSearchDepth {
			return q, nil, parseError("limit", fmt.Errorf("%d, want 1 to %d", n, MaxSearchDepth))
		}
		q.NumTraces = int(n)
	}
	for _, p := range []struct {
		name string
		d    *time.Duration
	}{{"minDuration", &q.DurationMin}, {"maxDuration", &q.DurationMax}} {
		if s := v.Get(p.name); s != "" {
			if *p.d, err = time.ParseDuration(s); err != nil {
				return q, nil, parseError(p.name, err)
			}
		}
	}
	if q.DurationMin != 0 && q.DurationMax != 0 && q.DurationMax < q.DurationMin {
		return q, nil, errors.New("'maxDuration' should be greater than 'minDuration'")
	}
	if err := checkBool(v, "raw"); err != nil {
		return q, nil, err
	}
	if len(v["traceID"]) > MaxSearchDepth {
		return q, nil, fmt.Errorf("%d trace IDs, want at most %d", len(v["traceID"]), MaxSearchDepth)
	}
	var ids []TraceID
	for _, s := range v["traceID"] {
		id, err := parseAPITraceID(s)
		if err != nil {
			return q, nil, fmt.Errorf("cannot parse traceID param: %w", err)
		}
		ids = append(ids, id)
	}
	return q, ids, nil
}

// parseLookback reads the UI's lookback: a count and a unit letter, as its search form
// writes it (5m, 1h, 2d, 1w).
func parseLookback(s string) (time.Duration, error) {
	units := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	unit, ok := units[s[len(s)-1]]
	n, err := strconv.Atoi(s[:len(s)-1])
	if !ok || err != nil || n < 1 || n > 10_000 {
		return 0, parseError("lookback", fmt.Errorf("%q: want a count and %s", s, uiLookbackUnits))
	}
	return time.Duration(n) * unit, nil
}

func parseMicros(name, s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, parseError(name, err)
	}
	return time.UnixMicro(n), nil
}

func checkBool(v url.Values, name string) error {
	if s := v.Get(name); s != "" {
		if _, err := strconv.ParseBool(s); err != nil {
			return parseError(name, err)
		}
	}
	return nil
}

func parseError(name string, err error) error {
	return fmt.Errorf("unable to parse param '%s': %w", name, err)
}

// uiDependencies counts the calls between services over [endTs-lookback, endTs]
// (milliseconds; by default the last day), those of one service only with ?service=.
func (c *Collector) uiDependencies(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	end := time.Now()
	lookback := defaultDependencyLookback
	if s := v.Get("endTs"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeUIError(w, http.StatusBadRequest, parseError("endTs", err).Error(), "")
			return
		}
		end = time.UnixMilli(n)
	}
	if s := v.Get("lookback"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err == nil && n < 0 {
			err = errors.New("negative")
		}
		if err != nil {
			writeUIError(w, http.StatusBadRequest, parseError("lookback", err).Error(), "")
			return
		}
		lookback = time.Duration(n) * time.Millisecond
	}
	links := c.store.Dependencies(end.Add(-lookback), end)
	if service := v.Get("service"); service != "" {
		links = slices.DeleteFunc(links, func(l DependencyLink) bool { return l.Parent != service && l.Child != service })
	}
	writeJSON(w, http.StatusOK, uiResponse{Data: links})
}

// writeUITraces answers traces in the UI's model, encoding one trace at a time as it
// writes, so that a large answer costs the memory of its largest trace, not of the whole.
func (c *Collector) writeUITraces(w http.ResponseWriter, tds []*tracepb.TracesData, errs []uiError) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.WriteString(`{"data":[`)
	first := true
	for _, td := range tds {
		b, err := json.Marshal(uiTraceOf(td))
		if err != nil { // every value is one JSON can hold (uiKeyValueOf): not seen
			c.log.Error("encode trace", "err", err)
			continue
		}
		if !first {
			_ = bw.WriteByte(',')
		}
		first = false
		_, _ = bw.Write(b)
	}
	tail, _ := json.Marshal(errs) // a list of plain structs
	_, _ = fmt.Fprintf(bw, `],"total":0,"limit":0,"offset":0,"errors":%s}`+"\n", tail)
	_ = bw.Flush()
}
