package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// TestOrdersReplicas runs orders, shipping and notify as two replicas each, real processes on
// a real NATS, the others one each (about 1.5 minutes on 2 cores: go test -run
// TestOrdersReplicas ./services/e2e). SHOP_ORDERS_STALE_AFTER=3s lets a crashed replica's
// checkouts be taken over within seconds rather than a minute.
//
//   - Each customer's checkout reaches both replicas at once over gRPC, with the same
//     Idempotency-Key: both answer with one order.
//   - orders-1 is killed (SIGKILL) in the middle of a burst of checkouts through the gateway,
//     each customer retrying on 503 with its key, and started again: every customer ends
//     with exactly one order and one order-paid notification, nothing stays reserved, units
//     sold are the orders' and stock is conserved, and no checkout was taken over by both
//     replicas (their logs name each checkout they took over, by retry or recovery).
//   - The event consumers' replicas share one durable consumer each: both pull from it, and
//     every event was delivered once (none redelivered), each order shipped with one
//     order-shipped notification.
func TestOrdersReplicas(t *testing.T) {
	s := up(t, "", "catalog,cart,inventory,payments,orders*2,shipping*2,notify*2", map[string]string{bounded.StaleAfterEnv: "3s"},
		`"msg":"request failed"`, "not serving", "could not build the group", "grpc call failed", "finish checkout", "compensate checkout")
	c := apitest.NewClient(apitest.Target{BaseURL: s.edges[topology.SplitName], AdminToken: testToken})
	// The events the killed replica had pulled but not acknowledged (orders' consumer of
	// order-shipped) come back to the other after the consumer's AckWait, 30 s.
	c.PollTimeout = time.Minute
	replicas := s.replicas(topology.SplitName, "orders")
	if len(replicas) != 2 {
		t.Fatalf("orders runs as %d processes, want 2", len(replicas))
	}

	// The same key on both replicas at once.
	clients := make([]orders.Service, 2)
	for i, st := range replicas {
		// As the gateway: the access table lets it check out.
		conn, err := host.Dial(st.Ports[9105], ordersrpc.ServiceConfig, 10*time.Second, s.security("gateway").ClientCredentials("orders"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		clients[i] = ordersrpc.NewClient(conn)
	}
	p := c.NewProduct(t, 1200, 300)
	c.AddStock(t, p.ID, 100)
	var wg sync.WaitGroup
	const pairs = 8
	got := make([][2]string, pairs)
	errs := make([][2]error, pairs)
	for i := range pairs {
		user := apitest.NewID("dup")
		c.AddToCart(t, user, p.ID, 1)
		req := orders.CheckoutRequest{UserID: user, Email: "dup@example.com",
			Address: orders.Address{Street: "1 Loop Rd", City: "Springfield", PostalCode: "12345", Country: "US"},
			Card:    payments.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, CVV: "123"}}
		key := apitest.NewID("key")
		for r, cl := range clients {
			wg.Go(func() {
				ord, err := cl.Checkout(t.Context(), key, req)
				got[i][r], errs[i][r] = ord.ID, err
			})
		}
	}
	wg.Wait()
	for i := range pairs {
		if errs[i][0] != nil || errs[i][1] != nil || got[i][0] != got[i][1] || got[i][0] == "" {
			t.Errorf("checkout %d through both replicas: %q %v and %q %v, want one order", i, got[i][0], errs[i][0], got[i][1], errs[i][1])
		}
	}
	if st := c.Inventory(t, p.ID); st.Sold != pairs {
		t.Errorf("sold %d, want %d: one unit per customer", st.Sold, pairs)
	}

	// One replica killed in the middle of a burst, then started again.
	const customers = 30
	a := c.NewProduct(t, 900, 200)
	c.AddStock(t, a.ID, 200)
	users := make([]string, customers)
	for i := range users {
		users[i] = apitest.NewID("rep")
		c.AddToCart(t, users[i], a.ID, 2)
	}
	var accepted atomic.Int64
	killed := make(chan struct{})
	outcomes := make([]error, customers)
	for i, user := range users {
		wg.Go(func() {
			if i >= customers/2 {
				<-killed
			}
			key := apitest.NewID("key")
			deadline := time.Now().Add(60 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				r, err := c.CheckoutResponse(ctx, key, apitest.NewCheckout(user, "4242424242424242"))
				cancel()
				switch {
				case err == nil && r.Status == http.StatusCreated:
					accepted.Add(1)
					return
				case err == nil && r.Status != http.StatusServiceUnavailable:
					outcomes[i] = fmt.Errorf("checkout: %s", r)
					return
				case time.Now().After(deadline):
					outcomes[i] = fmt.Errorf("checkout still failing after 60s: %v %v", r, err)
					return
				}
				time.Sleep(100 * time.Millisecond) // a client's back-off between retries
			}
		})
	}
	for deadline := time.Now().Add(60 * time.Second); accepted.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // polling the burst's progress, bounded
	}
	if err := syscall.Kill(replicas[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s after %d accepted checkouts", replicas[0].Service, accepted.Load())
	close(killed)
	s.up()
	wg.Wait()
	for i, err := range outcomes {
		if err != nil {
			t.Errorf("customer %s: %v", users[i], err)
		}
	}
	c.Eventually(t, "no units left reserved", func() (bool, string) {
		st := c.Inventory(t, a.ID)
		return st.Reserved == 0, fmt.Sprintf("%+v", st)
	})
	var units int64
	for _, user := range users {
		list := c.Orders(t, user)
		if len(list) != 1 {
			t.Errorf("customer %s has %d orders, want exactly 1", user, len(list))
			continue
		}
		for _, it := range list[0].Items {
			units += int64(it.Quantity)
		}
		n := 0
		for _, x := range c.WaitNotifications(t, user, list[0].ID, "order-paid") {
			if x.OrderID == list[0].ID && x.Kind == "order-paid" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("customer %s: %d order-paid notifications, want 1", user, n)
		}
		shipped := c.WaitShipped(t, list[0].ID)
		n = 0
		for _, x := range c.WaitNotifications(t, user, shipped.ID, "order-shipped") {
			if x.OrderID == shipped.ID && x.Kind == "order-shipped" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("customer %s: %d order-shipped notifications, want 1", user, n)
		}
	}
	s.checkSharedConsumers(topology.SplitName, "shipping", "notify")
	if st := c.Inventory(t, a.ID); st.Sold != units {
		t.Errorf("sold %d units, the orders hold %d", st.Sold, units)
	}
	c.CheckConservation(t)

	takenBy := map[string][]string{} // checkout key -> the replicas that took it over
	for _, st := range s.replicas(topology.SplitName, "orders") {
		var logs strings.Builder
		if err := s.rt.Logs(t.Context(), stack.LogsOptions{Services: []string{topology.SplitName + "/" + st.Service}}, &logs); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if m := tookOverLine.FindStringSubmatch(sc.Text()); m != nil {
				var key string
				_ = json.Unmarshal([]byte(`"`+m[1]+`"`), &key)
				if !slices.Contains(takenBy[key], st.Service) {
					takenBy[key] = append(takenBy[key], st.Service)
				}
			}
		}
	}
	for key, by := range takenBy {
		if len(by) > 1 {
			t.Errorf("checkout %s taken over by %v, want one replica", key, by)
		}
	}
	t.Logf("%d checkouts orders-1 left were taken over, each by one replica: %v", len(takenBy), takenBy)
}

// tookOverLine is orders' log line for a checkout it took over from another process (a
// retry's, or recovery's).
var tookOverLine = regexp.MustCompile(`"msg":"took over checkout".*"key":"((?:[^"\\]|\\.)*)"`)

// replicas returns the running processes of arch that are replicas of svc, by name.
func (r *running) replicas(arch, svc string) []stack.Status {
	r.t.Helper()
	sts, err := r.rt.Status(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	var out []stack.Status
	for _, st := range sts {
		if st.Arch == arch && st.ReplicaOf == svc && st.State == "running" {
			out = append(out, st)
		}
	}
	return out
}

// checkSharedConsumers checks, on the architecture's NATS, that each context's durable
// consumers are pulled by its replicas (two waiting pulls or more on the one consumer) and
// delivered every event once: none pending, none unacknowledged, none redelivered.
func (r *running) checkSharedConsumers(arch string, contexts ...string) {
	r.t.Helper()
	var natsAddr string
	sts, err := r.rt.Status(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	for _, st := range sts {
		if st.Arch == arch && st.Service == "nats" {
			natsAddr = st.Ports[topology.NATSPort]
		}
	}
	url, err := natsauth.AdminURL(r.opts.PKI, natsAddr) // as the stack's NATS admin
	if err != nil {
		r.t.Fatal(err)
	}
	tlsOpt, err := natsauth.AdminTLS(r.opts.PKI)
	if err != nil {
		r.t.Fatal(err)
	}
	nc, err := nats.Connect(url, tlsOpt)
	if err != nil {
		r.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, name := range contexts {
		c, _ := bounded.Lookup(name)
		for _, k := range c.Consumers {
			var info *jetstream.ConsumerInfo
			deadline := time.Now().Add(30 * time.Second)
			for {
				cons, err := js.Consumer(r.t.Context(), natsjs.StreamName, k.Name)
				if err == nil {
					info, err = cons.Info(r.t.Context())
				}
				if err == nil && info.NumWaiting >= 2 && info.NumPending == 0 && info.NumAckPending == 0 {
					break
				}
				if time.Now().After(deadline) {
					r.t.Fatalf("consumer %s: %+v (%v), want two replicas pulling and nothing left", k.Name, info, err)
				}
				time.Sleep(100 * time.Millisecond) // polling the server's view, bounded by the deadline
			}
			if info.NumRedelivered != 0 {
				r.t.Errorf("consumer %s redelivered %d messages, want each delivered once", k.Name, info.NumRedelivered)
			}
			r.t.Logf("consumer %s: %d deliveries, %d pulls waiting (its replicas), none redelivered", k.Name, info.Delivered.Consumer, info.NumWaiting)
		}
	}
}
