// Package telemetrytest reads a binary's Prometheus endpoint (telemetry.Options.MetricsAddr)
// the way Prometheus does, for tests that check what a running process reports: one scrape
// over HTTP, parsed by Prometheus's own text parser, and the sums of the series a test asks
// about; and, in process, what a meter provider's reader collects (Collect).
package telemetrytest

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape gets http://addr/metrics once, as Prometheus would, and parses it.
func Scrape(tb testing.TB, addr string) Families {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+telemetry.MetricsPath, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("scrape %s: %s: %s", addr, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("scrape %s: parse: %v", addr, err)
	}
	return fams
}

// Sum adds up, over the series of the family name whose labels include every one of want,
// the counter or gauge value, or the histogram's count of observations. found is false when
// no series matches.
func (f Families) Sum(name string, want map[string]string) (sum float64, found bool) {
	fam, ok := f[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !has(m, want) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// Labels lists, for each series of the family name, its labels; for messages.
func (f Families) Labels(name string) []map[string]string {
	var out []map[string]string
	for _, m := range f[name].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		out = append(out, l)
	}
	return out
}

// LabelValues lists the values the label key takes in the family name, once each.
func (f Families) LabelValues(name, key string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range f.Labels(name) {
		if v, ok := l[key]; ok && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func has(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, p := range m.GetLabel() {
		if v, ok := want[p.GetName()]; ok {
			if v != p.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
