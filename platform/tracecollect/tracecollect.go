// Package tracecollect is mitosis's trace collector: OTLP receivers (gRPC and HTTP, protobuf
// or JSON) feeding a bounded in-memory store, and the query APIs of a Jaeger v2 query
// service over it, so that `mitosis traces compare` and the tools people already use read
// the traces of every architecture from one place: Jaeger's api_v3 over HTTP (apiv3.go), and
// the JSON API the Jaeger UI and Grafana's Jaeger data source read (jaegerui.go, in Jaeger's
// model: uimodel.go). Its own page (page.go) searches and draws a trace's waterfall from that
// same API. Metrics sent to it are kept for their last minutes, within a byte bound
// (metricstore.go), and served as JSON at /api/otlp/metrics (metricsapi.go) for the load
// report; logs are accepted and counted, not kept.
//
// It is a development collector: no persistence, no authentication, no tail sampling. Users
// who run Jaeger, Tempo or AWS X-Ray (through the ADOT collector) point the standard OTLP
// variables there instead.
package tracecollect

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP/gRPC exporters may compress with gzip
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Default listen addresses (DESIGN.md).
const (
	DefaultGRPCAddr  = "127.0.0.1:4317"
	DefaultHTTPAddr  = "127.0.0.1:4318"
	DefaultQueryAddr = "127.0.0.1:16686"
)

// MaxRequestBytes bounds one OTLP request, after decompression, on either receiver; a larger
// one is refused (OTLP/HTTP: 413 with a Status body; OTLP/gRPC: RESOURCE_EXHAUSTED) before
// more than this is read or inflated. The SDKs send batches of 512 spans by default, about
// 130 KiB of protobuf for the shop's spans (254 bytes each on average, measured on a
// monolith checkout), so 8 MiB leaves room for batches 60 times larger.
const MaxRequestBytes = 8 << 20

// timeouts bound how long a client holds a connection of the collector without making
// progress: one that sends slowly, never finishes, idles or sends endless headers holds no
// connection and no memory for long.
type timeouts struct {
	// header bounds reading a request's headers (HTTP) or a connection's preface and
	// handshake (gRPC).
	header time.Duration
	// read covers a whole HTTP request, body included: MaxRequestBytes at 300 KB/s.
	read time.Duration
	// write bounds an OTLP/HTTP answer, which is small (not the query API's pages).
	write time.Duration
	// idle closes a connection that carries no request for that long: exporters send every
	// few seconds and keep theirs.
	idle time.Duration
	// age is how long a gRPC connection lives: then it is told to go away, and closed once
	// read more has passed. gRPC has no read deadline of its own: a call whose message
	// trickles in would otherwise hold its connection for ever. Exporters dial again.
	age time.Duration
}

var defaultTimeouts = timeouts{header: 10 * time.Second, read: 30 * time.Second, write: 30 * time.Second, idle: 2 * time.Minute,
	age: 5 * time.Minute}

// maxHeaderBytes bounds an HTTP request's headers.
const maxHeaderBytes = 64 << 10

// Config is where the collector listens and how much it keeps.
type Config struct {
	GRPCAddr  string // OTLP/gRPC; "" means DefaultGRPCAddr
	HTTPAddr  string // OTLP/HTTP; "" means DefaultHTTPAddr
	QueryAddr string // the query APIs, the trace page and the dashboard; "" means DefaultQueryAddr
	MaxSpans  int    // the store's bound in spans; 0 means DefaultMaxSpans
	MaxBytes  int    // the store's bound in bytes (Store's estimate); 0 means DefaultMaxBytes
	// MetricWindow and MaxMetricBytes bound the metric store (MetricStore); 0 means
	// DefaultMetricWindow and DefaultMaxMetricBytes.
	MetricWindow   time.Duration
	MaxMetricBytes int
	Logger         *slog.Logger
	// Routes, if set, adds routes to the query API's server (the dashboard, which lives in
	// a package that reads this one).
	Routes func(mux *http.ServeMux, store *Store)
}

