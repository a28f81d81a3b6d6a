package host_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// attempt is one customer of the load: a cart of one line, then a checkout.
type attempt struct {
	user, key string
	product   string
	quantity  int
	carted    bool // the cart took the line
	afterKill bool // the checkout started with the node gone
	status    int  // the checkout's answer; 0 when none came
	order     apitest.Order
}

// TestCheckoutsSurviveTheLossOfANode runs the shop on a 3-node JetStream cluster with every
// bucket and the event stream kept on all three, checks out from several customers at once,
// and in the middle stops the node that leads every stream and consumer and that the shop's
// connection is on. The shop keeps taking checkouts on the other two, and afterwards every
// checkout it accepted (201) is there: its order, exactly one captured charge, its
// notifications; a checkout that failed in the failover left nothing half done (after the
// recovery a restart runs, it is compensated or finished), and stock is conserved.
func TestCheckoutsSurviveTheLossOfANode(t *testing.T) {
	cluster := natsjstest.NewCluster(t, 3)
	ts := newShopOn(t, cluster.URLs(0), natsjs.StoreConfig{Replicas: 3})
	nc := ts.g.Conn() // the shop's own connection: the node it is on goes
	victim := slices.IndexFunc([]int{0, 1, 2}, func(i int) bool { return cluster.Name(i) == nc.ConnectedServerName() })
	if victim < 0 {
		t.Fatalf("the shop is connected to %q, none of the cluster's", nc.ConnectedServerName())
	}
	js := ts.js
	c := ts.client
	c.PollTimeout = 30 * time.Second

	var streams []string
	for name := range js.StreamNames(t.Context()).Name() {
		streams = append(streams, name)
	}
	if len(streams) != len(natsjs.DefaultLimits()) {
		t.Fatalf("streams %v, want every bucket and the event stream", streams)
	}
	for _, name := range streams {
		natsjstest.WaitReplicated(t, js, name, 3)
	}
	var products []apitest.Product
	for range 4 {
		p := c.NewProduct(t, 990, 250)
		c.AddStock(t, p.ID, 1000)
		products = append(products, p)
	}
	cluster.Lead(t, js.Conn(), victim)

	// The load: a bounded number of customers from a few workers, within a deadline. The
	// node goes once a third of them have been accepted; the workers do not pause for it.
	const customers, workers = 120, 6
	attempts := make([]attempt, customers)
	loadCtx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	var accepted atomic.Int64
	killNow, killed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				a := &attempts[i]
				a.user, a.key = apitest.NewID("user"), apitest.NewID("key")
				a.product, a.quantity = products[i%len(products)].ID, 1+i%3
				runAttempt(loadCtx, c, a, killed)
				if a.status == http.StatusCreated && accepted.Add(1) == customers/3 {
					once.Do(func() { close(killNow) })
				}
			}
		})
	}
	go func() {
		defer close(jobs)
		for i := range customers {
			select {
			case jobs <- i:
			case <-loadCtx.Done():
				return
			}
		}
	}()
	select {
	case <-killNow:
	case <-loadCtx.Done():
		t.Fatalf("only %d checkouts accepted before the deadline", accepted.Load())
	}
	before := accepted.Load()
	cluster.Shutdown(victim)
	close(killed)
	wg.Wait()
	if loadCtx.Err() != nil {
		t.Fatalf("the load did not finish within its deadline: %v", loadCtx.Err())
	}

	afterKill, failed, uncarted := 0, 0, 0 // checkouts accepted that started after the kill; failures
	for _, a := range attempts {
		switch {
		case !a.carted:
			uncarted++
		case a.status != http.StatusCreated:
			failed++
		case a.afterKill:
			afterKill++
		}
	}
	t.Logf("of %d customers: %d checkouts accepted before the node went, %d in all (%d started after it); %d checkouts and %d carts failed",
		customers, before, accepted.Load(), afterKill, failed, uncarted)
	if afterKill == 0 {
		t.Fatal("no checkout was accepted after the node went")
	}
	if name := nc.ConnectedServerName(); name == cluster.Name(victim) || !nc.IsConnected() {
		t.Fatalf("the shop's connection is on %q (%s), want another node", name, nc.Status())
	}

	// What a restart does first: finish or compensate every checkout left unfinished. No
	// checkout is live any more, so none is taken from under its request.
	c.Eventually(t, "recovery of the failed checkouts", func() (bool, string) {
		n, err := ts.g.Impl("orders").(*orders.Orders).Recover(t.Context(), 0)
		return err == nil, fmt.Sprintf("%d recovered, %v", n, err)
	})

	// Every order that exists, accepted or finished by recovery, with what it sold.
	var all []apitest.Order
	sold := map[string]int64{}
	for _, a := range attempts {
		if !a.carted {
			continue
		}
		list := c.Orders(t, a.user)
		switch {
		case a.status == http.StatusCreated && (len(list) != 1 || list[0].ID != a.order.ID):
			t.Errorf("customer %s was answered order %s and has %+v", a.user, a.order.ID, list)
			continue
		case len(list) > 1:
			t.Errorf("customer %s checked out once and has %d orders", a.user, len(list))
			continue
		case len(list) == 0:
			// Compensated: the cart is as it was, to be checked out again.
			if crt := c.Cart(t, a.user); len(crt.Items) != 1 || crt.Items[0].ProductID != a.product || crt.Items[0].Quantity != a.quantity {
				t.Errorf("customer %s has no order and the cart %+v, want %d × %s", a.user, crt, a.quantity, a.product)
			}
			continue
		}
		o := list[0]
		if len(o.Items) != 1 || o.Items[0].ProductID != a.product || o.Items[0].Quantity != a.quantity {
			t.Errorf("order %s: items %+v, want %d × %s", o.ID, o.Items, a.quantity, a.product)
		}
		if a.status == http.StatusCreated && o.Total != a.order.Total {
			t.Errorf("order %s: total %+v, was answered %+v", o.ID, o.Total, a.order.Total)
		}
		all = append(all, o)
		sold[a.product] += int64(a.quantity)
	}
	ts.checkOrders(t, all)
	if n := ts.capturedCharges(t); n != len(all) {
		t.Errorf("%d captured charges for %d orders", n, len(all))
	}
	for _, o := range all {
		c.WaitShipped(t, o.ID)
		list := c.WaitNotifications(t, o.UserID, o.ID, apitest.KindOrderPaid, apitest.KindOrderShipped)
		if len(list) != 2 {
			t.Errorf("order %s: notifications %+v, want order-paid and order-shipped once each", o.ID, list)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(sold)) {
		c.Eventually(t, "stock of "+id+" sold and held by nobody", func() (bool, string) {
			s := c.Inventory(t, id)
			return s.Sold == sold[id] && s.Reserved == 0, fmt.Sprintf("%+v, want %d sold", s, sold[id])
		})
	}
	c.CheckConservation(t)
}

// runAttempt puts a's line in a new cart and checks it out, recording what happened. It does
// not fail the test: during the failover a request may fail, and what it left is checked
// afterwards.
func runAttempt(ctx context.Context, c *apitest.Client, a *attempt, killed <-chan struct{}) {
	r, err := c.Do(ctx, http.MethodPost, "/v1/carts/"+url.PathEscape(a.user)+"/items", nil,
		apitest.CartItem{ProductID: a.product, Quantity: a.quantity})
	if err != nil || r.Status != http.StatusOK {
		return // a cart that may or may not hold the line: no checkout, nothing to check
	}
	a.carted = true
	select {
	case <-killed:
		a.afterKill = true
	default:
	}
	r, err = c.CheckoutResponse(ctx, a.key, apitest.NewCheckout(a.user, apitest.CardApproved))
	if err != nil {
		return
	}
	a.status = r.Status
	if r.Status == http.StatusCreated {
		a.order, _ = decodeBody[apitest.Order](r) // a bad body leaves the order empty: checked below
	}
}
