package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

const testToken = "test-admin-token"

// startMonolith runs the monolith's real wiring (HTTP on a real socket, JetStream embedded in
// dataDir) until the test ends or the returned stop is called.
func startMonolith(t *testing.T, dataDir string) (baseURL string, stop func()) {
	t.Helper()
	return startMonolithAt(t, "127.0.0.1:0", dataDir)
}

// startMonolithAt is startMonolith on a given address, so that a restarted monolith can
// come back where its clients expect it.
func startMonolithAt(t *testing.T, addr, dataDir string) (baseURL string, stop func()) {
	t.Helper()
	cfg := config{Addr: addr, DataDir: dataDir, AdminToken: testToken, DrainTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- run(ctx, cfg, logger, func(a net.Addr) { addrs <- a }) }()
	select {
	case a := <-addrs:
		baseURL = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("monolith did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("monolith not listening after 60s")
	}
	var once sync.Once
	stop = func() { once.Do(func() { stopNow(t, cancel, done) }) }
	t.Cleanup(stop)
	return baseURL, stop
}

// stopNow cancels a running monolith and waits for run to return.
func stopNow(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	{
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("monolith stopped with: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("monolith did not stop within 60s")
		}
	}
}

// testWriter sends the monolith's warnings and errors to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestBehaviour runs the whole API behaviour suite against the monolith, with the
// telemetry its main sets up (exporting nowhere): the propagators that continue a caller's
// trace, which API.md promises, are part of it.
func TestBehaviour(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	shutdown, _, err := telemetry.Setup(t.Context(), telemetry.Options{ServiceName: "monolith",
		Architecture: telemetry.Monolith, LogLevel: slog.LevelWarn, LogOutput: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	baseURL, _ := startMonolith(t, t.TempDir())
	apitest.Run(t, apitest.Target{BaseURL: baseURL, AdminToken: testToken})
}

// TestRestartKeepsState stops the monolith and starts it again on the same data dir: carts,
// orders (with their shipping), stock and notifications are all still there, and the
// restarted process serves new checkouts.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	baseURL, stop := startMonolith(t, dir)
	c := apitest.NewClient(apitest.Target{BaseURL: baseURL, AdminToken: testToken})

	p := c.NewProduct(t, 1999, 350)
	c.AddStock(t, p.ID, 5)
	buyer, waiting := apitest.NewID("buyer"), apitest.NewID("waiting")
	c.AddToCart(t, buyer, p.ID, 2)
	order := c.Checkout(t, apitest.NewID("key"), apitest.NewCheckout(buyer, apitest.CardApproved))
	c.Eventually(t, "order shipped before restart", func() (bool, string) {
		o := c.GetOrder(t, order.ID)
		return o.Status == "shipped", o.Status
	})
	c.AddToCart(t, waiting, p.ID, 1)
	stop()

	// Same address, same client: its record of the stock it added spans the restart, so the
	// conservation check at the end covers both runs.
	startMonolithAt(t, strings.TrimPrefix(baseURL, "http://"), dir)
	got := c.GetOrder(t, order.ID)
	if got.Status != "shipped" || got.TrackingID == "" || got.Total != order.Total {
		t.Fatalf("order after restart = %+v, want shipped with a tracking id and total %+v", got, order.Total)
	}
	if hist := c.Orders(t, buyer); len(hist) != 1 || hist[0].ID != order.ID {
		t.Fatalf("history after restart = %+v, want just %s", hist, order.ID)
	}
	if s := c.Inventory(t, p.ID); s.Available != 3 || s.Reserved != 0 || s.Sold != 2 {
		t.Fatalf("stock after restart = %+v, want 3 available, 2 sold", s)
	}
	if cart := c.Cart(t, waiting); len(cart.Items) != 1 || cart.Items[0].ProductID != p.ID || cart.Items[0].Quantity != 1 {
		t.Fatalf("cart after restart = %+v, want 1 x %s", cart, p.ID)
	}
	if n := c.Notifications(t, buyer); len(n) != 2 {
		t.Fatalf("notifications after restart = %+v, want order-paid and order-shipped", n)
	}
	if q := c.Product(t, p.ID); q.Price.Units != 1999 {
		t.Fatalf("product after restart = %+v", q)
	}
	second := c.Checkout(t, apitest.NewID("key"), apitest.NewCheckout(waiting, apitest.CardApproved))
	if second.ID == order.ID {
		t.Fatal("a new checkout after restart returned the old order")
	}
	c.CheckConservation(t)
}

// TestShutdownDrainsRequestsInFlight starts a request, asks the monolith to stop while the
// request's body is still arriving, then finishes it: the request is served, not cut off.
func TestShutdownDrainsRequestsInFlight(t *testing.T) {
	baseURL, stop := startMonolith(t, t.TempDir())
	c := apitest.NewClient(apitest.Target{BaseURL: baseURL, AdminToken: testToken})
	p := c.NewProduct(t, 500, 100)

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(baseURL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := fmt.Sprintf(`{"product_id":%q,"quantity":3}`, p.ID)
	// "Expect: 100-continue" makes the server say when the handler starts reading the body:
	// from then on the request is in flight, and a drain must let it finish.
	fmt.Fprintf(conn, "POST /v1/carts/drain-user/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("want 100 Continue, got %q (%v)", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line after the interim response
		t.Fatal(err)
	}
	half := len(body) / 2
	fmt.Fprint(conn, body[:half])

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// Shutdown closes the listener first; once new connections are refused it is draining.
	deadline := time.Now().Add(10 * time.Second)
	for {
		probe, err := net.DialTimeout("tcp", strings.TrimPrefix(baseURL, "http://"), time.Second)
		if err != nil {
			break
		}
		probe.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting 10s after stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-stopped:
		t.Fatal("monolith stopped with a request in flight")
	default:
	}
	fmt.Fprint(conn, body[half:])
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the drained response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drained request: status %d, want 200", resp.StatusCode)
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("monolith did not stop after the request finished")
	}
}