// Collector is a running collector.
type Collector struct {
	store   *Store
	metrics *MetricStore
	costs   *decodeCosts
	log     *slog.Logger
	grpc    *grpc.Server
	http    *http.Server
	query   *http.Server
	lns     [3]net.Listener // grpc, http, query
	served  sync.WaitGroup

	metricPoints atomic.Int64
	logRecords   atomic.Int64
}

// Start listens on the three addresses and serves in the background until Close.
func Start(cfg Config) (*Collector, error) { return start(cfg, defaultTimeouts) }

func start(cfg Config, to timeouts) (*Collector, error) {
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultGRPCAddr
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.QueryAddr == "" {
		cfg.QueryAddr = DefaultQueryAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{store: NewStore(cfg.MaxSpans, cfg.MaxBytes), metrics: NewMetricStore(cfg.MetricWindow, cfg.MaxMetricBytes, nil), log: cfg.Logger,
		costs: newDecodeCosts((&coltracepb.ExportTraceServiceRequest{}).ProtoReflect().Descriptor(),
			(&colmetricspb.ExportMetricsServiceRequest{}).ProtoReflect().Descriptor(),
			(&collogspb.ExportLogsServiceRequest{}).ProtoReflect().Descriptor())}
	for i, addr := range []string{cfg.GRPCAddr, cfg.HTTPAddr, cfg.QueryAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range c.lns[:i] {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		c.lns[i] = ln
	}

	// grpc-go checks a message's size on the wire against MaxRecvMsgSize, and inflates a
	// compressed one through a reader that stops one byte past it (rpc_util.go, decompress):
	// a gzip bomb costs MaxRequestBytes, not its inflated size. The codec refuses a message
	// over MaxDecodedBytes before decoding it.
	// A connection that never finishes its handshake is closed after to.header, one that
	// carries no call after to.idle, any after to.age and to.read more (GOAWAY, then closed).
	c.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(MaxRequestBytes), grpc.ForceServerCodecV2(newBoundedCodec(c.costs)),
		grpc.ConnectionTimeout(to.header), grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: to.idle, MaxConnectionAge: to.age, MaxConnectionAgeGrace: to.read}))
	coltracepb.RegisterTraceServiceServer(c.grpc, traceService{c: c})
	colmetricspb.RegisterMetricsServiceServer(c.grpc, metricsService{c: c})
	collogspb.RegisterLogsServiceServer(c.grpc, logsService{c: c})

	otlp := http.NewServeMux()
	otlp.HandleFunc("POST /v1/traces", c.postTraces)
	otlp.HandleFunc("POST /v1/metrics", c.postMetrics)
	otlp.HandleFunc("POST /v1/logs", c.postLogs)
	c.http = c.newServer(otlp, to)
	c.http.WriteTimeout = to.write
	query := c.queryHandler()
	if cfg.Routes != nil {
		cfg.Routes(query, c.store)
	}
	c.query = c.newServer(query, to)

	c.served.Go(func() { _ = c.grpc.Serve(c.lns[0]) })
	c.served.Go(func() { _ = c.http.Serve(c.lns[1]) })
	c.served.Go(func() { _ = c.query.Serve(c.lns[2]) })
	c.log.Info("collector listening", "otlp_grpc", c.lns[0].Addr().String(), "otlp_http", c.lns[1].Addr().String(),
		"query", c.lns[2].Addr().String(), "max_spans", c.store.maxSpans, "max_bytes", c.store.maxBytes,
		"metric_window", c.metrics.window.String(), "max_metric_bytes", c.metrics.maxBytes)
	return c, nil
}

func (c *Collector) newServer(h http.Handler, to timeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: to.header, ReadTimeout: to.read,
		IdleTimeout: to.idle, MaxHeaderBytes: maxHeaderBytes, ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}
}

// GRPCAddr, HTTPAddr and QueryAddr are the bound addresses (host:port).
func (c *Collector) GRPCAddr() string  { return c.lns[0].Addr().String() }
func (c *Collector) HTTPAddr() string  { return c.lns[1].Addr().String() }
func (c *Collector) QueryAddr() string { return c.lns[2].Addr().String() }

