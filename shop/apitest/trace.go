package apitest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"testing"
)

// The trace headers every response carries (API.md), their parts captured: traceresponse's
// trace ID and span ID, X-Amzn-Trace-Id's Root (in two parts) and Parent.
var (
	traceResponse = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)
	amznTraceID   = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=[01]$`)
)

// responseTrace returns the trace ID and span ID a response names, failing t unless both of
// its trace headers are there and name the same span.
func responseTrace(t testing.TB, what string, r *Response) (traceID, spanID string) {
	t.Helper()
	tr := traceResponse.FindStringSubmatch(r.Header.Get("traceresponse"))
	xr := amznTraceID.FindStringSubmatch(r.Header.Get("X-Amzn-Trace-Id"))
	if tr == nil || xr == nil {
		t.Fatalf("%s: traceresponse %q, X-Amzn-Trace-Id %q", what, r.Header.Get("traceresponse"), r.Header.Get("X-Amzn-Trace-Id"))
	}
	if xr[1]+xr[2] != tr[1] || xr[3] != tr[2] {
		t.Fatalf("%s: the trace headers name different spans: %q and %q", what, tr[0], xr[0])
	}
	return tr[1], tr[2]
}

// newTraceID returns a random trace ID and a random span ID, in hex.
func newTraceID(t testing.TB) (traceID, spanID string) {
	t.Helper()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
}

// testTraceHeaders: every response names its trace, successes and problems alike, and a
// request that carries a trace, as traceparent or as X-Amzn-Trace-Id (its root alone, or
// with a parent), continues it: the response names the caller's trace. (Its span is the
// request's own where an SDK makes spans; a deployment that makes none may name the caller's.)
func testTraceHeaders(t *testing.T, c *Client) {
	requests := []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"health", http.MethodGet, "/healthz", nil, http.StatusOK},
		{"a product list", http.MethodGet, "/v1/products", nil, http.StatusOK},
		{"an unknown route", http.MethodGet, "/v1/nope", nil, http.StatusNotFound},
		{"a bad request", http.MethodPost, "/v1/carts/" + NewID("u") + "/items", `{}`, http.StatusBadRequest},
		{"a body over 1 MiB", http.MethodPost, "/v1/carts/" + NewID("u") + "/items", make([]byte, MaxBodyBytes+1), http.StatusRequestEntityTooLarge},
	}
	for _, rq := range requests {
		t.Run(rq.name, func(t *testing.T) {
			send := func(h http.Header) *Response {
				r := c.Invalid().Request(t, rq.method, rq.path, h, rq.body)
				if r.Status != rq.status {
					t.Fatalf("%s %s: %s, want %d", rq.method, rq.path, r, rq.status)
				}
				return r
			}
			first, _ := responseTrace(t, "no trace sent", send(nil))
			second, _ := responseTrace(t, "no trace sent", send(nil))
			if first == second {
				t.Errorf("two requests without a trace both name trace %s, want one each", first)
			}

			trace, parent := newTraceID(t)
			for name, h := range map[string]http.Header{
				"traceparent":                        {"Traceparent": {"00-" + trace + "-" + parent + "-01"}},
				"X-Amzn-Trace-Id of Root":            {"X-Amzn-Trace-Id": {"Root=1-" + trace[:8] + "-" + trace[8:]}},
				"X-Amzn-Trace-Id of Root and Parent": {"X-Amzn-Trace-Id": {"Root=1-" + trace[:8] + "-" + trace[8:] + ";Parent=" + parent + ";Sampled=1"}},
			} {
				if got, _ := responseTrace(t, name, send(h)); got != trace {
					t.Errorf("%s of trace %s: the response names trace %s", name, trace, got)
				}
			}
		})
	}
}
