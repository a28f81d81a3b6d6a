// Package orderstest is the conformance suite of the orders context, written once against
// orders.Service and run against every way of getting one: in process over memory and
// JetStream stores, and behind gRPC. Checkout needs a shop around it (products, stock,
// carts, payments), so the suite takes the other contexts too, and observes them only
// through their own ports.
package orderstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/paging/pagingtest"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Env is one shop for one test: the orders service under test and the real contexts it
// calls, sharing their stores with it.
type Env struct {
	Orders    orders.Service
	Catalog   catalog.Service
	Carts     cart.Service
	Inventory inventory.Service
	Payments  payments.Service
	// Events, when set, carries the order-paid events Orders publishes; the suite then
	// checks that each paid order is announced exactly once. nil skips those checks.
	Events events.Subscriber
}

// Test cards of API.md.
const (
	CardApproved          = "4242424242424242"
	CardDeclined          = "4000000000000002"
	CardInsufficientFunds = "4000000000009995"
)

// Run runs the suite; newEnv returns a fresh shop for each test.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	t.Run("HappyPath", func(t *testing.T) { testHappyPath(t, newEnv(t)) })
	t.Run("Declined", func(t *testing.T) { testDeclined(t, newEnv) })
	t.Run("OutOfStockNamesProduct", func(t *testing.T) { testOutOfStock(t, newEnv(t)) })
	t.Run("UnknownProductInCart", func(t *testing.T) { testUnknownProduct(t, newEnv(t)) })
	t.Run("EmptyCart", func(t *testing.T) { testEmptyCart(t, newEnv(t)) })
	t.Run("Validation", func(t *testing.T) { testValidation(t, newEnv(t)) })
	t.Run("IdempotentReplay", func(t *testing.T) { testIdempotentReplay(t, newEnv(t)) })
	t.Run("IdempotencyConflict", func(t *testing.T) { testConflict(t, newEnv(t)) })
	t.Run("ConcurrentDuplicates", func(t *testing.T) { testConcurrentDuplicates(t, newEnv(t)) })
	t.Run("NoOversell", func(t *testing.T) { testNoOversell(t, newEnv(t)) })
	t.Run("HistoryNewestFirst", func(t *testing.T) { testHistory(t, newEnv(t)) })
	t.Run("HistoryPages", func(t *testing.T) { testHistoryPages(t, newEnv(t)) })
	t.Run("MarkShipped", func(t *testing.T) { testMarkShipped(t, newEnv(t)) })
	t.Run("GetUnknown", func(t *testing.T) {
		env := newEnv(t)
		for _, id := range []string{"ord-nope", ""} {
			if _, err := env.Orders.Get(t.Context(), id); !errors.Is(err, orders.ErrNotFound) {
				t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
			}
		}
	})
}