// MetricsReceived is how many metrics (OTLP Metric messages) exporters sent.
func (c *Collector) MetricsReceived() int64 { return c.metricPoints.Load() }

// Metrics is the collector's metric store.
func (c *Collector) Metrics() *MetricStore { return c.metrics }

// Store is the collector's store.
func (c *Collector) Store() *Store { return c.store }

// Close stops accepting, lets exports in flight finish (until ctx ends) and returns.
func (c *Collector) Close(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		c.grpc.GracefulStop()
		close(stopped)
	}()
	errs := []error{c.http.Shutdown(ctx), c.query.Shutdown(ctx)}
	select {
	case <-stopped:
	case <-ctx.Done():
		c.grpc.Stop()
		<-stopped
	}
	c.served.Wait()
	return errors.Join(errs...)
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	c *Collector
}

func (s traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	return s.c.exportTraces(req), nil
}

func (c *Collector) exportTraces(req *coltracepb.ExportTraceServiceRequest) *coltracepb.ExportTraceServiceResponse {
	res := &coltracepb.ExportTraceServiceResponse{}
	if rejected := c.store.Add(req.GetResourceSpans()); rejected > 0 {
		res.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: rejected,
			ErrorMessage: "spans without a 16-byte trace ID and an 8-byte span ID"}
	}
	return res
}

type metricsService struct {
	colmetricspb.UnimplementedMetricsServiceServer
	c *Collector
}

func (s metricsService) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	s.c.countMetrics(req)
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

func (c *Collector) countMetrics(req *colmetricspb.ExportMetricsServiceRequest) {
	n := 0
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			n += len(sm.GetMetrics())
		}
	}
	c.metricPoints.Add(int64(n))
	c.metrics.Add(req.GetResourceMetrics())
}

type logsService struct {
	collogspb.UnimplementedLogsServiceServer
	c *Collector
}

func (s logsService) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	s.c.countLogs(req)
	return &collogspb.ExportLogsServiceResponse{}, nil
}

func (c *Collector) countLogs(req *collogspb.ExportLogsServiceRequest) {
	n := 0
	for _, rl := range req.GetResourceLogs() {
		for _, sl := range rl.GetScopeLogs() {
			n += len(sl.GetLogRecords())
		}
	}
	c.logRecords.Add(int64(n))
}

// OTLP/HTTP: protobuf or JSON bodies, gzip or not; the answer in the request's encoding.

func (c *Collector) postTraces(w http.ResponseWriter, r *http.Request) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if json, ok := c.readOTLP(w, r, req); ok {
		c.writeOTLP(w, json, c.exportTraces(req))
	}
}

func (c *Collector) postMetrics(w http.ResponseWriter, r *http.Request) {
	req := &colmetricspb.ExportMetricsServiceRequest{}
	if json, ok := c.readOTLP(w, r, req); ok {
		c.countMetrics(req)
		c.writeOTLP(w, json, &colmetricspb.ExportMetricsServiceResponse{})
	}
}

func (c *Collector) postLogs(w http.ResponseWriter, r *http.Request) {
	req := &collogspb.ExportLogsServiceRequest{}
	if json, ok := c.readOTLP(w, r, req); ok {
		c.countLogs(req)
		c.writeOTLP(w, json, &collogspb.ExportLogsServiceResponse{})
	}
}

