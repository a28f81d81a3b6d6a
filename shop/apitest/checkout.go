package apitest

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// shippingCents is API.md's formula: 500 cents per order plus 1 cent per 10 grams, rounded up.
func shippingCents(weightGrams int64) int64 { return 500 + (weightGrams+9)/10 }

// expectOrderJSON fails t unless data is an order with exactly API.md's fields, all of its
// items and amounts too.
func expectOrderJSON(t testing.TB, data []byte) {
	t.Helper()
	ExpectKeys(t, "order", data, "id", "user_id", "status", "items", "subtotal", "shipping", "total", "tracking_id", "created_at")
	for _, m := range []string{"subtotal", "shipping", "total"} {
		ExpectKeys(t, "order "+m, rawField(t, data, m), "currency", "units")
	}
	for _, item := range elements(t, rawField(t, data, "items")) {
		ExpectKeys(t, "order item", item, "product_id", "quantity", "unit_price")
		ExpectKeys(t, "order item unit_price", rawField(t, item, "unit_price"), "currency", "units")
	}
}

// expectUTC fails t unless ts is an RFC 3339 time in UTC within a few minutes of now.
func expectUTC(t testing.TB, what, ts string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("%s %q: not RFC 3339: %v", what, ts, err)
	}
	if _, offset := at.Zone(); offset != 0 {
		t.Errorf("%s %q: not in UTC", what, ts)
	}
	if d := time.Since(at); d > 10*time.Minute || d < -10*time.Minute {
		t.Errorf("%s %q: %v from now", what, ts, d)
	}
	return at
}

// sameOrder fails t unless two reads of an order agree on everything but its shipping state.
func sameOrder(t testing.TB, got, want Order) {
	t.Helper()
	got.Status, got.TrackingID, want.Status, want.TrackingID = "", "", "", ""
	if !slices.Equal(got.Items, want.Items) {
		t.Errorf("order %s items: %+v, want %+v", want.ID, got.Items, want.Items)
	}
	got.Items, want.Items = nil, nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("order: %+v, want %+v", got, want)
	}
}

// NewStockedProduct creates a product with a new ID, the given price in cents and weight,
// and stock units of it.
func (c *Client) NewStockedProduct(t testing.TB, cents, weightGrams, stock int64) Product {
	t.Helper()
	p := c.NewProduct(t, cents, weightGrams)
	c.AddStock(t, p.ID, stock)
	return p
}

// ExpectStock fails t unless a product's inventory has exactly these counts.
func (c *Client) ExpectStock(t testing.TB, productID string, available, reserved, sold int64) {
	t.Helper()
	want := Stock{ProductID: productID, Available: available, Reserved: reserved, Sold: sold}
	if got := c.Inventory(t, productID); got != want {
		t.Errorf("inventory: %+v, want %+v", got, want)
	}
}

// ExpectCart fails t unless a user's cart holds exactly these lines, in this order.
func (c *Client) ExpectCart(t testing.TB, userID string, want ...CartItem) {
	t.Helper()
	if got := c.Cart(t, userID); !slices.Equal(got.Items, want) {
		t.Errorf("cart of %s: %+v, want %+v", userID, got.Items, want)
	}
}

// ExpectNoOrders fails t unless a user has no order.
func (c *Client) ExpectNoOrders(t testing.TB, userID string) {
	t.Helper()
	if list := c.Orders(t, userID); len(list) != 0 {
		t.Errorf("orders of %s: %+v, want none", userID, list)
	}
}