func testHappyPath(t *testing.T, env Env) {
	ctx := t.Context()
	paid := watchPaid(t, env)
	a := newProduct(t, env, 1250, 300, 5)
	b := newProduct(t, env, 999, 1234, 5)
	user := newUser()
	fillCart(t, env, user, cart.Item{ProductID: a, Quantity: 2}, cart.Item{ProductID: b, Quantity: 1})
	req := Request(user)

	before := time.Now()
	ord, err := env.Orders.Checkout(ctx, newKey(), req)
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	after := time.Now()

	// 2 × 12.50 + 9.99; 2 × 300 g + 1234 g = 1834 g ships for 5.00 + 1.84.
	wantItems := []orders.Item{
		{ProductID: a, Quantity: 2, UnitPrice: money.Cents(1250)},
		{ProductID: b, Quantity: 1, UnitPrice: money.Cents(999)},
	}
	if ord.ID == "" || ord.UserID != user || ord.Status != orders.StatusPaid || ord.TrackingID != "" {
		t.Errorf("order %+v: want an ID, user %s, status paid, no tracking ID", ord, user)
	}
	if !slices.Equal(ord.Items, wantItems) {
		t.Errorf("items %+v, want %+v", ord.Items, wantItems)
	}
	if ord.Subtotal != money.Cents(3499) || ord.Shipping != money.Cents(684) || ord.Total != money.Cents(4183) {
		t.Errorf("amounts: subtotal %v shipping %v total %v, want USD 34.99, 6.84, 41.83", ord.Subtotal, ord.Shipping, ord.Total)
	}
	if ord.CreatedAt.Location() != time.UTC ||
		ord.CreatedAt.Before(before.Add(-time.Second)) || ord.CreatedAt.After(after) {
		t.Errorf("created_at %v: want UTC, between %v and %v", ord.CreatedAt, before, after)
	}

	got, err := env.Orders.Get(ctx, ord.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSameOrder(t, got, ord)
	list, err := ListAll(ctx, env.Orders, user)
	if err != nil || len(list) != 1 || list[0].ID != ord.ID {
		t.Errorf("ListByUser: %+v %v, want the one order", list, err)
	}

	assertStock(t, env, a, inventory.Stock{ProductID: a, Available: 3, Reserved: 0, Sold: 2})
	assertStock(t, env, b, inventory.Stock{ProductID: b, Available: 4, Reserved: 0, Sold: 1})
	assertCart(t, env, user, nil)
	ch, err := env.Payments.Get(ctx, ord.ID)
	if err != nil || ch.Status != payments.StatusCaptured || ch.Amount != ord.Total {
		t.Errorf("charge of the order: %+v %v, want captured %v", ch, err, ord.Total)
	}

	if paid != nil {
		e := paid.waitOne(t, ord.ID)
		want := events.OrderPaid{
			OrderID: ord.ID, UserID: user, Email: req.Email, Address: req.Address,
			Items:       []events.Item{{ProductID: a, Quantity: 2}, {ProductID: b, Quantity: 1}},
			WeightGrams: 1834, Total: ord.Total,
		}
		e.PaidAt = time.Time{}
		if fmt.Sprint(e) != fmt.Sprint(want) {
			t.Errorf("order-paid %+v, want %+v", e, want)
		}
	}
}

func testDeclined(t *testing.T, newEnv func(t *testing.T) Env) {
	lastMonth := time.Now().AddDate(0, 0, -time.Now().Day()) // the last day of the previous month
	for _, tc := range []struct {
		name string
		card payments.Card
		want error
	}{
		{"CardDeclined", payments.Card{Number: CardDeclined, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVV: "123"}, payments.ErrCardDeclined},
		{"InsufficientFunds", payments.Card{Number: CardInsufficientFunds, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVV: "123"}, payments.ErrInsufficientFunds},
		{"Expired", payments.Card{Number: CardApproved, ExpMonth: int(lastMonth.Month()), ExpYear: lastMonth.Year(), CVV: "123"}, payments.ErrCardExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			ctx := t.Context()
			p := newProduct(t, env, 500, 100, 5)
			user := newUser()
			fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 2})
			req := Request(user)
			req.Card = tc.card
			key := newKey()

			_, err := env.Orders.Checkout(ctx, key, req)
			if !errors.Is(err, payments.ErrDeclined) || !errors.Is(err, tc.want) {
				t.Fatalf("Checkout: %v, want %v", err, tc.want)
			}
			assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 5})
			assertCart(t, env, user, []cart.Item{{ProductID: p, Quantity: 2}})
			assertNoOrders(t, env, user)

			// Nothing of the declined attempt remains: the customer may retry under the same
			// key with another card.
			req.Card = Request(user).Card
			ord, err := env.Orders.Checkout(ctx, key, req)
			if err != nil {
				t.Fatalf("Checkout again with a good card: %v", err)
			}
			assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 3, Sold: 2})
			if ch, err := env.Payments.Get(ctx, ord.ID); err != nil || ch.Status != payments.StatusCaptured {
				t.Errorf("charge after retry: %+v %v, want captured", ch, err)
			}
		})
	}
}

