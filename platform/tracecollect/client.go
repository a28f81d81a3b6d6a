package tracecollect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Client reads traces from a query API in Jaeger's /api/v3 format: this collector's, or a
// Jaeger v2 query service's.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:16686
	HTTP    *http.Client // nil means a client with a 30s timeout
}

// ErrNotFound is returned when the API has no such trace, or no trace matches.
var ErrNotFound = fmt.Errorf("trace not found")

// Trace returns one trace by its ID (32 hex digits).
func (c Client) Trace(ctx context.Context, id string) (*tracepb.TracesData, error) {
	if _, err := ParseTraceID(id); err != nil {
		return nil, err
	}
	return c.get(ctx, "/api/v3/traces/"+id)
}

// DefaultLookback is how far back a Find without StartMin looks: a Jaeger query service
// requires a time window, and the local stack's traces are recent.
const DefaultLookback = 24 * time.Hour

// defaultFindDepth is the search depth of a Find whose NumTraces is 0 (as Store.Find's).
const defaultFindDepth = 20

// Find returns the traces matching q, one TracesData each, newest first. It asks as a Jaeger
// v2 query service requires (the parameters of apiv3.go, under the snake_case names every
// v2 release reads): always with the time window, in RFC 3339 with nanoseconds, UTC (a zero
// StartMax is now, a zero StartMin DefaultLookback before StartMax), and with the search
// depth (q.NumTraces, 20 if 0, at most MaxSearchDepth, which this collector answers) as
// query.search_depth and as query.num_traces, the name Jaeger v2.0 to v2.18 read (their
// memory storage refuses a search without it).
func (c Client) Find(ctx context.Context, q Query) ([]*tracepb.TracesData, error) {
	end := q.StartMax
	if end.IsZero() {
		end = time.Now()
	}
	start := q.StartMin
	if start.IsZero() {
		start = end.Add(-DefaultLookback)
	}
	if !start.Before(end) {
		return nil, fmt.Errorf("find traces: the window's start %s is not before its end %s", start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	}
	depth := min(q.NumTraces, MaxSearchDepth)
	if depth <= 0 {
		depth = defaultFindDepth
	}
	v := url.Values{}
	if q.ServiceName != "" {
		v.Set(paramServiceName.alias, q.ServiceName)
	}
	if q.OperationName != "" {
		v.Set(paramOperationName.alias, q.OperationName)
	}
	v.Set(paramTimeMin.alias, start.UTC().Format(time.RFC3339Nano))
	v.Set(paramTimeMax.alias, end.UTC().Format(time.RFC3339Nano))
	v.Set(paramSearchDepth.alias, strconv.Itoa(depth))
	v.Set(paramNumTraces, strconv.Itoa(depth))
	if q.DurationMin > 0 {
		v.Set(paramDurationMin.alias, q.DurationMin.String())
	}
	if q.DurationMax > 0 {
		v.Set(paramDurationMax.alias, q.DurationMax.String())
	}
	if len(q.Attributes) > 0 {
		b, err := json.Marshal(q.Attributes)
		if err != nil {
			return nil, fmt.Errorf("find traces: attributes: %w", err)
		}
		v.Set(paramAttributes, string(b))
	}
	td, err := c.get(ctx, "/api/v3/traces?"+v.Encode())
	if err != nil {
		return nil, err
	}
	return SplitTraces(td), nil
}

func (c Client) get(ctx context.Context, path string) (*tracepb.TracesData, error) {
	status, body, err := c.fetch(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("query traces: %w", err)
	}
	if status.code == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if status.code != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("query traces: %s: %s", status.text, e.Error.Message)
		}
		return nil, fmt.Errorf("query traces: %s: %s", status.text, bytes.TrimSpace(body))
	}
	return UnmarshalTraces(body)
}

// answer is an HTTP response's status: its code, and its line ("404 Not Found").
type answer struct {
	code int
	text string
}

// fetch GETs path of the collector's API and returns the status and the body (at most
// 256 MiB): what every query of the collector reads.
func (c Client) fetch(ctx context.Context, path string) (answer, []byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.BaseURL, "/")+path, nil)
	if err != nil {
		return answer{}, nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return answer{}, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return answer{}, nil, err
	}
	return answer{res.StatusCode, res.Status}, body, nil
}

// SplitTraces splits td into one TracesData per trace, newest (by earliest span start)
// first.
func SplitTraces(td *tracepb.TracesData) []*tracepb.TracesData {
	type one struct {
		td    *tracepb.TracesData
		start uint64
	}
	byID := map[string]*one{}
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				id := string(sp.GetTraceId())
				t := byID[id]
				if t == nil {
					t = &one{td: &tracepb.TracesData{}, start: sp.GetStartTimeUnixNano()}
					byID[id] = t
				}
				t.start = min(t.start, sp.GetStartTimeUnixNano())
				addSpan(t.td, rs, ss, sp)
			}
		}
	}
	list := make([]*one, 0, len(byID))
	for _, t := range byID {
		list = append(list, t)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].start > list[j].start })
	out := make([]*tracepb.TracesData, len(list))
	for i, t := range list {
		out[i] = t.td
	}
	return out
}

// addSpan appends sp to td under rs's resource and ss's scope, reusing the last group when
// it is the same.
func addSpan(td *tracepb.TracesData, rs *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, sp *tracepb.Span) {
	var r *tracepb.ResourceSpans
	if n := len(td.ResourceSpans); n > 0 && td.ResourceSpans[n-1].Resource == rs.Resource {
		r = td.ResourceSpans[n-1]
	} else {
		r = &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
		td.ResourceSpans = append(td.ResourceSpans, r)
	}
	var s *tracepb.ScopeSpans
	if n := len(r.ScopeSpans); n > 0 && r.ScopeSpans[n-1].Scope == ss.Scope {
		s = r.ScopeSpans[n-1]
	} else {
		s = &tracepb.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
		r.ScopeSpans = append(r.ScopeSpans, s)
	}
	s.Spans = append(s.Spans, sp)
}