func (c *Client) checkoutRaw(t testing.TB, key string, body any) *Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultHTTPTimeout)
	defer cancel()
	r, err := c.CheckoutResponse(ctx, key, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testCheckoutHappyPath(t *testing.T, c *Client) {
	p1, p2 := c.NewStockedProduct(t, 1250, 333, 10), c.NewStockedProduct(t, 99, 1000, 10)
	user := NewID("u")
	c.AddToCart(t, user, p1.ID, 2)
	c.AddToCart(t, user, p2.ID, 3)

	r := c.checkoutRaw(t, NewID("k"), NewCheckout(user, CardApproved))
	var o Order
	expectJSON(t, "checkout", r, http.StatusCreated, &o)
	expectOrderJSON(t, r.Body)
	expectUTC(t, "created_at", o.CreatedAt)
	usd := func(units int64) Money { return Money{Currency: "USD", Units: units} }
	wantItems := []OrderItem{{p1.ID, 2, p1.Price}, {p2.ID, 3, p2.Price}}
	slices.SortFunc(wantItems, func(a, b OrderItem) int { return cmp.Compare(a.ProductID, b.ProductID) })
	gotItems := slices.Clone(o.Items)
	slices.SortFunc(gotItems, func(a, b OrderItem) int { return cmp.Compare(a.ProductID, b.ProductID) })
	subtotal := int64(2*1250 + 3*99)
	shipping := shippingCents(2*333 + 3*1000) // 3666 g: 500 + 367
	switch {
	case o.ID == "" || o.UserID != user || o.Status != StatusPaid || o.TrackingID != "":
		t.Errorf("order %+v: want an id, user %s, status paid, tracking_id \"\"", o, user)
	case !slices.Equal(gotItems, wantItems):
		t.Errorf("items %+v, want %+v", o.Items, wantItems)
	case o.Subtotal != usd(subtotal) || o.Shipping != usd(shipping) || o.Total != usd(subtotal+shipping):
		t.Errorf("subtotal %v shipping %v total %v, want %d, %d, %d USD cents", o.Subtotal, o.Shipping, o.Total, subtotal, shipping, subtotal+shipping)
	}

	// The reserved units are sold before the 201; the cart is cleared.
	c.ExpectStock(t, p1.ID, 8, 0, 2)
	c.ExpectStock(t, p2.ID, 7, 0, 3)
	c.ExpectCart(t, user)
	r = c.Request(t, http.MethodGet, "/v1/orders/"+o.ID, nil, nil)
	var got Order
	expectJSON(t, "get order", r, http.StatusOK, &got)
	expectOrderJSON(t, r.Body)
	sameOrder(t, got, o)
	if list := c.Orders(t, user); len(list) != 1 || list[0].ID != o.ID {
		t.Errorf("history: %+v, want the one order %s", list, o.ID)
	}

	// Shipping happens asynchronously, then one notification of each kind.
	shipped := c.WaitShipped(t, o.ID)
	sameOrder(t, shipped, o)
	c.WaitNotifications(t, user, o.ID, KindOrderPaid, KindOrderShipped)
	c.Consistently(t, "one notification of each kind", 2*time.Second, func() (bool, string) {
		list := c.Notifications(t, user)
		return countKind(list, o.ID, KindOrderPaid) == 1 && countKind(list, o.ID, KindOrderShipped) == 1 && len(list) == 2,
			fmt.Sprintf("%+v", list)
	})
	r = c.Request(t, http.MethodGet, "/v1/users/"+user+"/notifications", nil, nil)
	list := elements(t, rawField(t, r.Body, "notifications"))
	for _, n := range list {
		ExpectKeys(t, "notification", n, "id", "kind", "order_id", "created_at")
	}
	notes := c.Notifications(t, user)
	if notes[0].ID == notes[1].ID || notes[0].ID == "" {
		t.Errorf("notification ids: %+v", notes)
	}
	first, second := expectUTC(t, "notification created_at", notes[0].CreatedAt), expectUTC(t, "notification created_at", notes[1].CreatedAt)
	if second.Before(first) {
		t.Errorf("notifications not oldest first: %+v", notes)
	}
}

func testCheckoutAllOrNothing(t *testing.T, c *Client) {
	plenty, short := c.NewStockedProduct(t, 100, 10, 5), c.NewStockedProduct(t, 200, 20, 1)
	user := NewID("u")
	c.AddToCart(t, user, plenty.ID, 2)
	c.AddToCart(t, user, short.ID, 3)

	p := ExpectProblem(t, c.checkoutRaw(t, NewID("k"), NewCheckout(user, CardApproved)), http.StatusConflict, "out-of-stock")
	if !strings.Contains(p.Detail, short.ID) {
		t.Errorf("detail %q does not name %s", p.Detail, short.ID)
	}
	c.ExpectStock(t, plenty.ID, 5, 0, 0)
	c.ExpectStock(t, short.ID, 1, 0, 0)
	c.ExpectCart(t, user, CartItem{plenty.ID, 2}, CartItem{short.ID, 3})
	c.ExpectNoOrders(t, user)
}

// lastMonth is a card expiry month that is over, also for a server whose clock or time
// zone is a day or two off this machine's.
func lastMonth() (month, year int) {
	d := time.Now().UTC().AddDate(0, 0, -2)
	d = time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	return int(d.Month()), d.Year()
}

func testCheckoutDeclined(t *testing.T, c *Client) {
	month, year := lastMonth()
	cases := []struct {
		name string
		card Card
	}{
		{"declined", Card{Number: CardDeclined, ExpMonth: 12, ExpYear: time.Now().Year() + 1, CVV: "123"}},
		{"insufficient-funds", Card{Number: CardInsufficient, ExpMonth: 12, ExpYear: time.Now().Year() + 1, CVV: "123"}},
		{"expired", Card{Number: CardApproved, ExpMonth: month, ExpYear: year, CVV: "123"}},
	}
	details := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := c.NewStockedProduct(t, 300, 30, 5)
			user := NewID("u")
			c.AddToCart(t, user, p.ID, 2)
			req := NewCheckout(user, CardApproved)
			req.Card = tc.card
			key := NewID("k")
			prob := ExpectProblem(t, c.checkoutRaw(t, key, req), http.StatusPaymentRequired, "payment-declined")
			details[tc.name] = prob.Detail
			c.ExpectStock(t, p.ID, 5, 0, 0)
			c.ExpectCart(t, user, CartItem{p.ID, 2})
			c.ExpectNoOrders(t, user)
		})
	}
	seen := map[string]string{}
	for name, d := range details {
		if other, dup := seen[d]; dup {
			t.Errorf("%s and %s have the same detail %q", name, other, d)
		}
		seen[d] = name
	}
}