func testOutOfStock(t *testing.T, env Env) {
	ctx := t.Context()
	plenty := newProduct(t, env, 100, 10, 10)
	scarce := newProduct(t, env, 100, 10, 1)
	user := newUser()
	items := []cart.Item{{ProductID: plenty, Quantity: 3}, {ProductID: scarce, Quantity: 2}}
	fillCart(t, env, user, items...)

	key := newKey()
	_, err := env.Orders.Checkout(ctx, key, Request(user))
	if !errors.Is(err, inventory.ErrOutOfStock) {
		t.Fatalf("Checkout: %v, want ErrOutOfStock", err)
	}
	var oos *inventory.OutOfStockError
	if !errors.As(err, &oos) || oos.ProductID != scarce {
		t.Errorf("Checkout: %v, want an *OutOfStockError naming %s", err, scarce)
	}
	if !strings.Contains(err.Error(), scarce) {
		t.Errorf("error %q does not name %s", err, scarce)
	}
	assertStock(t, env, plenty, inventory.Stock{ProductID: plenty, Available: 10})
	assertStock(t, env, scarce, inventory.Stock{ProductID: scarce, Available: 1})
	assertCart(t, env, user, items)
	assertNoOrders(t, env, user)

	// Nothing of the failed attempt remains: once restocked, the same request goes through.
	if _, err := env.Inventory.Add(ctx, scarce, 1); err != nil {
		t.Fatalf("restock: %v", err)
	}
	if _, err := env.Orders.Checkout(ctx, key, Request(user)); err != nil {
		t.Fatalf("Checkout after restocking: %v", err)
	}
	assertStock(t, env, scarce, inventory.Stock{ProductID: scarce, Sold: 2})
}

func testUnknownProduct(t *testing.T, env Env) {
	ctx := t.Context()
	p := newProduct(t, env, 100, 10, 10)
	user := newUser()
	items := []cart.Item{{ProductID: p, Quantity: 1}, {ProductID: "no-such-product", Quantity: 1}}
	fillCart(t, env, user, items...)
	if _, err := env.Orders.Checkout(ctx, newKey(), Request(user)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Checkout: %v, want catalog.ErrNotFound", err)
	}
	assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 10})
	assertCart(t, env, user, items)
	assertNoOrders(t, env, user)
}

func testEmptyCart(t *testing.T, env Env) {
	ctx := t.Context()
	user := newUser()
	key := newKey()
	_, err := env.Orders.Checkout(ctx, key, Request(user))
	if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "cart" {
		t.Fatalf("Checkout of an empty cart: %v, want a validation error on field cart", err)
	}
	assertNoOrders(t, env, user)
	// The key was not used up: once the cart has something, the same request goes through.
	p := newProduct(t, env, 100, 10, 10)
	fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 1})
	if _, err := env.Orders.Checkout(ctx, key, Request(user)); err != nil {
		t.Fatalf("Checkout after filling the cart: %v", err)
	}
}

func testValidation(t *testing.T, env Env) {
	ctx := t.Context()
	p := newProduct(t, env, 100, 10, 10)
	user := newUser()
	fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 1})
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name  string
		key   string
		edit  func(r *orders.CheckoutRequest)
		field string
	}{
		{"EmptyKey", "", nil, "Idempotency-Key"},
		{"LongKey", long(65), nil, "Idempotency-Key"},
		{"ControlInKey", "abc\ndef", nil, "Idempotency-Key"},
		{"NonASCIIKey", "clé", nil, "Idempotency-Key"},
		{"NoUser", "k", func(r *orders.CheckoutRequest) { r.UserID = "" }, "user_id"},
		{"LongUser", "k", func(r *orders.CheckoutRequest) { r.UserID = long(129) }, "user_id"},
		{"NoEmail", "k", func(r *orders.CheckoutRequest) { r.Email = "" }, "email"},
		{"EmailWithoutAt", "k", func(r *orders.CheckoutRequest) { r.Email = "someone.example.com" }, "email"},
		{"EmailTwoAts", "k", func(r *orders.CheckoutRequest) { r.Email = "a@b@example.com" }, "email"},
		{"LongEmail", "k", func(r *orders.CheckoutRequest) { r.Email = long(243) + "@example.com" }, "email"},
		{"NoStreet", "k", func(r *orders.CheckoutRequest) { r.Address.Street = "" }, "address.street"},
		{"BlankCity", "k", func(r *orders.CheckoutRequest) { r.Address.City = "  " }, "address.city"},
		{"NoPostalCode", "k", func(r *orders.CheckoutRequest) { r.Address.PostalCode = "" }, "address.postal_code"},
		{"LongCountry", "k", func(r *orders.CheckoutRequest) { r.Address.Country = long(201) }, "address.country"},
		{"LuhnInvalidCard", "k", func(r *orders.CheckoutRequest) { r.Card.Number = "4242424242424241" }, "card.number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := Request(user)
			if tc.edit != nil {
				tc.edit(&req)
			}
			_, err := env.Orders.Checkout(ctx, tc.key, req)
			if !errors.Is(err, validation.ErrInvalid) {
				t.Fatalf("Checkout: %v, want a validation error", err)
			}
			if got := validation.FieldOf(err); got != tc.field {
				t.Errorf("field %q (%v), want %q", got, err, tc.field)
			}
		})
	}
	// The longest valid values pass.
	req := Request(user)
	req.UserID = user
	req.Email = long(242) + "@example.com"
	req.Address.Street = strings.Repeat("é", 200)
	if _, err := env.Orders.Checkout(ctx, long(64), req); err != nil {
		t.Fatalf("Checkout at the limits: %v", err)
	}
	assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 9, Sold: 1})
}