// readOTLP decodes the body into m and reports whether it was JSON; on failure it has
// answered. A body over MaxRequestBytes, before or after decompression, is refused once
// MaxRequestBytes+1 bytes are read, or at once when its Content-Length says so; one that
// would take over MaxDecodedBytes decoded, before it is decoded.
func (c *Collector) readOTLP(w http.ResponseWriter, r *http.Request, m proto.Message) (isJSON, ok bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-protobuf":
	case "application/json":
		isJSON = true
	default:
		writeFailure(w, false, http.StatusUnsupportedMediaType, "Content-Type must be application/x-protobuf or application/json")
		return false, false
	}
	refuse := func(msg string) (bool, bool) {
		c.log.Warn("OTLP/HTTP request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", msg)
		writeFailure(w, isJSON, http.StatusRequestEntityTooLarge, msg)
		return false, false
	}
	tooLarge := fmt.Sprintf("request body over %d bytes (after decompression)", MaxRequestBytes)
	if r.ContentLength > MaxRequestBytes {
		return refuse(tooLarge)
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	switch r.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			writeFailure(w, isJSON, http.StatusBadRequest, "bad gzip body: "+err.Error())
			return false, false
		}
		defer zr.Close()
		body = io.LimitReader(zr, MaxRequestBytes+1)
	default:
		writeFailure(w, isJSON, http.StatusUnsupportedMediaType, "unsupported Content-Encoding")
		return false, false
	}
	b, err := io.ReadAll(body)
	var over *http.MaxBytesError
	switch {
	case errors.As(err, &over) || err == nil && len(b) > MaxRequestBytes:
		return refuse(tooLarge)
	case err != nil:
		writeFailure(w, isJSON, http.StatusBadRequest, "read body: "+err.Error())
		return false, false
	}
	if isJSON {
		err = checkJSON(b)
	} else {
		err = c.costs.check(b, m.ProtoReflect().Descriptor())
	}
	if errors.Is(err, errTooLarge) {
		return refuse(fmt.Sprintf("request would take over %d bytes decoded", MaxDecodedBytes))
	}
	if err == nil {
		if isJSON {
			err = UnmarshalJSON(b, m)
		} else {
			err = proto.Unmarshal(b, m)
		}
	}
	if err != nil {
		writeFailure(w, isJSON, http.StatusBadRequest, "decode body: "+err.Error())
		return false, false
	}
	return isJSON, true
}

func (c *Collector) writeOTLP(w http.ResponseWriter, isJSON bool, m proto.Message) {
	b, err := marshalOTLP(isJSON, m)
	if err != nil {
		writeFailure(w, isJSON, http.StatusInternalServerError, err.Error())
		return
	}
	setContentType(w, isJSON)
	_, _ = w.Write(b)
}

// writeFailure answers an OTLP/HTTP request that failed as the specification says: the HTTP
// status, and a google.rpc.Status in the request's encoding (the specification leaves its
// code to the server: the gRPC code that gRPC's receiver answers for the same failure).
func writeFailure(w http.ResponseWriter, isJSON bool, httpStatus int, msg string) {
	code := codes.InvalidArgument
	switch httpStatus {
	case http.StatusRequestEntityTooLarge:
		code = codes.ResourceExhausted
	case http.StatusInternalServerError:
		code = codes.Internal
	}
	b, err := marshalOTLP(isJSON, status.New(code, msg).Proto())
	if err != nil { // a Status of a code and a string always encodes
		http.Error(w, msg, httpStatus)
		return
	}
	setContentType(w, isJSON)
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}

func marshalOTLP(isJSON bool, m proto.Message) ([]byte, error) {
	if isJSON {
		return MarshalJSON(m)
	}
	return proto.Marshal(m)
}

func setContentType(w http.ResponseWriter, isJSON bool) {
	if isJSON {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
}

// The query server: Jaeger's query APIs (apiv3.go: api_v3 over HTTP; jaegerui.go: the JSON
// API the Jaeger UI and Grafana read), the trace page (page.go), health and counters.

func (c *Collector) queryHandler() *http.ServeMux {
	mux := http.NewServeMux()
	c.routeAPIv3(mux)
	c.routeJaegerUI(mux)
	c.routeMetrics(mux)
	routePage(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"store": c.store.Stats(), "metrics": c.metrics.Stats(),
			"metric_points_received": c.metricPoints.Load(), "log_records_received": c.logRecords.Load()})
	})
	return mux
}

// ParseTraceID parses 32 hex digits.
func ParseTraceID(s string) (TraceID, error) {
	var id TraceID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("trace ID %q: want 32 hex digits", s)
	}
	copy(id[:], b)
	return id, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