func testCheckoutLuhnInvalid(t *testing.T, c *Client) {
	p := c.NewStockedProduct(t, 300, 30, 5)
	user := NewID("u")
	c.AddToCart(t, user, p.ID, 2)
	ExpectProblem(t, c.checkoutRaw(t, NewID("k"), NewCheckout(user, CardLuhnInvalid)), http.StatusBadRequest, "invalid-argument")
	c.ExpectStock(t, p.ID, 5, 0, 0)
	c.ExpectCart(t, user, CartItem{p.ID, 2})
	c.ExpectNoOrders(t, user)
}

// API.md: any Luhn-valid number but the test cards is approved, whatever its length (Luhn's
// own example has 11 digits).
func testCheckoutOtherLuhnValid(t *testing.T, c *Client) {
	for _, number := range []string{"79927398713", "5555555555554444", "42424242424242424242"} {
		p := c.NewStockedProduct(t, 300, 30, 5)
		user := NewID("u")
		c.AddToCart(t, user, p.ID, 1)
		var o Order
		expectJSON(t, "checkout with "+number, c.checkoutRaw(t, NewID("k"), NewCheckout(user, number)), http.StatusCreated, &o)
		if o.Status != StatusPaid {
			t.Errorf("card %s: order %+v, want paid", number, o)
		}
		c.ExpectStock(t, p.ID, 4, 0, 1)
	}
}

func testCheckoutBadRequests(t *testing.T, c *Client) {
	p := c.NewStockedProduct(t, 300, 30, 5)
	user := NewID("u")
	c.AddToCart(t, user, p.ID, 1)
	req := NewCheckout(user, CardApproved)
	for name, key := range map[string]string{
		"missing Idempotency-Key":   "",
		"Idempotency-Key over 64":   strings.Repeat("k", maxIdempotencyKeyLn+1),
		"non-ASCII Idempotency-Key": "clé-" + NewID("k"),
	} {
		t.Run(name, func(t *testing.T) {
			ExpectProblem(t, c.Invalid().checkoutRaw(t, key, req), http.StatusBadRequest, "invalid-argument")
		})
	}
	for name, body := range map[string]string{
		"unknown field":        `{"user_id":"` + user + `","coupon":"FREE"}`,
		"unknown nested field": `{"user_id":"` + user + `","email":"a@example.com","address":{"street":"s","city":"c","postal_code":"1","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123","pin":"0000"}}`,
		"exp_month as string":  `{"user_id":"` + user + `","email":"a@example.com","address":{"street":"s","city":"c","postal_code":"1","country":"US"},"card":{"number":"4242424242424242","exp_month":"12","exp_year":2099,"cvv":"123"}}`,
		"not an object":        `[]`,
	} {
		t.Run(name, func(t *testing.T) {
			ExpectProblem(t, c.Invalid().checkoutRaw(t, NewID("k"), body), http.StatusBadRequest, "invalid-argument")
		})
	}
	c.ExpectStock(t, p.ID, 5, 0, 0)
	c.ExpectCart(t, user, CartItem{p.ID, 1})
	c.ExpectNoOrders(t, user)

	empty := NewID("u")
	ExpectProblem(t, c.checkoutRaw(t, NewID("k"), NewCheckout(empty, CardApproved)), http.StatusBadRequest, "invalid-argument")
	c.ExpectNoOrders(t, empty)

	// A key of exactly 64 printable characters is fine.
	key := (NewID("k") + " ~!" + strings.Repeat("x", maxIdempotencyKeyLn))[:maxIdempotencyKeyLn]
	o := c.Checkout(t, key, req)
	if o.UserID != user {
		t.Errorf("order %+v, want user %s", o, user)
	}
	c.ExpectStock(t, p.ID, 4, 0, 1)
}