func testIdempotentReplay(t *testing.T, env Env) {
	ctx := t.Context()
	paid := watchPaid(t, env)
	p := newProduct(t, env, 700, 10, 10)
	user := newUser()
	fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 3})
	key, req := newKey(), Request(user)
	first, err := env.Orders.Checkout(ctx, key, req)
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	// The cart is empty now; a replay must answer from the key, not from the cart.
	second, err := env.Orders.Checkout(ctx, key, req)
	if err != nil {
		t.Fatalf("Checkout replayed: %v", err)
	}
	assertSameOrder(t, second, first)
	assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 7, Sold: 3})
	if list, err := ListAll(ctx, env.Orders, user); err != nil || len(list) != 1 {
		t.Errorf("ListByUser: %d orders %v, want 1", len(list), err)
	}
	if ch, err := env.Payments.Get(ctx, first.ID); err != nil || ch.Status != payments.StatusCaptured || ch.Amount != first.Total {
		t.Errorf("charge: %+v %v, want one captured charge of %v", ch, err, first.Total)
	}
	// A replay returns the order as it is now.
	if _, err := env.Orders.MarkShipped(ctx, first.ID, "trk-1"); err != nil {
		t.Fatalf("MarkShipped: %v", err)
	}
	third, err := env.Orders.Checkout(ctx, key, req)
	if err != nil || third.ID != first.ID || third.Status != orders.StatusShipped || third.TrackingID != "trk-1" {
		t.Errorf("Checkout replayed after shipping: %+v %v, want order %s shipped", third, err, first.ID)
	}
	if paid != nil {
		paid.waitOne(t, first.ID)
	}
}

func testConflict(t *testing.T, env Env) {
	ctx := t.Context()
	p := newProduct(t, env, 700, 10, 10)
	user := newUser()
	fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 1})
	key, req := newKey(), Request(user)
	first, err := env.Orders.Checkout(ctx, key, req)
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 1})
	for name, edit := range map[string]func(r *orders.CheckoutRequest){
		"Email":   func(r *orders.CheckoutRequest) { r.Email = "other@example.com" },
		"Address": func(r *orders.CheckoutRequest) { r.Address.City = "Elsewhere" },
		"Card":    func(r *orders.CheckoutRequest) { r.Card.CVV = "999" },
	} {
		other := req
		edit(&other)
		if _, err := env.Orders.Checkout(ctx, key, other); !errors.Is(err, orders.ErrIdempotencyConflict) {
			t.Errorf("Checkout with another %s under the same key: %v, want ErrIdempotencyConflict", name, err)
		}
	}
	assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 9, Sold: 1})
	assertCart(t, env, user, []cart.Item{{ProductID: p, Quantity: 1}})
	list, err := ListAll(ctx, env.Orders, user)
	if err != nil || len(list) != 1 || list[0].ID != first.ID {
		t.Errorf("ListByUser: %+v %v, want only %s", list, err, first.ID)
	}
}

