package tracecollect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MetricsPath is where the query server answers with the metrics it keeps: a path of its
// own, outside Jaeger's /api/metrics (the Monitor tab's, in a format of its own).
const MetricsPath = "/api/otlp/metrics"

// MetricsResponse is the answer of MetricsPath: the series selected, with their points, and
// what the store holds.
type MetricsResponse struct {
	Series []MetricSeries `json:"series"`
	Stats  MetricStats    `json:"stats"`
}

// routeMetrics serves GET /api/otlp/metrics: the series of the last minutes, selected by
//
//	name     a metric name, exact (repeat it or join names with commas for several)
//	service  a service.name (likewise)
//	arch     a mitosis.architecture
//	start, end   RFC 3339 times bounding the points (by when they were measured)
func (c *Collector) routeMetrics(mux *http.ServeMux) {
	mux.HandleFunc("GET "+MetricsPath, func(w http.ResponseWriter, r *http.Request) {
		q, err := parseMetricQuery(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		series := c.metrics.Series(q)
		if series == nil {
			series = []MetricSeries{}
		}
		writeJSON(w, http.StatusOK, MetricsResponse{Series: series, Stats: c.metrics.Stats()})
	})
}

func parseMetricQuery(v url.Values) (MetricQuery, error) {
	q := MetricQuery{Names: splitList(v["name"]), Services: splitList(v["service"]), Arch: v.Get("arch")}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"start", &q.Start}, {"end", &q.End}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, fmt.Errorf("malformed parameter %s: want an RFC 3339 time: %v", p.name, err)
			}
			*p.to = t
		}
	}
	if !q.Start.IsZero() && !q.End.IsZero() && q.End.Before(q.Start) {
		return q, fmt.Errorf("end %s is before start %s", q.End.Format(time.RFC3339Nano), q.Start.Format(time.RFC3339Nano))
	}
	return q, nil
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Metrics asks a collector's MetricsPath for the series q selects.
func (c Client) Metrics(ctx context.Context, q MetricQuery) (MetricsResponse, error) {
	v := url.Values{}
	for _, n := range q.Names {
		v.Add("name", n)
	}
	for _, s := range q.Services {
		v.Add("service", s)
	}
	if q.Arch != "" {
		v.Set("arch", q.Arch)
	}
	if !q.Start.IsZero() {
		v.Set("start", q.Start.UTC().Format(time.RFC3339Nano))
	}
	if !q.End.IsZero() {
		v.Set("end", q.End.UTC().Format(time.RFC3339Nano))
	}
	var out MetricsResponse
	status, body, err := c.fetch(ctx, MetricsPath+"?"+v.Encode())
	if err != nil {
		return out, fmt.Errorf("query metrics: %w", err)
	}
	if status.code != http.StatusOK {
		return out, fmt.Errorf("query metrics: %s: %s", status.text, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, fmt.Errorf("query metrics: %w", err)
	}
	return out, nil
}
