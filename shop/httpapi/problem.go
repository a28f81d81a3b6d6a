package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// ProblemTypePrefix starts the type URL of every problem document; the code follows it.
const ProblemTypePrefix = "https://mitosis.dev/problems/"

// Problem codes: API.md's eight, and internal, this package's answer to a bug.
const (
	CodeInvalidArgument = "invalid-argument"
	CodeUnauthorized    = "unauthorized"
	CodePaymentDeclined = "payment-declined"
	CodeNotFound        = "not-found"
	CodeConflict        = "conflict"
	CodeOutOfStock      = "out-of-stock"
	CodePayloadTooLarge = "payload-too-large"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

// Problem is an RFC 9457 problem document, exactly the fields API.md shows.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// problemKinds is the status and title of every problem code: the one place they are
// written (openapi.yaml's problem schemas are checked against it).
var problemKinds = map[string]struct {
	status int
	title  string
}{
	CodeInvalidArgument: {http.StatusBadRequest, "Invalid argument"},
	CodeUnauthorized:    {http.StatusUnauthorized, "Unauthorized"},
	CodePaymentDeclined: {http.StatusPaymentRequired, "Payment declined"},
	CodeNotFound:        {http.StatusNotFound, "Not found"},
	CodeConflict:        {http.StatusConflict, "Conflict"},
	CodeOutOfStock:      {http.StatusConflict, "Out of stock"},
	CodePayloadTooLarge: {http.StatusRequestEntityTooLarge, "Payload too large"},
	CodeUnavailable:     {http.StatusServiceUnavailable, "Service unavailable"},
	CodeInternal:        {http.StatusInternalServerError, "Internal error"},
}

// newProblem returns the problem of code with its status and title.
func newProblem(code, detail string) Problem {
	k, ok := problemKinds[code]
	if !ok { // only a bug gets here: every code is in the table
		code, k = CodeInternal, problemKinds[CodeInternal]
	}
	return Problem{Type: ProblemTypePrefix + code, Title: k.title, Status: k.status, Detail: detail}
}

// unavailableDetail is all a client learns of an unexpected failure; the log has the rest.
const unavailableDetail = "a dependency is unavailable or timed out; retry (checkout: with the same Idempotency-Key)"

// problemFor is THE mapping of errors to problem documents: errors.Is on the contexts'
// sentinels, never the text of a message. The detail is the message of the error the
// context made (the *validation.Error naming the field, the *OutOfStockError naming the
// product, the payments sentinel saying why), not of the wrapping chain, so that it reads the
// same whichever transport brought the error. The second result says the error is
// unexpected: the caller logs it.
func problemFor(err error) (Problem, bool) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return newProblem(CodePayloadTooLarge, fmt.Sprintf("the request body is over %d bytes", tooLarge.Limit)), false
	case errors.Is(err, validation.ErrInvalid):
		var v *validation.Error
		if errors.As(err, &v) {
			return newProblem(CodeInvalidArgument, v.Error()), false
		}
		return newProblem(CodeInvalidArgument, err.Error()), false
	case errors.Is(err, catalog.ErrNotFound):
		return newProblem(CodeNotFound, "no product has that id"), false
	case errors.Is(err, orders.ErrNotFound):
		return newProblem(CodeNotFound, "no order has that id"), false
	case errors.Is(err, inventory.ErrOutOfStock):
		var oos *inventory.OutOfStockError
		if errors.As(err, &oos) {
			return newProblem(CodeOutOfStock, oos.Error()), false
		}
		return newProblem(CodeOutOfStock, err.Error()), false
	case errors.Is(err, orders.ErrIdempotencyConflict):
		return newProblem(CodeConflict, orders.ErrIdempotencyConflict.Error()), false
	case errors.Is(err, payments.ErrDeclined):
		return newProblem(CodePaymentDeclined, declineDetail(err)), false
	default: // context.DeadlineExceeded, context.Canceled, a store or a peer down, a bug
		return newProblem(CodeUnavailable, unavailableDetail), true
	}
}

// declineDetail says why a card was declined, in words that differ for each reason.
func declineDetail(err error) string {
	for _, reason := range []error{payments.ErrCardDeclined, payments.ErrInsufficientFunds, payments.ErrCardExpired} {
		if errors.Is(err, reason) {
			return reason.Error()
		}
	}
	return err.Error()
}

// fail writes the problem document for err, logging the unexpected ones.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	p, unexpected := problemFor(err)
	if unexpected {
		level := slog.LevelError
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			level = slog.LevelWarn
		}
		a.log.LogAttrs(r.Context(), level, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	a.writeProblem(w, p)
}

// recovered answers a request whose handler panicked: the panic is a bug, logged with its
// stack; the client gets a 500 internal problem if nothing was written yet.
func (a *api) recovered(w *statusWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		panic(v) // net/http's way to abort a response; it must reach the server
	}
	a.log.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
	if w.status != 0 {
		return // the status line is gone; the client sees a truncated body
	}
	a.writeProblem(w, newProblem(CodeInternal, "internal error"))
}

func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	a.writeProblem(w, newProblem(CodeNotFound, "no route for "+r.Method+" "+r.URL.Path))
}

// wrongMethod answers a known path with a method it does not serve: 404 not-found, as an
// unknown route. API.md's endpoints are methods and paths, its unknown routes are 404
// not-found, and its problems have the eight codes of its table, which hold no 405. The Allow
// header still says which methods the path serves. chi calls this also for methods it does
// not know on any path; a path no method serves is plainly unknown.
func (a *api) wrongMethod(w http.ResponseWriter, r *http.Request) {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var allowed []string
	for _, m := range [...]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if a.mux.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		a.notFound(w, r)
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	a.writeProblem(w, newProblem(CodeNotFound,
		"no route for "+r.Method+" "+r.URL.Path+"; this path serves "+strings.Join(allowed, ", ")))
}

// Unavailable answers every request with a 503 unavailable problem saying detail: what an
// edge serves while it has nothing behind it to serve with (its process is rebuilding on a
// new store connection), liveness and readiness included. Like every answer of the API it
// names its trace (API.md): a server span of OpenTelemetry's global tracer provider, which is
// what New's edges use by default, continuing the caller's trace as the global propagator
// reads it.
func Unavailable(detail string) http.Handler {
	p := newProblem(CodeUnavailable, detail)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		_, span := otel.Tracer(tracerName).Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
		span.SetStatus(codes.Error, detail)
		defer span.End()
		setTraceHeaders(w.Header(), namedSpan(span.SpanContext()))
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(&p) // a write error means the client is gone
	})
}