func testIdempotencySameBody(t *testing.T, c *Client) {
	p := c.NewStockedProduct(t, 400, 40, 10)
	user := NewID("u")
	c.AddToCart(t, user, p.ID, 2)
	key := NewID("k")
	req := NewCheckout(user, CardApproved)
	o := c.Checkout(t, key, req)

	again := c.Checkout(t, key, req)
	if again.ID != o.ID {
		t.Errorf("same key and body: order %s, want %s", again.ID, o.ID)
	}
	// Equal as JSON values: fields in another order, whitespace everywhere.
	reordered := fmt.Sprintf(` {
	  "card" : {"cvv": %q, "exp_year": %d, "exp_month": %d, "number": %q},
	  "address": {"country": %q, "postal_code": %q, "city": %q, "street": %q},
	  "email": %q,
	  "user_id": %q
	}
	`, req.Card.CVV, req.Card.ExpYear, req.Card.ExpMonth, req.Card.Number,
		req.Address.Country, req.Address.PostalCode, req.Address.City, req.Address.Street, req.Email, req.UserID)
	r := c.checkoutRaw(t, key, reordered)
	var same Order
	expectJSON(t, "same key, reordered body", r, http.StatusCreated, &same)
	if same.ID != o.ID {
		t.Errorf("same key, reordered body: order %s, want %s", same.ID, o.ID)
	}

	other := req
	other.Email = "someone-else@example.com"
	ExpectProblem(t, c.checkoutRaw(t, key, other), http.StatusConflict, "conflict")

	if list := c.Orders(t, user); len(list) != 1 || list[0].ID != o.ID {
		t.Errorf("history: %+v, want only %s", list, o.ID)
	}
	c.ExpectStock(t, p.ID, 8, 0, 2)
}

func testIdempotencyConcurrent(t *testing.T, c *Client) {
	const duplicates = 10
	p := c.NewStockedProduct(t, 400, 40, 10)
	user := NewID("u")
	c.AddToCart(t, user, p.ID, 3)
	key := NewID("k")
	results := c.concurrentCheckouts(duplicates, func(int) (string, any) { return key, NewCheckout(user, CardApproved) })
	ids := map[string]int{}
	for _, res := range results {
		if res.err != nil {
			t.Fatal(res.err)
		}
		var o Order
		expectJSON(t, "concurrent duplicate", res.resp, http.StatusCreated, &o)
		ids[o.ID]++
	}
	if len(ids) != 1 {
		t.Errorf("%d duplicates gave orders %v, want one order", duplicates, ids)
	}
	if list := c.Orders(t, user); len(list) != 1 {
		t.Errorf("history: %d orders, want 1", len(list))
	}
	c.ExpectStock(t, p.ID, 7, 0, 3)
}

type result struct {
	resp *Response
	err  error
}

// concurrentCheckouts sends n checkouts at once (request i gets the key and body of
// request(i)) and returns their results in order.
func (c *Client) concurrentCheckouts(n int, request func(i int) (key string, body any)) []result {
	ctx, cancel := context.WithTimeout(context.Background(), defaultHTTPTimeout)
	defer cancel()
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		key, body := request(i)
		wg.Go(func() {
			<-start
			results[i].resp, results[i].err = c.CheckoutResponse(ctx, key, body)
		})
	}
	close(start)
	wg.Wait()
	return results
}

