package telemetry_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

func startCollector(t *testing.T) *tracecollect.Collector {
	t.Helper()
	c, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// clearEnv unsets the variables Setup reads, so that the machine's environment does not
// leak into a test, and turns exporting off: by default spans would go to localhost:4318,
// where a stack of this machine may be collecting. A test that exports says where.
func clearEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_TRACES_EXPORTER",
		"OTEL_METRICS_EXPORTER", "AWS_XRAY_DAEMON_ADDRESS", "OTEL_TRACES_SAMPLER", "OTEL_BSP_MAX_QUEUE_SIZE",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_PROPAGATORS"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
}

// exportByDefault sets the exporters back to unset: the specification's default, otlp.
func exportByDefault(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_METRICS_EXPORTER", "")
}

// Every span ended before shutdown reaches the collector, over either OTLP protocol, with
// the resource naming the service and the architecture, and an X-Ray trace ID.
func TestShutdownFlushesEverySpan(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			clearEnv(t)
			c := startCollector(t)
			addr := c.HTTPAddr()
			if protocol == "grpc" {
				addr = c.GRPCAddr()
			}
			exportByDefault(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "orders", Architecture: telemetry.Services, Version: "1.2.3"})
			if err != nil {
				t.Fatal(err)
			}
			// More spans than one batch (512), from several goroutines, ended just before the
			// shutdown: only the final flush sends most of them.
			const workers, each = 4, 1000
			tracer := otel.Tracer("test")
			began := time.Now()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					ctx, root := tracer.Start(context.Background(), "root")
					for range each - 1 {
						_, s := tracer.Start(ctx, "child")
						s.End()
					}
					root.End()
				})
			}
			wg.Wait()
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if st := c.Store().Stats(); st.Spans != workers*each || st.Traces != workers {
				t.Fatalf("collector has %d spans in %d traces, want %d in %d", st.Spans, st.Traces, workers*each, workers)
			}
			found := c.Store().Find(tracecollect.Query{ServiceName: "orders", OperationName: "root"})
			if len(found) != workers {
				t.Fatalf("%d traces of service orders", len(found))
			}
			res := map[string]string{}
			for _, kv := range found[0].ResourceSpans[0].GetResource().GetAttributes() {
				res[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			if res["service.name"] != "orders" || res["service.version"] != "1.2.3" || res[string(telemetry.ArchitectureKey)] != "services" {
				t.Errorf("resource %v", res)
			}
			// X-Ray's ID generator: the trace ID starts with the epoch seconds.
			tid := found[0].ResourceSpans[0].ScopeSpans[0].Spans[0].GetTraceId()
			if sec := int64(binary.BigEndian.Uint32(tid[:4])); sec < began.Unix()-1 || sec > time.Now().Unix()+1 {
				t.Errorf("trace ID %x does not start with the epoch seconds (%d)", tid, began.Unix())
			}
		})
	}
}

// Without any exporter configured, spans still have IDs and propagate in both W3C and
// X-Ray headers, and an X-Ray header alone is continued.
func TestWithoutExporterTraceContextStillPropagates(t *testing.T) {
	clearEnv(t)
	shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "monolith", Architecture: telemetry.Monolith})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	ctx, span := otel.Tracer("test").Start(context.Background(), "x")
	defer span.End()
	if !span.SpanContext().IsValid() || !span.SpanContext().IsSampled() {
		t.Fatalf("span context %v", span.SpanContext())
	}
	h := http.Header{}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	tid := span.SpanContext().TraceID().String()
	if !strings.Contains(h.Get("Traceparent"), tid) || !strings.HasPrefix(h.Get("X-Amzn-Trace-Id"), "Root=1-"+tid[:8]+"-"+tid[8:]) {
		t.Fatalf("injected %v", h)
	}

	in := http.Header{"X-Amzn-Trace-Id": {"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}
	sc := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(), propagation.HeaderCarrier(in)))
	if sc.TraceID().String() != "5759e988bd862e3fe1be46a994272793" || sc.SpanID().String() != "53995c3f42cd8ad8" || !sc.IsRemote() {
		t.Fatalf("extracted %v from an X-Ray header", sc)
	}
}