func testConcurrentDuplicates(t *testing.T, env Env) {
	ctx := t.Context()
	paid := watchPaid(t, env)
	p := newProduct(t, env, 700, 10, 10)
	user := newUser()
	fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 2})
	key, req := newKey(), Request(user)

	const n = 10
	results := make([]orders.Order, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = env.Orders.Checkout(ctx, key, req) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("duplicate %d: %v", i, errs[i])
		}
		if results[i].ID != results[0].ID {
			t.Fatalf("duplicate %d got order %s, duplicate 0 got %s", i, results[i].ID, results[0].ID)
		}
	}
	assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 8, Sold: 2})
	if list, err := ListAll(ctx, env.Orders, user); err != nil || len(list) != 1 {
		t.Errorf("ListByUser: %d orders %v, want 1", len(list), err)
	}
	if ch, err := env.Payments.Get(ctx, results[0].ID); err != nil || ch.Status != payments.StatusCaptured {
		t.Errorf("charge: %+v %v, want captured", ch, err)
	}
	if paid != nil {
		paid.waitOne(t, results[0].ID)
	}
}

func testNoOversell(t *testing.T, env Env) {
	ctx := t.Context()
	const stock, buyers = 10, 40
	p := newProduct(t, env, 100, 10, stock)
	users := make([]string, buyers)
	for i := range users {
		users[i] = newUser()
		fillCart(t, env, users[i], cart.Item{ProductID: p, Quantity: 1})
	}
	errs := make([]error, buyers)
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() { _, errs[i] = env.Orders.Checkout(ctx, newKey(), Request(users[i])) })
	}
	wg.Wait()

	sold := 0
	for i, err := range errs {
		var oos *inventory.OutOfStockError
		switch {
		case err == nil:
			sold++
			assertCart(t, env, users[i], nil)
			if list, err := ListAll(ctx, env.Orders, users[i]); err != nil || len(list) != 1 {
				t.Errorf("buyer %d: %d orders %v, want 1", i, len(list), err)
			}
		case errors.As(err, &oos) && oos.ProductID == p:
			assertCart(t, env, users[i], []cart.Item{{ProductID: p, Quantity: 1}})
			assertNoOrders(t, env, users[i])
		default:
			t.Errorf("buyer %d: %v, want success or out of stock of %s", i, err, p)
		}
	}
	if sold != stock {
		t.Errorf("%d checkouts succeeded, want %d", sold, stock)
	}
	assertStock(t, env, p, inventory.Stock{ProductID: p, Available: 0, Reserved: 0, Sold: stock})
}

func testHistory(t *testing.T, env Env) {
	ctx := t.Context()
	p := newProduct(t, env, 100, 10, 10)
	user := newUser()
	var want []string
	for range 3 {
		fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 1})
		ord, err := env.Orders.Checkout(ctx, newKey(), Request(user))
		if err != nil {
			t.Fatalf("Checkout: %v", err)
		}
		want = append([]string{ord.ID}, want...)
	}
	list, err := ListAll(ctx, env.Orders, user)
	if err != nil {
		t.Fatalf("ListByUser: %v", err)
	}
	var got []string
	for _, o := range list {
		got = append(got, o.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("history %v, want newest first %v", got, want)
	}
	for i := 1; i < len(list); i++ {
		if list[i].CreatedAt.After(list[i-1].CreatedAt) {
			t.Errorf("order %d created %v, after the newer %v", i, list[i].CreatedAt, list[i-1].CreatedAt)
		}
	}
	assertNoOrders(t, env, newUser())
}

