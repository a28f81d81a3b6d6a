package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// TestStatusShowsWhereEachProcessServesMetrics runs the monolith architecture and the
// collector with the process runtime, as `up` does, and reads through the CLI where their
// metrics are: the host's line names a /metrics on 127.0.0.1 that answers with the requests
// it served, the collector's and NATS's ones that answer with their own figures; and the
// host's metrics reach the collector over OTLP, where /api/otlp/metrics serves them.
func TestStatusShowsWhereEachProcessServesMetrics(t *testing.T) {
	root, state, name := repoRoot(t), t.TempDir(), stacktest.StackName(t)
	topo, err := topology.Get(topology.Monolith, topology.Options{Collector: "127.0.0.1:0", MonolithEdge: stacktest.AnyPort})
	if err != nil {
		t.Fatal(err)
	}
	rt := processrt.New(processrt.Options{Root: root, State: filepath.Join(state, "run"), Stack: name, AnyPorts: true})
	t.Cleanup(func() {
		if _, err := rt.Down(context.Background(), stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := rt.Up(ctx, topo, stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute}); err != nil {
		t.Fatalf("up: %v", err)
	}
	edge := stacktest.EdgeAddr(t, rt, topo, topology.Monolith)
	const requests = 3
	for range requests {
		resp, err := http.Get("http://" + edge + "/v1/products")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/products: %s", resp.Status)
		}
	}

	common := []string{"--runtime", "process", "--root", root, "--state", state, "--stack", name}
	code, out, errOut := runCLI(t, append([]string{"status", "--json"}, common...)...)
	if code != exitOK {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	var rows []struct {
		Service string `json:"service"`
		Addr    string `json:"addr"`
		Metrics string `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	metrics, addrs := map[string]string{}, map[string]string{}
	for _, r := range rows {
		metrics[r.Service], addrs[r.Service] = r.Metrics, r.Addr
	}
	natsMetrics, ok := strings.CutPrefix(metrics["nats"], "http://")
	if !ok {
		t.Fatalf("NATS's metrics: %q\n%s", metrics["nats"], out)
	}
	if n, _ := telemetrytest.Scrape(t, strings.TrimSuffix(natsMetrics, "/metrics")).Sum("nats_messages_received_total", nil); n < 1 {
		t.Errorf("NATS's /metrics counts %v messages received, after the monolith's start", n)
	}
	addr, ok := strings.CutPrefix(metrics["monolith"], "http://127.0.0.1:")
	if !ok || !strings.HasSuffix(addr, "/metrics") {
		t.Fatalf("the monolith's metrics: %q, want http://127.0.0.1:<port>/metrics\n%s", metrics["monolith"], out)
	}
	fams := telemetrytest.Scrape(t, "127.0.0.1:"+strings.TrimSuffix(addr, "/metrics"))
	if n, _ := fams.Sum("http_server_request_duration_seconds", map[string]string{"http_route": "/v1/products"}); n < requests {
		t.Errorf("the monolith counts %v requests to /v1/products, want %d at least; series %v", n, requests, fams.Labels("http_server_request_duration_seconds"))
	}
	if n, ok := fams.Sum("go_goroutine_count", nil); !ok || n < 1 {
		t.Errorf("go_goroutine_count = %v (found %v)", n, ok)
	}

	collectorMetrics, ok := strings.CutPrefix(metrics["collector"], "http://")
	if !ok {
		t.Fatalf("the collector's metrics: %q\n%s", metrics["collector"], out)
	}
	if _, ok := telemetrytest.Scrape(t, strings.TrimSuffix(collectorMetrics, "/metrics")).Sum("mitosis_collector_spans_received_total", nil); !ok {
		t.Errorf("the collector's /metrics lacks mitosis_collector_spans_received_total")
	}
	// The host pushes its metrics every tracecollect.MetricExportInterval.
	cl := tracecollect.Client{BaseURL: "http://" + addrs["collector"]}
	stacktest.WaitFor(t, 3*tracecollect.MetricExportInterval, func() (bool, string) {
		res, err := cl.Metrics(t.Context(), tracecollect.MetricQuery{Names: []string{"http.server.request.duration"}, Arch: topology.Monolith})
		if err != nil {
			return false, err.Error()
		}
		var n uint64
		for _, s := range res.Series {
			if s.Attributes["http.route"] == "/v1/products" && len(s.Points) > 0 {
				n += s.Points[len(s.Points)-1].Count
			}
		}
		return n >= requests, fmt.Sprintf("%d requests to /v1/products in the collector's metrics (%d series)", n, len(res.Series))
	})

	code, out, _ = runCLI(t, append([]string{"status"}, common...)...)
	if code != exitOK || !strings.Contains(out, "METRICS") || !strings.Contains(out, metrics["monolith"]) {
		t.Errorf("status: exit %d, want the monolith's metrics address in a METRICS column\n%s", code, out)
	}
}
