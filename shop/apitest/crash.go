package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The crash tests (a process killed in the middle of a burst of checkouts, then started
// again) put the same load on a deployment and check the same things after it, whatever
// they kill and however: customers who each check one cart out and retry as API.md tells
// clients to, then an order for each and stock that adds up.

// Retried is how one customer's checkout ended: its order, or why it has none, after how
// many tries.
type Retried struct {
	Order    Order
	Err      error
	Attempts int
}

// CrashCarts makes n customers, each with one unit of a and two of b in the cart.
func (c *Client) CrashCarts(t testing.TB, n int, a, b Product) []string {
	t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = NewID("crash")
		c.AddToCart(t, users[i], a.ID, 1)
		c.AddToCart(t, users[i], b.ID, 2)
	}
	return users
}

// CheckoutRetrying checks user's cart out with one Idempotency-Key, and again with the same
// key and body after each 503 or failed request (a refused connection while a process is
// down, a timeout), 100 ms apart, each try at most 15 s, until the answer is final: a 201, or
// any other status, which is an error. giveUp, asked after each failed try, bounds the
// retries: an error from it ends them with that error.
func (c *Client) CheckoutRetrying(user string, giveUp func() error) Retried {
	var out Retried
	key := NewID("key")
	for {
		out.Attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		r, err := c.CheckoutResponse(ctx, key, NewCheckout(user, CardApproved))
		cancel()
		switch {
		case err == nil && r.Status == http.StatusCreated:
			out.Err = json.Unmarshal(r.Body, &out.Order)
			return out
		case err == nil && r.Status != http.StatusServiceUnavailable:
			out.Err = fmt.Errorf("checkout: %s", r)
			return out
		}
		if gerr := giveUp(); gerr != nil {
			out.Err = fmt.Errorf("checkout still failing: %w (last try: %v %v)", gerr, r, err)
			return out
		}
		time.Sleep(100 * time.Millisecond) // a client's back-off between retries
	}
}

// CheckAfterCrash fails t unless every customer of users (carts from CrashCarts) got an
// order that reads back as theirs, the checkouts the crash interrupted were finished or
// compensated (nothing of a or b stays reserved), every customer has exactly one order, the
// units of a and b sold are those the orders hold, and stock is conserved. It returns the
// orders the customers got.
func (c *Client) CheckAfterCrash(t testing.TB, users []string, outcomes []Retried, a, b Product) []Order {
	t.Helper()
	var orders []Order
	retried := 0
	for i, o := range outcomes {
		if o.Err != nil {
			t.Errorf("customer %s: %v", users[i], o.Err)
			continue
		}
		if o.Attempts > 1 {
			retried++
		}
		orders = append(orders, o.Order)
		if got := c.GetOrder(t, o.Order.ID); got.ID != o.Order.ID || got.UserID != users[i] {
			t.Errorf("accepted order %s of %s reads back as %+v", o.Order.ID, users[i], got)
		}
	}
	t.Logf("%d of %d customers retried after a 503 or a failed request", retried, len(users))

	c.Eventually(t, "no units left reserved", func() (bool, string) {
		sa, sb := c.Inventory(t, a.ID), c.Inventory(t, b.ID)
		return sa.Reserved == 0 && sb.Reserved == 0, fmt.Sprintf("%+v %+v", sa, sb)
	})
	units := map[string]int64{}
	for _, user := range users {
		list := c.Orders(t, user)
		if len(list) != 1 {
			t.Errorf("customer %s has %d orders, want exactly 1", user, len(list))
		}
		for _, o := range list {
			for _, it := range o.Items {
				units[it.ProductID] += int64(it.Quantity)
			}
		}
	}
	if sa, sb := c.Inventory(t, a.ID), c.Inventory(t, b.ID); sa.Sold != units[a.ID] || sb.Sold != units[b.ID] {
		t.Errorf("sold %d and %d units, orders hold %d and %d", sa.Sold, sb.Sold, units[a.ID], units[b.ID])
	}
	c.CheckConservation(t)
	return orders
}