func TestLogLinesCarryTheirTrace(t *testing.T) {
	clearEnv(t)
	var out bytes.Buffer
	shutdown, logger, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "cart", LogOutput: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	ctx, span := otel.Tracer("test").Start(context.Background(), "x")
	logger.InfoContext(ctx, "inside", "k", "v")
	logger.With("a", 1).WarnContext(ctx, "inside too")
	logger.Info("outside")
	span.End()

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("log %q", out.String())
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["service"] != "cart" {
			t.Errorf("line %d has no service: %s", i, line)
		}
		inside := i < 2
		if got := rec["trace_id"] == span.SpanContext().TraceID().String() && rec["span_id"] == span.SpanContext().SpanID().String(); got != inside {
			t.Errorf("line %d: trace fields %v, want %v: %s", i, got, inside, line)
		}
	}
}

func TestBadConfigurationInstallsNothing(t *testing.T) {
	for _, env := range [][2]string{{"OTEL_TRACES_EXPORTER", "zipkin"}, {"OTEL_METRICS_EXPORTER", "prometheus"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"}, {"AWS_XRAY_DAEMON_ADDRESS", "tcp:127.0.0.1:2000"},
		{"OTEL_PROPAGATORS", "b3"}, {"OTEL_PROPAGATORS", "none,tracecontext"}} {
		t.Run(env[0]+"="+env[1], func(t *testing.T) {
			clearEnv(t)
			exportByDefault(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			if env[0] == "AWS_XRAY_DAEMON_ADDRESS" {
				t.Setenv("OTEL_TRACES_EXPORTER", "xray")
			}
			t.Setenv(env[0], env[1])
			before := otel.GetTracerProvider()
			if _, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "x"}); err == nil {
				t.Fatal("Setup accepted a bad configuration")
			}
			if otel.GetTracerProvider() != before {
				t.Error("a failed Setup left its tracer provider installed")
			}
		})
	}
}

// OTEL_TRACES_EXPORTER=xray sends segments to AWS_XRAY_DAEMON_ADDRESS.
func TestXRayExporterIsSelectedByConfiguration(t *testing.T) {
	clearEnv(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "xray")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("AWS_XRAY_DAEMON_ADDRESS", pc.LocalAddr().String())
	shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "payments"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "charge", trace.WithSpanKind(trace.SpanKindServer))
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); !strings.HasPrefix(got, `{"format": "json", "version": 1}`+"\n") || !strings.Contains(got, `"name":"payments"`) {
		t.Fatalf("datagram %q", got)
	}
}

// With no exporter named and no endpoint, spans go over OTLP/HTTP (not HTTPS) to
// localhost:4318, as the specification says.
func TestDefaultExporterIsOTLPToLocalhost(t *testing.T) {
	clearEnv(t)
	exportByDefault(t)
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	c, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:4318", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Skipf("the default endpoint's port is taken (a stack of this machine?): %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "reserve")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("flush to the default endpoint: %v", err)
	}
	if got := c.Store().Stats().Spans; got != 1 {
		t.Fatalf("the collector on the default endpoint holds %d spans, want 1", got)
	}
}

// OTEL_PROPAGATORS chooses the headers read and written, in its order.
func TestPropagatorsFollowTheEnvironment(t *testing.T) {
	const (
		w3c  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		amzn = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	)
	for _, tc := range []struct {
		env, want string // want: the trace continued from a request carrying both headers
		writes    []string
	}{
		{"", "4bf92f3577b34da6a3ce929d0e0e4736", []string{"Traceparent", "X-Amzn-Trace-Id"}},
		{"tracecontext,xray", "5759e988bd862e3fe1be46a994272793", []string{"Traceparent", "X-Amzn-Trace-Id"}},
		{"xray", "5759e988bd862e3fe1be46a994272793", []string{"X-Amzn-Trace-Id"}},
		{"tracecontext, baggage", "4bf92f3577b34da6a3ce929d0e0e4736", []string{"Traceparent"}},
		{"none", "", nil},
	} {
		t.Run(tc.env, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("OTEL_PROPAGATORS", tc.env)
			shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "gateway"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = shutdown(context.Background()) })
			prop := otel.GetTextMapPropagator()
			ctx := prop.Extract(context.Background(), propagation.HeaderCarrier(http.Header{"Traceparent": {w3c}, "X-Amzn-Trace-Id": {amzn}}))
			got := ""
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				got = sc.TraceID().String()
			}
			if got != tc.want {
				t.Errorf("continued trace %q, want %q", got, tc.want)
			}
			ctx, span := otel.Tracer("test").Start(ctx, "call")
			defer span.End()
			out := http.Header{}
			prop.Inject(ctx, propagation.HeaderCarrier(out))
			var names []string
			for k := range out {
				names = append(names, k)
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.writes) {
				t.Errorf("writes %v, want %v", names, tc.writes)
			}
		})
	}
}