func testHistoryPages(t *testing.T, env Env) {
	ctx := t.Context()
	p := newProduct(t, env, 100, 10, 10)
	user := newUser()
	var want []string // newest first
	for range 7 {
		fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 1})
		ord, err := env.Orders.Checkout(ctx, newKey(), Request(user))
		if err != nil {
			t.Fatalf("Checkout: %v", err)
		}
		want = append([]string{ord.ID}, want...)
	}
	for _, tc := range []struct {
		size  int
		pages []int
	}{{3, []int{3, 3, 1}}, {1, []int{1, 1, 1, 1, 1, 1, 1}}, {6, []int{6, 1}}, {7, []int{7}}, {0, []int{7}}, {100, []int{7}}} {
		var got []string
		var pages []int
		token := ""
		for range len(want) + 1 {
			page, err := env.Orders.ListByUser(ctx, orders.ListRequest{UserID: user, PageSize: tc.size, PageToken: token})
			if err != nil {
				t.Fatalf("page size %d, token %q: %v", tc.size, token, err)
			}
			for _, o := range page.Orders {
				got = append(got, o.ID)
			}
			pages = append(pages, len(page.Orders))
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		if !slices.Equal(got, want) || !slices.Equal(pages, tc.pages) {
			t.Errorf("page size %d: %v in pages %v, want %v in pages %v", tc.size, got, pages, want, tc.pages)
		}
	}

	first, err := env.Orders.ListByUser(ctx, orders.ListRequest{UserID: user, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		req   orders.ListRequest
		field string
	}{
		{orders.ListRequest{UserID: user, PageSize: -1}, "page_size"},
		{orders.ListRequest{UserID: user, PageSize: paging.MaxSize + 1}, "page_size"},
		{orders.ListRequest{UserID: user, PageToken: "!!"}, "page_token"},
		{orders.ListRequest{UserID: user, PageToken: first.NextPageToken + "A"}, "page_token"},
		{orders.ListRequest{UserID: newUser(), PageToken: first.NextPageToken}, "page_token"}, // past that user's end
		{orders.ListRequest{UserID: "", PageSize: 3}, "user_id"},
	} {
		if _, err := env.Orders.ListByUser(ctx, bad.req); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != bad.field {
			t.Errorf("ListByUser(%+v): %v, want a validation error on %s", bad.req, err, bad.field)
		}
	}
}

// ListAll walks every page of a user's orders (of the default size) and returns them all,
// newest first, or an error if the pages break their rules (pagingtest.Walk).
func ListAll(ctx context.Context, svc orders.Service, user string) ([]orders.Order, error) {
	return pagingtest.Walk(ctx, "orders of "+user, orders.DefaultPageSize,
		func(o orders.Order) string { return o.ID },
		func(ctx context.Context, token string) ([]orders.Order, string, error) {
			page, err := svc.ListByUser(ctx, orders.ListRequest{UserID: user, PageToken: token})
			return page.Orders, page.NextPageToken, err
		})
}

func testMarkShipped(t *testing.T, env Env) {
	ctx := t.Context()
	p := newProduct(t, env, 100, 10, 10)
	user := newUser()
	fillCart(t, env, user, cart.Item{ProductID: p, Quantity: 1})
	ord, err := env.Orders.Checkout(ctx, newKey(), Request(user))
	if err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	shipped, err := env.Orders.MarkShipped(ctx, ord.ID, "trk-abc")
	if err != nil {
		t.Fatalf("MarkShipped: %v", err)
	}
	want := ord
	want.Status, want.TrackingID = orders.StatusShipped, "trk-abc"
	assertSameOrder(t, shipped, want)
	again, err := env.Orders.MarkShipped(ctx, ord.ID, "trk-abc")
	if err != nil {
		t.Fatalf("MarkShipped again: %v", err)
	}
	assertSameOrder(t, again, want)
	got, err := env.Orders.Get(ctx, ord.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSameOrder(t, got, want)
	if list, err := ListAll(ctx, env.Orders, user); err != nil || len(list) != 1 || list[0].Status != orders.StatusShipped {
		t.Errorf("ListByUser: %+v %v, want the shipped order", list, err)
	}
	if _, err := env.Orders.MarkShipped(ctx, "ord-nope", "trk-abc"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("MarkShipped of an unknown order: %v, want ErrNotFound", err)
	}
	if _, err := env.Orders.MarkShipped(ctx, ord.ID, ""); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "tracking_id" {
		t.Errorf("MarkShipped without tracking ID: %v, want a validation error on tracking_id", err)
	}
}

// Request returns a valid checkout request for user with the approved test card.
func Request(user string) orders.CheckoutRequest {
	return orders.CheckoutRequest{
		UserID: user,
		Email:  user + "@example.com",
		Address: orders.Address{
			Street: "1 Test Street", City: "Testville", PostalCode: "12345", Country: "US",
		},
		Card: payments.Card{Number: CardApproved, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVV: "123"},
	}
}

func newKey() string  { return ids.New("key", time.Now()) }
func newUser() string { return ids.New("user", time.Now()) }

// newProduct adds a product of its own to the catalog with stock units available.
func newProduct(t *testing.T, env Env, cents, grams, stock int64) string {
	t.Helper()
	id := ids.New("ot", time.Now())
	if _, err := env.Catalog.Upsert(t.Context(), catalog.Product{
		ID: id, Name: "Test product " + id, Price: money.Cents(cents), WeightGrams: grams,
	}); err != nil {
		t.Fatalf("Upsert %s: %v", id, err)
	}
	if stock > 0 {
		if _, err := env.Inventory.Add(t.Context(), id, stock); err != nil {
			t.Fatalf("Add stock of %s: %v", id, err)
		}
	}
	return id
}

func fillCart(t *testing.T, env Env, user string, items ...cart.Item) {
	t.Helper()
	for _, it := range items {
		if _, err := env.Carts.Add(t.Context(), user, it); err != nil {
			t.Fatalf("add %+v to the cart of %s: %v", it, user, err)
		}
	}
}

func assertStock(t *testing.T, env Env, productID string, want inventory.Stock) {
	t.Helper()
	got, err := env.Inventory.Get(t.Context(), productID)
	if err != nil {
		t.Fatalf("stock of %s: %v", productID, err)
	}
	if got != want {
		t.Errorf("stock %+v, want %+v", got, want)
	}
}

func assertCart(t *testing.T, env Env, user string, want []cart.Item) {
	t.Helper()
	c, err := env.Carts.Get(t.Context(), user)
	if err != nil {
		t.Fatalf("cart of %s: %v", user, err)
	}
	if !slices.Equal(c.Items, want) {
		t.Errorf("cart of %s: %+v, want %+v", user, c.Items, want)
	}
}

func assertNoOrders(t *testing.T, env Env, user string) {
	t.Helper()
	list, err := ListAll(t.Context(), env.Orders, user)
	if err != nil || list == nil || len(list) != 0 {
		t.Errorf("orders of %s: %+v %v, want an empty, non-nil list", user, list, err)
	}
}

func assertSameOrder(t *testing.T, got, want orders.Order) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("order created_at %v, want %v", got.CreatedAt, want.CreatedAt)
	}
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("order %+v, want %+v", got, want)
	}
}

