package stack_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// healthz answers 500 with nats-server's body to the first `failures` requests, then 200.
func healthz(t *testing.T, failures int64) (addr string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) <= failures {
			http.Error(w, `{"status":"error","error":"failed to be ready for connections after 1ms: "}`, http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), requests
}

// A status calls a service unready when its probe keeps failing, not on one failure; the
// reason the service gave is in the error.
func TestCheckSteady(t *testing.T) {
	probe := topology.Probe{Kind: topology.HTTP, Path: "/healthz?js-enabled-only=true"}
	for _, tc := range []struct {
		failures, wantRequests int64
		ready                  bool
	}{
		{failures: 0, wantRequests: 1, ready: true},
		{failures: 2, wantRequests: 3, ready: true},
		{failures: 1000, wantRequests: 3, ready: false},
	} {
		addr, requests := healthz(t, tc.failures)
		err := stack.CheckSteady(context.Background(), probe, addr, "")
		if (err == nil) != tc.ready || requests.Load() != tc.wantRequests {
			t.Errorf("%d failures: %v after %d requests, want ready %v after %d", tc.failures, err, requests.Load(), tc.ready, tc.wantRequests)
		}
		if err != nil && (!strings.Contains(err.Error(), "500 Internal Server Error: {") || !strings.Contains(err.Error(), "failed to be ready for connections")) {
			t.Errorf("the error does not say what the service answered: %v", err)
		}
	}
}