func testNoOversell(t *testing.T, c *Client) {
	const stock, buyers = 10, 40
	p := c.NewStockedProduct(t, 500, 50, stock)
	users := make([]string, buyers)
	for i := range users {
		users[i] = NewID("u")
		c.AddToCart(t, users[i], p.ID, 1)
	}
	results := c.concurrentCheckouts(buyers, func(i int) (string, any) { return NewID("k"), NewCheckout(users[i], CardApproved) })
	var paid, out int
	for i, res := range results {
		if res.err != nil {
			t.Fatal(res.err)
		}
		switch res.resp.Status {
		case http.StatusCreated:
			paid++
			c.ExpectCart(t, users[i])
		case http.StatusConflict:
			out++
			if prob := ExpectProblem(t, res.resp, http.StatusConflict, "out-of-stock"); !strings.Contains(prob.Detail, p.ID) {
				t.Errorf("detail %q does not name %s", prob.Detail, p.ID)
			}
			c.ExpectCart(t, users[i], CartItem{p.ID, 1})
			c.ExpectNoOrders(t, users[i])
		default:
			t.Errorf("checkout: %s, want 201 or 409 out-of-stock", res.resp)
		}
	}
	if paid != stock || out != buyers-stock {
		t.Errorf("%d paid and %d out of stock, want %d and %d", paid, out, stock, buyers-stock)
	}
	c.ExpectStock(t, p.ID, 0, 0, stock)
}

func testOrderUnknown(t *testing.T, c *Client) {
	ExpectProblem(t, c.Request(t, http.MethodGet, "/v1/orders/"+NewID("o"), nil, nil), http.StatusNotFound, "not-found")
}

func testOrderHistory(t *testing.T, c *Client) {
	p := c.NewStockedProduct(t, 100, 10, 10)
	user := NewID("u")
	c.AddToCart(t, user, p.ID, 1)
	first := c.Checkout(t, NewID("k"), NewCheckout(user, CardApproved))
	c.AddToCart(t, user, p.ID, 2)
	second := c.Checkout(t, NewID("k"), NewCheckout(user, CardApproved))

	r := c.Request(t, http.MethodGet, "/v1/users/"+user+"/orders", nil, nil)
	ExpectKeys(t, "order history", r.Body, "orders", "next_page_token")
	for _, o := range elements(t, rawField(t, r.Body, "orders")) {
		expectOrderJSON(t, o)
	}
	list := c.Orders(t, user)
	if len(list) != 2 || list[0].ID != second.ID || list[1].ID != first.ID {
		t.Fatalf("history %+v, want %s then %s", list, second.ID, first.ID)
	}
	if expectUTC(t, "created_at", list[0].CreatedAt).Before(expectUTC(t, "created_at", list[1].CreatedAt)) {
		t.Errorf("history not newest first: %+v", list)
	}

	r = c.Request(t, http.MethodGet, "/v1/users/"+NewID("u")+"/orders", nil, nil)
	var none OrderPage
	expectJSON(t, "orders of an unknown user", r, http.StatusOK, &none)
	ExpectKeys(t, "orders of an unknown user", r.Body, "orders", "next_page_token")
	expectEmptyList(t, r.Body, "orders")
	if none.NextPageToken != "" {
		t.Errorf("orders of an unknown user: next_page_token %q, want \"\"", none.NextPageToken)
	}
}

// checkoutN makes n paid orders of a new user, one after the other, and returns the user
// and the orders' IDs newest first.
func (c *Client) checkoutN(t *testing.T, n int) (user string, newestFirst []string) {
	t.Helper()
	p := c.NewStockedProduct(t, 100, 10, int64(n))
	user = NewID("u")
	for range n {
		c.AddToCart(t, user, p.ID, 1)
		o := c.Checkout(t, NewID("k"), NewCheckout(user, CardApproved))
		newestFirst = append([]string{o.ID}, newestFirst...)
	}
	return user, newestFirst
}

// expectBadPageRequests fails t unless each bad page_size and page_token of a list is 400
// invalid-argument naming the parameter.
func (c *Client) expectBadPageRequests(t *testing.T, path string, badTokens ...string) {
	t.Helper()
	for _, size := range []string{"0", "-1", "101", "abc", "1.5", "99999999999999999999"} {
		p := ExpectProblem(t, c.Invalid().Request(t, http.MethodGet, path+"?"+query("page_size", size).Encode(), nil, nil), http.StatusBadRequest, "invalid-argument")
		if !strings.Contains(p.Detail, "page_size") {
			t.Errorf("%s page_size=%s: detail %q does not name page_size", path, size, p.Detail)
		}
	}
	for _, token := range append([]string{"!!", "abc", "not a token", strings.Repeat("A", 300)}, badTokens...) {
		p := ExpectProblem(t, c.Request(t, http.MethodGet, path+"?"+query("page_token", token).Encode(), nil, nil), http.StatusBadRequest, "invalid-argument")
		if !strings.Contains(p.Detail, "page_token") {
			t.Errorf("%s page_token=%q: detail %q does not name page_token", path, token, p.Detail)
		}
	}
}

