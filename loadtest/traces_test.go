package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The trace breakdown never fails a run: each way of not having traces becomes the section's
// reason, in words a reader can act on. (The comparison itself is platform/tracecompare's,
// tested there; a real run against a live collector is in the report of `make load`.)
func TestCollectTracesSaysWhyNot(t *testing.T) {
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
	}))
	t.Cleanup(empty.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	sides := [2]TraceSideSource{{Label: "monolith", Service: "monolith"}, {Label: "services", Service: "gateway"}}
	for _, tc := range []struct {
		collector, want string
	}{
		{"", "no trace collector was given"},
		{goneURL, "no trace collector answered"},
		{empty.URL, `holds no trace of "POST /v1/checkout" from service "monolith"`},
	} {
		got := CollectTraces(context.Background(), TraceSource{Collector: tc.collector, Sides: sides}, t.TempDir())
		if got.Collected || !strings.Contains(got.Reason, tc.want) {
			t.Errorf("collector %q: collected %v, reason %q; want %q", tc.collector, got.Collected, got.Reason, tc.want)
		}
	}
}
