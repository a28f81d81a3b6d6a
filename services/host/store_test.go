package host_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// The replicas of a host's buckets and streams come from SHOP_NATS_REPLICAS; a value that
// is not a replica count stops the host at its configuration.
func TestConfigFromReadsTheStoreReplicas(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int // 0: refused
	}{{"", 1}, {"3", 3}, {"many", 0}, {"9", 0}} {
		env := map[string]string{"SHOP_GROUP": "orders", "SHOP_NATS_URL": "nats://127.0.0.1:4222", natsjs.ReplicasEnv: tc.value,
			host.TLSDirEnv: hosttest.IdentityDir(t, "orders")}
		cfg, err := host.ConfigFrom(func(k string) string { return env[k] }, bounded.Group{})
		switch {
		case tc.want > 0 && (err != nil || cfg.Store.Replicas != tc.want):
			t.Errorf("%s=%q: replicas %d, %v; want %d", natsjs.ReplicasEnv, tc.value, cfg.Store.Replicas, err, tc.want)
		case tc.want == 0 && (err == nil || !strings.Contains(err.Error(), natsjs.ReplicasEnv)):
			t.Errorf("%s=%q: %v, want an error naming the variable", natsjs.ReplicasEnv, tc.value, err)
		}
	}
	// The monolith's embedded server is a lone one: three copies cannot be, and it says so
	// before it starts.
	env := map[string]string{natsjs.ReplicasEnv: "3"}
	if _, err := host.ConfigFrom(func(k string) string { return env[k] }, bounded.Everything()); err == nil || !strings.Contains(err.Error(), "lone server") {
		t.Errorf("3 replicas on the embedded server: %v, want an error saying it is a lone server", err)
	}
}

// testShop is the whole shop (every context and the edge in one host) on a NATS server of
// the test's, with the store configuration under test.
type testShop struct {
	client   *apitest.Client
	payments payments.Service
	js       jetstream.JetStream // a connection of the test's own, for what the API does not show
	g        *host.Generation
}

func newShop(t *testing.T, store natsjs.StoreConfig) *testShop {
	t.Helper()
	return newShopOn(t, hosttest.StartNATS(t).URL(), store)
}

// newShopOn is newShop on the NATS server (or cluster) at natsURL.
func newShopOn(t *testing.T, natsURL string, store natsjs.StoreConfig) *testShop {
	t.Helper()
	cfg, err := host.ConfigFrom(func(k string) string {
		return map[string]string{"SHOP_NATS_URL": natsURL, "SHOP_ADDR": "127.0.0.1:0", "SHOP_ADMIN_TOKEN": hosttest.Token}[k]
	}, bounded.Everything())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	h := hosttest.StartConfig(t, cfg)
	g := h.Next(t)
	js := natsjstest.Connect(t, natsURL)
	return &testShop{client: apitest.NewClient(apitest.Target{BaseURL: h.BaseURL, AdminToken: hosttest.Token}),
		payments: g.Port("payments").(payments.Service), js: js, g: g}
}

// capturedCharges counts the charges the payments bucket holds as captured.
func (ts *testShop) capturedCharges(t *testing.T) int {
	t.Helper()
	bucket, err := ts.js.KeyValue(t.Context(), payments.ChargesBucket)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := bucket.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lister.Stop()
	n := 0
	for k := range lister.Keys() { // order IDs: nothing in them is escaped
		ch, err := ts.payments.Get(t.Context(), k)
		if err != nil {
			t.Fatalf("charge %s: %v", k, err)
		}
		if ch.Status == payments.StatusCaptured {
			n++
		}
	}
	return n
}

