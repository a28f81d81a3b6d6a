package host_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestProbesFollowGRPCHealth runs a context on its own, over mutual TLS, with probes on
// SHOP_HEALTH_ADDR, and asks them as an orchestrator does, with no certificate: /readyz says
// what gRPC health tells a caller with one (SERVING, then NOT_SERVING while the store is
// down, then SERVING again), /healthz stays 200 while the connection reconnects and is 503
// while the group is rebuilt on a new one after the old one closed for good.
func TestProbesFollowGRPCHealth(t *testing.T) {
	ns := hosttest.StartNATS(t)
	h := hosttest.Start(t, "catalog", map[string]string{"SHOP_NATS_URL": ns.URL(), host.HealthAddrEnv: "127.0.0.1:0"})
	g := h.Next(t)
	if h.ProbesURL == "" {
		t.Fatal("the host did not say where its probes listen")
	}
	conn, err := grpc.NewClient(h.GRPCAddr, grpc.WithTransportCredentials(hosttest.Security(t, identity.Tooling).ClientCredentials("catalog")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	healthOf := func() healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return resp.GetStatus()
	}
	c := apitest.NewClient(apitest.Target{BaseURL: h.ProbesURL})
	// waitFor polls until /healthz and /readyz answer alive and ready, and gRPC health says
	// serving, all three as given.
	waitFor := func(what string, alive, ready int, serving healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		c.Eventually(t, what, func() (bool, string) {
			a, r := probe(t, h.ProbesURL+"/healthz"), probe(t, h.ProbesURL+"/readyz")
			s := healthOf()
			return a.status == alive && r.status == ready && s == serving,
				"/healthz " + a.String() + ", /readyz " + r.String() + ", gRPC health " + s.String()
		})
	}

	waitFor("serving", http.StatusOK, http.StatusOK, healthpb.HealthCheckResponse_SERVING)
	if got := probe(t, h.ProbesURL+"/readyz"); got.body != `{"status":"ok"}` || got.contentType != "application/json" {
		t.Errorf("/readyz when ready: %s, want the edge's body", got)
	}

	ns.Stop()
	waitFor("the store down: alive, not ready", http.StatusOK, http.StatusServiceUnavailable, healthpb.HealthCheckResponse_NOT_SERVING)
	got := probe(t, h.ProbesURL+"/readyz")
	var p struct {
		Type, Detail string
		Status       int
	}
	if err := json.Unmarshal([]byte(got.body), &p); err != nil || got.contentType != "application/problem+json" ||
		p.Type != "https://mitosis.dev/problems/unavailable" || p.Status != 503 || !strings.HasPrefix(p.Detail, "not ready: ") {
		t.Errorf("/readyz with the store down: %s, want an unavailable problem saying why (%v)", got, err)
	}
	ns.Start()
	waitFor("the store back", http.StatusOK, http.StatusOK, healthpb.HealthCheckResponse_SERVING)

	// Closed for good with nothing to reconnect to: not alive until the group is rebuilt.
	ns.Stop()
	g.Conn().Close()
	c.Eventually(t, "/healthz 503 while the group waits for a new store connection", func() (bool, string) {
		a := probe(t, h.ProbesURL+"/healthz")
		return a.status == http.StatusServiceUnavailable, a.String()
	})
	if r := probe(t, h.ProbesURL+"/readyz"); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while no generation serves: %s", r)
	}
	ns.Start()
	h.Next(t)
	waitFor("rebuilt on a new connection", http.StatusOK, http.StatusOK, healthpb.HealthCheckResponse_SERVING)

	// The probes' port answers them and nothing else.
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/metrics", ""},
		{http.MethodGet, "/v1/products", ""},
		{http.MethodPost, "/readyz", "GET"},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, h.ProbesURL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Allow") != tc.allow ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s on the probes' port: %s, Allow %q, want a 404 problem, Allow %q",
				tc.method, tc.path, resp.Status, resp.Header.Get("Allow"), tc.allow)
		}
	}
}

type probeAnswer struct {
	status      int
	contentType string
	body        string
}

func (a probeAnswer) String() string {
	return http.StatusText(a.status) + " " + a.contentType + " " + a.body
}

// probe GETs url as a prober does: no certificate, no trace headers, a short timeout.
func probe(t *testing.T, url string) probeAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return probeAnswer{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return probeAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: strings.TrimSpace(string(b))}
}
