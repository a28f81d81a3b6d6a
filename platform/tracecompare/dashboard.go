package tracecompare

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// Routes adds the collector's dashboard to its query server (tracecollect.Config.Routes):
//
//	GET /          the latest traces, with a search form and links to each trace's waterfall
//	               and JSON (the collector's own page: /search, /trace/{id}) and to a comparison
//	GET /compare   the comparison page; parameters a and b (trace IDs), or a_service,
//	               b_service, operation and last (default: the latest checkout of each edge)
func Routes(mux *http.ServeMux, store *tracecollect.Store) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = indexTemplate.Execute(w, struct {
			Traces   []tracecollect.Summary
			Stats    tracecollect.Stats
			Services []string
		}{store.Recent(50), store.Stats(), store.Services()})
	})
	mux.HandleFunc("GET /compare", func(w http.ResponseWriter, r *http.Request) {
		c, status, err := compareFromStore(store, r)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = c.HTML(w)
	})
}

func compareFromStore(store *tracecollect.Store, r *http.Request) (*Comparison, int, error) {
	q := r.URL.Query()
	get := func(k, def string) string {
		if v := q.Get(k); v != "" {
			return v
		}
		return def
	}
	last, err := strconv.Atoi(get("last", "1"))
	if err != nil || last < 1 || last > 1000 {
		return nil, http.StatusBadRequest, fmt.Errorf("last=%q: want 1..1000", q.Get("last"))
	}
	side := func(id, service string) ([]*Trace, int, error) {
		if id != "" {
			tid, err := tracecollect.ParseTraceID(id)
			if err != nil {
				return nil, http.StatusBadRequest, err
			}
			td := store.Trace(tid)
			if td == nil {
				return nil, http.StatusNotFound, fmt.Errorf("no trace %s", id)
			}
			ts, err := FromOTLP(td)
			return ts, http.StatusInternalServerError, err
		}
		op := get("operation", DefaultOperation)
		var out []*Trace
		for _, td := range store.Find(tracecollect.Query{ServiceName: service, OperationName: op, NumTraces: last}) {
			ts, err := FromOTLP(td)
			if err != nil {
				return nil, http.StatusInternalServerError, err
			}
			out = append(out, ts...)
		}
		if len(out) == 0 {
			return nil, http.StatusNotFound, fmt.Errorf("no trace of %q on service %q", op, service)
		}
		return out, 0, nil
	}
	a, status, err := side(q.Get("a"), get("a_service", "monolith"))
	if err != nil {
		return nil, status, err
	}
	b, status, err := side(q.Get("b"), get("b_service", "gateway"))
	if err != nil {
		return nil, status, err
	}
	c, err := Compare(get("a_label", "monolith"), a, get("b_label", "services"), b)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	return c, 0, nil
}

var indexTemplate = template.Must(template.New("index").Funcs(template.FuncMap{
	"ms":   func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) },
	"when": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"mib":  func(n int) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mitosis traces</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330}
table{border-collapse:collapse} td,th{padding:3px 14px 3px 0;text-align:left;white-space:nowrap} th{border-bottom:1px solid #ccd}
code{font-size:12px} form{display:flex;gap:10px;align-items:flex-end;flex-wrap:wrap;margin:12px 0}
label{display:flex;flex-direction:column;font-size:12px;color:#5b6472} input,select,button{font:inherit;padding:3px 6px}</style></head><body>
<h1>mitosis traces</h1>
<p>{{.Stats.Traces}} traces, {{.Stats.Spans}} of at most {{.Stats.MaxSpans}} spans kept in {{mib .Stats.Bytes}} of at most {{mib .Stats.MaxBytes}} ({{.Stats.Evicted}} traces dropped).
<a href="/compare">Compare the latest checkout of each architecture</a> ·
<a href="/compare?last=20">the last 20</a> · query APIs: Jaeger's <code>/api/v3/traces?query.service_name=…</code>, and the Jaeger UI's <code>/api/traces?service=…</code></p>
<form action="/search" method="get">
<label>Service <select name="service"><option value="">all services</option>{{range .Services}}<option>{{.}}</option>{{end}}</select></label>
<label>Operation <input name="operation" placeholder="e.g. POST /v1/checkout"></label>
<label>Min duration <input name="minDuration" placeholder="e.g. 5ms" size="8"></label>
<label>Time window <select name="lookback"><option value="5m">last 5 minutes</option><option value="1h" selected>last hour</option><option value="24h">last day</option></select></label>
<button type="submit">Search</button></form>
<table><tr><th>started (UTC)</th><th>service</th><th>root span</th><th>duration</th><th>spans</th><th>trace</th></tr>
{{range .Traces}}<tr><td>{{when .Start}}</td><td>{{.Service}}</td><td><a href="/trace/{{.ID}}">{{.Name}}</a></td><td>{{ms .Duration}}</td><td>{{.Spans}}</td>
<td><a href="/trace/{{.ID}}"><code>{{.ID}}</code></a> <a href="/api/v3/traces/{{.ID}}">JSON</a></td></tr>
{{end}}</table></body></html>
`))