// paidWatch records the order-paid events of one test.
type paidWatch struct {
	mu   sync.Mutex
	seen map[string][]events.OrderPaid
}

// watchPaid subscribes a consumer of the test's own to order-paid, or returns nil when the
// environment does not expose its events.
func watchPaid(t *testing.T, env Env) *paidWatch {
	t.Helper()
	if env.Events == nil {
		return nil
	}
	w := &paidWatch{seen: map[string][]events.OrderPaid{}}
	sub, err := env.Events.Subscribe(context.WithoutCancel(t.Context()), ids.New("orderstest", time.Now()),
		[]string{events.OrderPaidSubject}, func(_ context.Context, m events.Message) error {
			e, err := events.Decode[events.OrderPaid](m)
			if err != nil {
				return err
			}
			w.mu.Lock()
			w.seen[e.OrderID] = append(w.seen[e.OrderID], e)
			w.mu.Unlock()
			return nil
		})
	if err != nil {
		t.Fatalf("subscribe to order-paid: %v", err)
	}
	t.Cleanup(sub.Stop)
	return w
}

// waitOne waits for orderID's order-paid event and checks there is exactly one.
func (w *paidWatch) waitOne(t *testing.T, orderID string) events.OrderPaid {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		got := slices.Clone(w.seen[orderID])
		w.mu.Unlock()
		switch {
		case len(got) > 1:
			t.Fatalf("%d order-paid events for %s, want 1", len(got), orderID)
		case len(got) == 1:
			return got[0]
		case time.Now().After(deadline):
			t.Fatalf("no order-paid event for %s within 10s", orderID)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline above
	}
}