// A bucket at its byte limit makes the request that would grow it a 503 "unavailable" and
// loses nothing: the requests before it keep what they did, and the one refused is charged
// at most once and held for. Once the limit is raised (the bucket opened again with a larger
// one, as a restart with a new configuration does), the customer's retry with the same key
// finishes it: one order, one charge, stock conserved and held by nobody. Each case fills
// one bucket checkout writes, from the cart at the edge to the reservation after the charge.
func TestAFullBucketIsUnavailableAndLosesNothing(t *testing.T) {
	for _, bucket := range []string{cart.CartsBucket, orders.SagasBucket, inventory.ReservationsBucket, payments.ChargesBucket} {
		t.Run(bucket, func(t *testing.T) {
			// 4 KiB: a few of the bucket's records (each a few hundred bytes) fit.
			ts := newShop(t, natsjs.StoreConfig{MaxBytes: map[string]int64{bucket: 4 << 10}})
			js := ts.js
			c := ts.client
			p := c.NewProduct(t, 1250, 300)
			c.AddStock(t, p.ID, 1000)
			addToCart := func(user string) *apitest.Response {
				return c.Request(t, http.MethodPost, "/v1/carts/"+user+"/items", nil, apitest.CartItem{ProductID: p.ID, Quantity: 2})
			}
			checkout := func(user, key string) *apitest.Response {
				r, err := c.CheckoutResponse(t.Context(), key, apitest.NewCheckout(user, apitest.CardApproved))
				if err != nil {
					t.Fatal(err)
				}
				return r
			}

			var orders []apitest.Order
			var refused *apitest.Response
			var user, key string
			for i := 0; i < 100 && refused == nil; i++ { // 100 carts and orders are far past 4 KiB
				user, key = apitest.NewID("user"), apitest.NewID("key")
				if r := addToCart(user); r.Status != http.StatusOK {
					refused = r
					break
				}
				r := checkout(user, key)
				if r.Status != http.StatusCreated {
					refused = r
					break
				}
				orders = append(orders, decode[apitest.Order](t, r))
			}
			if refused == nil {
				t.Fatalf("%d checkouts and no bucket full", len(orders))
			}
			if prob := decode[apitest.Problem](t, refused); refused.Status != http.StatusServiceUnavailable || prob.Type != apitest.ProblemTypePrefix+"unavailable" {
				t.Fatalf("the request over the limit: %s, want a 503 unavailable problem", refused)
			}
			if len(orders) == 0 && bucket != cart.CartsBucket {
				t.Fatal("the first checkout already failed: the limit is too small to test anything")
			}
			ts.checkOrders(t, orders)
			if n := ts.capturedCharges(t); n != len(orders) && n != len(orders)+1 {
				t.Errorf("%d captured charges for %d orders and one refused checkout", n, len(orders))
			}
			// A checkout refused before its charge recorded nothing. With a full carts bucket
			// it may also be refused at its last step, taking what it bought out of the cart
			// (which notes the order, and grows): the order is recorded then, charged once,
			// and the retry below finishes it.
			if got := c.Orders(t, user); len(got) > 1 || (len(got) == 1 && bucket != cart.CartsBucket) {
				t.Errorf("the refused user has orders %+v", got)
			}
			c.CheckConservation(t)

			if _, err := natsjs.OpenBucket(t.Context(), js, natsjs.StoreConfig{}, bucket); err != nil {
				t.Fatalf("raise the limit: %v", err)
			}
			var last *apitest.Response
			c.Eventually(t, "the refused checkout retried", func() (bool, string) {
				if bucket == cart.CartsBucket && len(c.Cart(t, user).Items) == 0 {
					addToCart(user)
				}
				last = checkout(user, key)
				return last.Status == http.StatusCreated, last.String()
			})
			orders = append(orders, decode[apitest.Order](t, last))
			ts.checkOrders(t, orders)
			if n := ts.capturedCharges(t); n != len(orders) {
				t.Errorf("%d captured charges for %d orders", n, len(orders))
			}
			if crt := c.Cart(t, user); len(crt.Items) != 0 {
				t.Errorf("cart after its checkout: %+v", crt)
			}
			c.Eventually(t, "stock sold, held by nobody", func() (bool, string) {
				s := c.Inventory(t, p.ID)
				return s.Reserved == 0 && s.Sold == int64(2*len(orders)), fmt.Sprintf("%+v", s)
			})
			c.CheckConservation(t)
		})
	}
}

// checkOrders fails t unless every order reads back as it was answered, with its captured
// charge of the order's total.
func (ts *testShop) checkOrders(t *testing.T, orders []apitest.Order) {
	t.Helper()
	for _, o := range orders {
		if got := ts.client.GetOrder(t, o.ID); got.ID != o.ID || got.Total != o.Total || got.UserID != o.UserID {
			t.Errorf("order %s reads %+v, was answered %+v", o.ID, got, o)
		}
		ch, err := ts.payments.Get(t.Context(), o.ID)
		if err != nil || ch.Status != payments.StatusCaptured || ch.Amount.Units != o.Total.Units {
			t.Errorf("charge of order %s (total %d): %+v, %v", o.ID, o.Total.Units, ch, err)
		}
	}
}

func decode[T any](t *testing.T, r *apitest.Response) T {
	t.Helper()
	v, err := decodeBody[T](r)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func decodeBody[T any](r *apitest.Response) (T, error) {
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return v, fmt.Errorf("decode %s: %w", r, err)
	}
	return v, nil
}
