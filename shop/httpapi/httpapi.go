// Package httpapi is the shop's public HTTP API (the contract in API.md): routing, request
// decoding, the mapping of domain errors to RFC 9457 problem documents, admin
// authentication, and the edge concerns every request shares (deadline, panic recovery,
// access log, the request's span and its trace headers). It composes contexts only where the API needs a fact no single context owns
// (a cart line or a stock count needs the product to exist in the catalog); every rule of
// the shop itself stays in the contexts. It knows nothing of where a context runs: the
// monolith hands it in-process implementations, the gateway gRPC clients.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// Config is what the API needs: the contexts it serves and the edge settings.
type Config struct {
	Catalog       catalog.Service
	Carts         cart.Service
	Inventory     inventory.Service
	Orders        orders.Service
	Notifications notify.Service

	AdminToken string                          // "" disables the admin routes (always 401)
	Ready      func(ctx context.Context) error // /readyz; nil means always ready
	Logger     *slog.Logger                    // nil discards
	Timeout    time.Duration                   // per-request deadline; 0 means DefaultTimeout
	// BodyTimeout bounds the wait for a request's body, from the start of its handling; 0
	// means DefaultBodyTimeout. A body that has not arrived in full by then is answered 400.
	BodyTimeout time.Duration
	// MaxInFlight bounds the requests the edge works on at once; past it a request is
	// answered 503 unavailable at once, with Retry-After. 0 means DefaultMaxInFlight.
	MaxInFlight int

	// TracerProvider, MeterProvider and Propagator instrument the edge (otelhttp): a SERVER
	// span per request, named "<method> <route pattern>", continuing the caller's trace when
	// the request carries one (traceparent, or X-Amzn-Trace-Id if the propagator reads it),
	// and HTTP server metrics. nil means OpenTelemetry's globals as they are at New (the
	// global tracer provider forwards to an SDK installed later).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// DefaultTimeout is the per-request deadline when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// DefaultBodyTimeout is Config.BodyTimeout when 0. With DefaultTimeout after it, it stays
// within the server's write timeout (Serve's 30 s): a client that announces a body and does
// not send it all gets its 400, where a read deadline as long as the write deadline left
// the answer unwritable and the connection closed without one.
const DefaultBodyTimeout = 15 * time.Second

// DefaultMaxInFlight is Config.MaxInFlight when 0. An overload must cost the requests in
// excess, not the process: without a bound, an edge of 60 MiB offered 800 req/s more than it
// could serve queued them until the kernel killed it for memory (make compare, run
// 20261204-184659), and nothing answered after that. At the shop's latencies, a few ms,
// 256 requests at once is a queue far past any SLO, so the bound never turns a served
// request away.
const DefaultMaxInFlight = 256

// MaxBodyBytes is the largest request body the API reads (API.md: 1 MiB); larger is 413.
const MaxBodyBytes = 1 << 20

// api holds the configuration and the per-process state of the handlers.
type api struct {
	cfg       Config
	log       *slog.Logger
	timeout   time.Duration
	bodyWait  time.Duration     // Config.BodyTimeout
	adminHash [sha256.Size]byte // of AdminToken; compared in constant time
	mux       *chi.Mux
	buffers   sync.Pool // *jsonBuffer, reused by every JSON response and request body
	writers   sync.Pool // *statusWriter, one per request in flight: its handler is done with it when the edge is
	schemas   schemas
	inFlight  chan struct{} // a slot per request being worked on (Config.MaxInFlight)
	busy      Problem
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	a := &api{cfg: cfg, log: cfg.Logger, timeout: cfg.Timeout, schemas: newSchemas()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.timeout <= 0 {
		a.timeout = DefaultTimeout
	}
	a.bodyWait = cfg.BodyTimeout
	if a.bodyWait <= 0 {
		a.bodyWait = DefaultBodyTimeout
	}
	limit := cfg.MaxInFlight
	if limit <= 0 {
		limit = DefaultMaxInFlight
	}
	a.inFlight = make(chan struct{}, limit)
	a.busy = newProblem(CodeUnavailable, fmt.Sprintf("the server works on %d requests already, its limit; retry in a second (checkout: with the same Idempotency-Key)", limit))
	if cfg.AdminToken != "" {
		a.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
	}
	a.buffers.New = newJSONBuffer
	a.writers.New = func() any { return new(statusWriter) }
	a.mux = a.routes()
	// The tracer provider is always given: without one, otelhttp looks its tracer up in the
	// global provider on every request (a map under a lock, 0.6% of a traced checkout's CPU).
	// The global provider forwards to an SDK installed after New, so nothing is lost.
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	opts := []otelhttp.Option{otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
		otelhttp.WithTracerProvider(tp)}
	if cfg.MeterProvider != nil {
		opts = append(opts, otelhttp.WithMeterProvider(cfg.MeterProvider))
	}
	if cfg.Propagator != nil {
		opts = append(opts, otelhttp.WithPropagators(cfg.Propagator))
	}
	return otelhttp.NewHandler(a.edge(a.mux), "http", opts...)
}

// routes is the API's route table, one line per row of API.md's endpoint table, and the
// OpenAPI document's route; openapi.yaml has exactly these (TestRoutesMatchOpenAPI).
func (a *api) routes() *chi.Mux {
	r := chi.NewMux()
	r.Use(nameSpan)
	r.NotFound(a.notFound)
	r.MethodNotAllowed(a.wrongMethod)

	r.Get("/healthz", a.healthz)
	r.Get("/readyz", a.readyz)
	r.Get(OpenAPIPath, a.openAPI)

	// A route that ends in an ID also answers the empty ID (see EmptyIDPath).
	withEmptyID := func(method, pattern string, h http.HandlerFunc) {
		r.MethodFunc(method, pattern, h)
		if empty, ok := EmptyIDPath(pattern); ok {
			r.MethodFunc(method, empty, h)
		}
	}

	r.Get("/v1/products", a.listProducts)
	withEmptyID(http.MethodGet, "/v1/products/{id}", a.getProduct)

	withEmptyID(http.MethodGet, "/v1/carts/{user_id}", a.getCart)
	r.Post("/v1/carts/{user_id}/items", a.addToCart)
	withEmptyID(http.MethodDelete, "/v1/carts/{user_id}", a.clearCart)

	r.Post("/v1/checkout", a.checkout)
	withEmptyID(http.MethodGet, "/v1/orders/{id}", a.getOrder)
	r.Get("/v1/users/{user_id}/orders", a.listOrders)

	withEmptyID(http.MethodGet, "/v1/inventory/{product_id}", a.getInventory)
	r.Get("/v1/users/{user_id}/notifications", a.listNotifications)

	withEmptyID(http.MethodPut, "/v1/admin/products/{id}", a.admin(a.putProduct))
	withEmptyID(http.MethodPost, "/v1/admin/inventory/{product_id}", a.admin(a.addStock))
	return r
}

// EmptyIDPath returns the path of pattern's route with "" for the ID it ends in
// ("/v1/carts/" of "/v1/carts/{user_id}"), and whether pattern ends in one. chi matches no
// empty parameter at the end of a path, but an empty ID is one of API.md's IDs that break
// its rule (1..128 bytes): "/v1/carts/" is 400 invalid-argument as GET /v1/carts/{user_id}
// answers any bad user ID, not an unknown route. An empty ID inside a path
// ("/v1/users//orders") is chi's parameter "" already.
func EmptyIDPath(pattern string) (string, bool) {
	i := strings.LastIndexByte(pattern, '{')
	if i < 1 || pattern[i-1] != '/' || !strings.HasSuffix(pattern, "}") {
		return "", false
	}
	return pattern[:i], true
}

// edge wraps the router in what every request shares, outermost first. It is THE place for
// request-wide middleware. otelhttp wraps the result of this function, so that the span sees
// the final status of recovered panics too; the trace headers are set here, before anything
// is written, so that every response carries them, problems and 404s included, also in a
// process without an OpenTelemetry SDK (see namedSpan).
func (a *api) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		made := trace.SpanContextFromContext(r.Context())
		named := namedSpan(made)
		setTraceHeaders(w.Header(), named)
		// API.md refuses every request body over 1 MiB, also on a route that reads none. A
		// declared length says so before anything else; an undeclared one (chunked, rare:
		// clients send a Content-Length with a body they hold) is read up to the limit once
		// the request holds its in-flight place, which bounds the memory such reads take.
		if r.ContentLength != 0 { // a body to read, declared or chunked
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(a.bodyWait))
		}
		if r.ContentLength > MaxBodyBytes {
			a.tooLarge(w, r.Body)
			return
		}
		// The probes are never turned away: an edge at its limit is alive and ready.
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			select {
			case a.inFlight <- struct{}{}:
				defer func() { <-a.inFlight }()
			default:
				w.Header().Set("Retry-After", "1")
				a.writeProblem(w, a.busy)
				return
			}
		}
		if r.ContentLength < 0 {
			body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
			if err != nil {
				w.Header().Set("Connection", "close")
				a.writeProblem(w, newProblem(CodeInvalidArgument, a.bodyReadError(err)))
				return
			}
			if len(body) > MaxBodyBytes {
				a.tooLarge(w, r.Body)
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		if !made.IsValid() {
			// No SDK made the request's span: the request runs in the unsampled trace its
			// response names, so that what is made under it knows it is not recorded (the
			// contexts' call spans are then not made at all, see shop/traced) rather than
			// start a trace of its own per call.
			ctx = trace.ContextWithSpanContext(ctx, named)
		}
		logged := a.log.Enabled(ctx, slog.LevelDebug)
		var start time.Time
		if logged {
			start = time.Now()
		}
		rw := a.writers.Get().(*statusWriter)
		*rw = statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				a.recovered(rw, r, v)
			}
			if logged {
				a.log.LogAttrs(ctx, slog.LevelDebug, "http request",
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.Int("status", rw.statusOr200()),
					slog.Int64("bytes", rw.bytes),
					slog.Duration("duration", time.Since(start)))
			}
			*rw = statusWriter{} // let go of the server's writer
			a.writers.Put(rw)
		}()
		next.ServeHTTP(rw, r.WithContext(ctx))
	})
}

// tooLarge answers a request whose body is over MaxBodyBytes, after reading some more of it
// (see drain), and closes the connection on it.
func (a *api) tooLarge(w http.ResponseWriter, body io.Reader) {
	w.Header().Set("Connection", "close")
	a.drain(w, body)
	p, _ := problemFor(&http.MaxBytesError{Limit: MaxBodyBytes})
	a.writeProblem(w, p)
}

// statusWriter remembers the status and size of a response, for the access log and so that
// a recovered panic knows whether a problem document can still be written.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) statusOr200() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
