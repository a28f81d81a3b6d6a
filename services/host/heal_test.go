package host_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// checkout buys one unit of a new product as a new user, through the edge.
func checkout(t *testing.T, c *apitest.Client) apitest.Order {
	t.Helper()
	p := c.NewProduct(t, 250, 100)
	c.AddStock(t, p.ID, 3)
	user := apitest.NewID("u")
	c.AddToCart(t, user, p.ID, 1)
	return c.Checkout(t, apitest.NewID("k"), apitest.NewCheckout(user, apitest.CardApproved))
}

// overControlLine closes a NATS connection for good, as the server does with any client
// that sends a line over 4 KB: the failure a 4,100-byte ID once caused through a KV key.
func overControlLine(t *testing.T, g *host.Generation) {
	t.Helper()
	_ = g.Conn().Publish(strings.Repeat("x", 5000), nil)
	_ = g.Conn().Flush()
}

// TestHealsAStoreConnectionClosedForGood: the monolith's store connection is closed for
// good, twice: the first time /healthz and every request say 503 while the store is down,
// then it builds itself again on a new connection, with its state, and takes checkouts.
func TestHealsAStoreConnectionClosedForGood(t *testing.T) {
	ns := hosttest.StartNATS(t)
	r := hosttest.Start(t, "edge+catalog+cart+inventory+payments+orders+shipping+notify", map[string]string{"SHOP_NATS_URL": ns.URL()})
	g := r.Next(t)
	c := apitest.NewClient(apitest.Target{BaseURL: r.BaseURL, AdminToken: hosttest.Token})
	before := checkout(t, c)

	// Store down, then the connection closed: nothing to reconnect to, so the host says
	// it cannot serve, on its liveness too, until the store is back.
	ns.Stop()
	g.Conn().Close()
	c.Eventually(t, "/healthz answers 503 while the store connection is lost", func() (bool, string) {
		resp, err := c.Do(t.Context(), http.MethodGet, "/healthz", nil, nil)
		if err != nil {
			return false, err.Error()
		}
		return resp.Status == http.StatusServiceUnavailable, resp.String()
	})
	ns.Start()
	g = r.Next(t)
	c.WaitReady(t)
	if got := c.GetOrder(t, before.ID); got.ID != before.ID {
		t.Fatalf("order before the loss: %+v", got)
	}
	checkout(t, c)

	// The way it happened for real: the server closes the connection after a line over its
	// limit, and the host is back at once.
	overControlLine(t, g)
	r.Next(t)
	c.WaitReady(t)
	checkout(t, c)
}

// TestHealsBehindItsGRPCAddress: a group serving over gRPC loses its store connection for
// good; it builds itself again at the same address, and the gateway in front of it serves
// again without being told anything.
func TestHealsBehindItsGRPCAddress(t *testing.T) {
	ns := hosttest.StartNATS(t)
	contexts := hosttest.Start(t, "catalog+cart+inventory+payments+orders+shipping+notify", map[string]string{
		"SHOP_NATS_URL": ns.URL(), "SHOP_GRPC_ADDR": "127.0.0.1:0"})
	g := contexts.Next(t)
	env := map[string]string{}
	for _, name := range (bounded.Edge{}).Calls() {
		env[host.AddrEnv(name)] = contexts.GRPCAddr
	}
	gateway := hosttest.Start(t, "edge", env)
	c := apitest.NewClient(apitest.Target{BaseURL: gateway.BaseURL, AdminToken: hosttest.Token})
	c.WaitReady(t)
	checkout(t, c)

	overControlLine(t, g)
	contexts.Next(t)
	c.WaitReady(t)
	checkout(t, c)
}