func testOrderHistoryPaging(t *testing.T, c *Client) {
	user, want := c.checkoutN(t, DefaultOrderPage+1)
	for _, tc := range []struct {
		size  int
		pages []int
	}{{0, []int{20, 1}}, {7, []int{7, 7, 7}}, {20, []int{20, 1}}, {21, []int{21}}, {100, []int{21}}, {1, slices.Repeat([]int{1}, 21)}} {
		size := tc.size
		if size == 0 {
			size = DefaultOrderPage
		}
		list, pages := walkPages(t, "orders of "+user, size, func(token string) ([]Order, string) {
			q := query("page_token", token)
			if tc.size != 0 {
				q.Set("page_size", strconv.Itoa(tc.size))
			}
			p := c.OrdersPage(t, user, q)
			return p.Orders, p.NextPageToken
		}, func(o Order) string { return o.ID })
		var got []string
		for _, o := range list {
			got = append(got, o.ID)
		}
		if !slices.Equal(got, want) || !slices.Equal(pages, tc.pages) {
			t.Errorf("page_size %d: %v in pages %v, want %v in pages %v", tc.size, got, pages, want, tc.pages)
		}
	}
	// A token is for the list that gave it: the product list's is refused here.
	products := c.Products(t, query("page_size", "1"))
	c.expectBadPageRequests(t, "/v1/users/"+user+"/orders", products.NextPageToken)
}

func testNotificationsUnknownUser(t *testing.T, c *Client) {
	r := c.Request(t, http.MethodGet, "/v1/users/"+NewID("u")+"/notifications", nil, nil)
	var none NotificationPage
	expectJSON(t, "notifications of an unknown user", r, http.StatusOK, &none)
	ExpectKeys(t, "notifications", r.Body, "notifications", "next_page_token")
	expectEmptyList(t, r.Body, "notifications")
	if none.NextPageToken != "" {
		t.Errorf("notifications of an unknown user: next_page_token %q, want \"\"", none.NextPageToken)
	}
}

func testNotificationsPaging(t *testing.T, c *Client) {
	const orders = 6
	user, newestFirst := c.checkoutN(t, orders)
	for _, id := range newestFirst {
		c.WaitShipped(t, id)
	}
	var all []Notification
	c.Eventually(t, "a notification of each kind for each order", func() (bool, string) {
		all = c.Notifications(t, user)
		return len(all) == 2*orders, fmt.Sprintf("%d notifications: %+v", len(all), all)
	})
	for _, id := range newestFirst {
		if countKind(all, id, KindOrderPaid) != 1 || countKind(all, id, KindOrderShipped) != 1 {
			t.Fatalf("order %s: notifications %+v, want one of each kind", id, all)
		}
	}
	var want []string
	for i, n := range all {
		want = append(want, n.ID)
		if i > 0 && expectUTC(t, "created_at", n.CreatedAt).Before(expectUTC(t, "created_at", all[i-1].CreatedAt)) {
			t.Errorf("notifications not oldest first: %+v", all)
		}
	}
	for _, tc := range []struct {
		size  int
		pages []int
	}{{5, []int{5, 5, 2}}, {1, slices.Repeat([]int{1}, 12)}, {11, []int{11, 1}}, {12, []int{12}}, {0, []int{12}}, {100, []int{12}}} {
		size := tc.size
		if size == 0 {
			size = DefaultNoticePage
		}
		list, pages := walkPages(t, "notifications of "+user, size, func(token string) ([]Notification, string) {
			q := query("page_token", token)
			if tc.size != 0 {
				q.Set("page_size", strconv.Itoa(tc.size))
			}
			p := c.NotificationsPage(t, user, q)
			return p.Notifications, p.NextPageToken
		}, func(n Notification) string { return n.ID })
		var got []string
		for _, n := range list {
			got = append(got, n.ID)
		}
		if !slices.Equal(got, want) || !slices.Equal(pages, tc.pages) {
			t.Errorf("page_size %d: %v in pages %v, want %v in pages %v", tc.size, got, pages, want, tc.pages)
		}
	}
	// A token is for the list that gave it: those of the product list and of the user's
	// orders are refused here.
	products := c.Products(t, query("page_size", "1"))
	orderPage := c.OrdersPage(t, user, query("page_size", "1"))
	c.expectBadPageRequests(t, "/v1/users/"+user+"/notifications", products.NextPageToken, orderPage.NextPageToken)
}
