package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The API's shapes as a client sees them (API.md, "Shapes"). The suite decodes every
// response into them with unknown fields disallowed, so an extra field fails a test.
type (
	// Money is an amount in cents.
	Money struct {
		Currency string `json:"currency"`
		Units    int64  `json:"units"`
	}
	// Product is a product; PutProduct sends it without ID.
	Product struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
		Price       Money  `json:"price"`
		WeightGrams int64  `json:"weight_grams"`
	}
	// Page is a page of the product list.
	Page struct {
		Products      []Product `json:"products"`
		NextPageToken string    `json:"next_page_token"`
	}
	// OrderPage is a page of a user's orders.
	OrderPage struct {
		Orders        []Order `json:"orders"`
		NextPageToken string  `json:"next_page_token"`
	}
	// NotificationPage is a page of a user's notifications.
	NotificationPage struct {
		Notifications []Notification `json:"notifications"`
		NextPageToken string         `json:"next_page_token"`
	}
	// CartItem is a line of a cart.
	CartItem struct {
		ProductID string `json:"product_id"`
		Quantity  int    `json:"quantity"`
	}
	// Cart is a user's cart.
	Cart struct {
		UserID string     `json:"user_id"`
		Items  []CartItem `json:"items"`
	}
	// Address is a shipping address.
	Address struct {
		Street     string `json:"street"`
		City       string `json:"city"`
		PostalCode string `json:"postal_code"`
		Country    string `json:"country"`
	}
	// Card is a payment card.
	Card struct {
		Number   string `json:"number"`
		ExpMonth int    `json:"exp_month"`
		ExpYear  int    `json:"exp_year"`
		CVV      string `json:"cvv"`
	}
	// CheckoutRequest is the body of POST /v1/checkout.
	CheckoutRequest struct {
		UserID  string  `json:"user_id"`
		Email   string  `json:"email"`
		Address Address `json:"address"`
		Card    Card    `json:"card"`
	}
	// OrderItem is a line of an order.
	OrderItem struct {
		ProductID string `json:"product_id"`
		Quantity  int    `json:"quantity"`
		UnitPrice Money  `json:"unit_price"`
	}
	// Order is an order. CreatedAt is kept as the server wrote it, so that its format can be
	// checked and two reads compared exactly.
	Order struct {
		ID         string      `json:"id"`
		UserID     string      `json:"user_id"`
		Status     string      `json:"status"`
		Items      []OrderItem `json:"items"`
		Subtotal   Money       `json:"subtotal"`
		Shipping   Money       `json:"shipping"`
		Total      Money       `json:"total"`
		TrackingID string      `json:"tracking_id"`
		CreatedAt  string      `json:"created_at"`
	}
	// Stock is a product's inventory.
	Stock struct {
		ProductID string `json:"product_id"`
		Available int64  `json:"available"`
		Reserved  int64  `json:"reserved"`
		Sold      int64  `json:"sold"`
	}
	// Notification is a message sent to a user.
	Notification struct {
		ID        string `json:"id"`
		Kind      string `json:"kind"`
		OrderID   string `json:"order_id"`
		CreatedAt string `json:"created_at"`
	}
	// Problem is an RFC 9457 problem document.
	Problem struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
)

// Values of API.md.
const (
	StatusPaid          = "paid"
	StatusShipped       = "shipped"
	KindOrderPaid       = "order-paid"
	KindOrderShipped    = "order-shipped"
	ProblemTypePrefix   = "https://mitosis.dev/problems/"
	MaxBodyBytes        = 1 << 20
	CardApproved        = "4242424242424242"
	CardDeclined        = "4000000000000002"
	CardInsufficient    = "4000000000009995"
	CardLuhnInvalid     = "4242424242424241"
	DefaultPollTimeout  = 20 * time.Second
	defaultHTTPTimeout  = 30 * time.Second
	maxPages            = 10_000 // bounds every walk of a list
	DefaultOrderPage    = 20     // the page size of a user's orders when none is given
	DefaultNoticePage   = 100    // the page size of a user's notifications when none is given
	maxIdempotencyKeyLn = 64
)

// NewID returns prefix + "-" + 16 random hex digits: an ID no other test or run uses.
func NewID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Client talks to one deployment over its public API. Methods that take a testing.TB fail
// the test on a transport error or an unexpected status, so they must be called from the
// test's goroutine; Do and CheckoutResponse return errors instead and are safe anywhere.
//
// Every request it sends and every response it gets is checked against the API's OpenAPI
// document (Contract): one that breaks it is a *ContractError naming the route, the status
// and what the validator said. Requests that break the document on purpose go through
// Invalid, which checks only their responses.
//
// The client keeps a ledger of the stock it added per product, so that CheckConservation
// can verify available + reserved + sold against it.
type Client struct {
	BaseURL     string
	AdminToken  string
	HTTP        *http.Client
	PollTimeout time.Duration // for WaitShipped and WaitNotifications; 0 means DefaultPollTimeout

	contract    *Contract
	contractErr error // why the document could not be loaded: every request fails with it
	invalid     bool  // the requests break the document on purpose: check only the responses
	ledger      *ledger
}

// ledger is the stock a client added per product, shared by the client and its Invalid view.
type ledger struct {
	mu    sync.Mutex
	added map[string]int64 // product ID → units added through AddStock
}

// NewClient returns a client of target. A nil target.Client gets a client with a timeout
// and enough idle connections for the suite's concurrent requests.
func NewClient(target Target) *Client {
	hc := target.Client
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Timeout: defaultHTTPTimeout, Transport: tr}
	}
	contract, err := LoadContract()
	return &Client{
		BaseURL:     strings.TrimSuffix(target.BaseURL, "/"),
		AdminToken:  target.AdminToken,
		HTTP:        hc,
		contract:    contract,
		contractErr: err,
		ledger:      &ledger{added: map[string]int64{}},
	}
}

// Invalid returns a client of the same deployment, sharing c's ledger, for requests that
// break the API's OpenAPI document on purpose (malformed JSON, unknown fields, oversize
// bodies, bad IDs, unknown routes, no credentials...): it sends them unchecked and checks
// only the responses, which must still be ones the document lists for the route.
func (c *Client) Invalid() *Client {
	d := *c
	d.invalid = true
	return &d
}

// Response is a complete HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *Response) String() string {
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// Do sends one request and reads the whole response. body is sent as it is when it is a
// []byte, a string or an io.Reader (the last without a Content-Length), else as JSON; nil
// sends none.
//
// A request that breaks the API's OpenAPI document is not sent (unless c is Invalid), and a
// response that breaks it is returned with a *ContractError.
func (c *Client) Do(ctx context.Context, method, path string, header http.Header, body any) (*Response, error) {
	if c.contractErr != nil {
		return nil, c.contractErr
	}
	var data []byte
	chunked := false
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	case string:
		data = []byte(b)
	case io.Reader:
		var err error
		if data, err = io.ReadAll(b); err != nil { // read first, to be checked
			return nil, fmt.Errorf("read %s %s body: %w", method, path, err)
		}
		chunked = true
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("encode %s %s body: %w", method, path, err)
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(data)
		if chunked {
			rd = struct{ io.Reader }{rd} // hides the Len method: the request goes chunked
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	maps.Copy(req.Header, header)
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !c.invalid {
		if err := c.contract.CheckRequest(req, data); err != nil {
			return nil, err
		}
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: respBody}
	if err := c.contract.CheckResponse(req, r.Status, r.Header, r.Body); err != nil {
		return r, err
	}
	return r, nil
}

// Request sends one request, failing t on a transport error.
func (c *Client) Request(t testing.TB, method, path string, header http.Header, body any) *Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultHTTPTimeout)
	defer cancel()
	r, err := c.Do(ctx, method, path, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (c *Client) adminHeader() http.Header {
	return http.Header{"Authorization": {"Bearer " + c.AdminToken}}
}

// PutProduct creates or replaces p (its ID in the path, the rest in the body).
func (c *Client) PutProduct(t testing.TB, p Product) Product {
	t.Helper()
	r := c.Request(t, http.MethodPut, "/v1/admin/products/"+url.PathEscape(p.ID), c.adminHeader(), productBody(p))
	var got Product
	expectJSON(t, "put product "+p.ID, r, http.StatusOK, &got)
	if got != p {
		t.Fatalf("put product: got %+v, want %+v", got, p)
	}
	// API.md does not promise that every replica of a deployment reads its own writes at
	// once; the tests that follow need the product everywhere, so wait for it.
	c.Eventually(t, "product "+p.ID+" readable", func() (bool, string) {
		r := c.Request(t, http.MethodGet, "/v1/products/"+url.PathEscape(p.ID), nil, nil)
		var seen Product
		return r.Status == http.StatusOK && decodeExact(r.Body, &seen) == nil && seen == p, r.String()
	})
	return got
}

// productBody is a product as the admin PUT takes it: without its id.
func productBody(p Product) map[string]any {
	return map[string]any{"name": p.Name, "description": p.Description, "price": p.Price, "weight_grams": p.WeightGrams}
}

// NewProduct creates a product with a new ID, the given price in cents and weight.
func (c *Client) NewProduct(t testing.TB, cents, weightGrams int64) Product {
	t.Helper()
	id := NewID("t")
	return c.PutProduct(t, Product{
		ID:          id,
		Name:        "Test product " + id,
		Description: "made by the API suite",
		Price:       Money{Currency: "USD", Units: cents},
		WeightGrams: weightGrams,
	})
}

// Product returns a product.
func (c *Client) Product(t testing.TB, id string) Product {
	t.Helper()
	var p Product
	expectJSON(t, "get product "+id, c.Request(t, http.MethodGet, "/v1/products/"+url.PathEscape(id), nil, nil), http.StatusOK, &p)
	return p
}

// Products returns one page of the product list; query holds q, page_size, page_token.
func (c *Client) Products(t testing.TB, query url.Values) Page {
	t.Helper()
	var p Page
	expectJSON(t, "list products", c.Request(t, http.MethodGet, "/v1/products?"+query.Encode(), nil, nil), http.StatusOK, &p)
	if p.Products == nil {
		t.Fatalf("list products: products is null")
	}
	return p
}

// AddStock adds n units of a product and records them in the client's ledger.
func (c *Client) AddStock(t testing.TB, productID string, n int64) Stock {
	t.Helper()
	r := c.Request(t, http.MethodPost, "/v1/admin/inventory/"+url.PathEscape(productID), c.adminHeader(), map[string]int64{"add": n})
	var s Stock
	expectJSON(t, "add stock to "+productID, r, http.StatusOK, &s)
	c.ledger.mu.Lock()
	c.ledger.added[productID] += n
	c.ledger.mu.Unlock()
	return s
}

// Inventory returns a product's stock.
func (c *Client) Inventory(t testing.TB, productID string) Stock {
	t.Helper()
	var s Stock
	expectJSON(t, "inventory of "+productID, c.Request(t, http.MethodGet, "/v1/inventory/"+url.PathEscape(productID), nil, nil), http.StatusOK, &s)
	return s
}

// CheckConservation fails t unless, for every product the client added stock to,
// available + reserved + sold equals what the client added. Call it at a quiet moment.
func (c *Client) CheckConservation(t testing.TB) {
	t.Helper()
	c.ledger.mu.Lock()
	added := maps.Clone(c.ledger.added)
	c.ledger.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(added)) {
		s := c.Inventory(t, id)
		if total := s.Available + s.Reserved + s.Sold; total != added[id] || s.Available < 0 || s.Reserved < 0 || s.Sold < 0 {
			t.Errorf("product %s: %+v sums to %d, want %d added", id, s, total, added[id])
		}
	}
}

// Cart returns a user's cart.
func (c *Client) Cart(t testing.TB, userID string) Cart {
	t.Helper()
	var crt Cart
	expectJSON(t, "cart of "+userID, c.Request(t, http.MethodGet, "/v1/carts/"+url.PathEscape(userID), nil, nil), http.StatusOK, &crt)
	return crt
}

// AddToCart adds quantity of a product to a user's cart and returns the cart.
func (c *Client) AddToCart(t testing.TB, userID, productID string, quantity int) Cart {
	t.Helper()
	r := c.Request(t, http.MethodPost, "/v1/carts/"+url.PathEscape(userID)+"/items", nil, CartItem{ProductID: productID, Quantity: quantity})
	var crt Cart
	expectJSON(t, "add to cart", r, http.StatusOK, &crt)
	return crt
}

// ClearCart empties a user's cart.
func (c *Client) ClearCart(t testing.TB, userID string) {
	t.Helper()
	r := c.Request(t, http.MethodDelete, "/v1/carts/"+url.PathEscape(userID), nil, nil)
	if r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("clear cart: got %s, want 204 without body", r)
	}
}

// NewCheckout returns a valid checkout for a user paying with card (a number), expiring
// next year.
func NewCheckout(userID, card string) CheckoutRequest {
	return CheckoutRequest{
		UserID:  userID,
		Email:   userID + "@example.com",
		Address: Address{Street: "1 Test Street", City: "Testville", PostalCode: "12345", Country: "US"},
		Card:    Card{Number: card, ExpMonth: 12, ExpYear: time.Now().Year() + 1, CVV: "123"},
	}
}

// CheckoutResponse posts a checkout (body as Do sends it) under an idempotency key, without
// the header when key is "". It is safe to call from any goroutine.
func (c *Client) CheckoutResponse(ctx context.Context, key string, body any) (*Response, error) {
	var h http.Header
	if key != "" {
		h = http.Header{"Idempotency-Key": {key}}
	}
	return c.Do(ctx, http.MethodPost, "/v1/checkout", h, body)
}

// Checkout checks out and fails t unless the answer is 201 with an order.
func (c *Client) Checkout(t testing.TB, key string, req CheckoutRequest) Order {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultHTTPTimeout)
	defer cancel()
	r, err := c.CheckoutResponse(ctx, key, req)
	if err != nil {
		t.Fatal(err)
	}
	var o Order
	expectJSON(t, "checkout", r, http.StatusCreated, &o)
	return o
}

// GetOrder returns an order.
func (c *Client) GetOrder(t testing.TB, id string) Order {
	t.Helper()
	var o Order
	expectJSON(t, "get order "+id, c.Request(t, http.MethodGet, "/v1/orders/"+url.PathEscape(id), nil, nil), http.StatusOK, &o)
	return o
}

// OrdersPage returns one page of a user's orders; query holds page_size and page_token.
func (c *Client) OrdersPage(t testing.TB, userID string, query url.Values) OrderPage {
	t.Helper()
	var p OrderPage
	expectJSON(t, "orders of "+userID, c.Request(t, http.MethodGet, "/v1/users/"+url.PathEscape(userID)+"/orders?"+query.Encode(), nil, nil), http.StatusOK, &p)
	if p.Orders == nil {
		t.Fatalf("orders of %s: orders is null", userID)
	}
	return p
}

// Orders returns all of a user's orders, newest first, walking every page of the default
// size (failing t unless every page but the last is full and no order comes twice).
func (c *Client) Orders(t testing.TB, userID string) []Order {
	t.Helper()
	all, _ := walkPages(t, "orders of "+userID, DefaultOrderPage, func(token string) ([]Order, string) {
		p := c.OrdersPage(t, userID, query("page_token", token))
		return p.Orders, p.NextPageToken
	}, func(o Order) string { return o.ID })
	return all
}

// NotificationsPage returns one page of a user's notifications; query holds page_size and
// page_token.
func (c *Client) NotificationsPage(t testing.TB, userID string, query url.Values) NotificationPage {
	t.Helper()
	var p NotificationPage
	expectJSON(t, "notifications of "+userID, c.Request(t, http.MethodGet, "/v1/users/"+url.PathEscape(userID)+"/notifications?"+query.Encode(), nil, nil), http.StatusOK, &p)
	if p.Notifications == nil {
		t.Fatalf("notifications of %s: notifications is null", userID)
	}
	return p
}

// Notifications returns all of a user's notifications, oldest first, walking every page of
// the default size (failing t unless every page but the last is full and none comes twice).
func (c *Client) Notifications(t testing.TB, userID string) []Notification {
	t.Helper()
	all, _ := walkPages(t, "notifications of "+userID, DefaultNoticePage, func(token string) ([]Notification, string) {
		p := c.NotificationsPage(t, userID, query("page_token", token))
		return p.Notifications, p.NextPageToken
	}, func(n Notification) string { return n.ID })
	return all
}

// walkPages reads a list from its first page to its last, fetch returning a page's elements
// and next token, and returns all the elements and the length of each page. It fails t
// unless every page but the last holds size elements, the last says "" and no ID (of id)
// comes twice.
func walkPages[T any](t testing.TB, what string, size int, fetch func(token string) ([]T, string), id func(T) string) (all []T, pages []int) {
	t.Helper()
	seen := map[string]bool{}
	token := ""
	for range maxPages {
		elems, next := fetch(token)
		for _, e := range elems {
			if seen[id(e)] {
				t.Fatalf("%s: %s listed twice", what, id(e))
			}
			seen[id(e)] = true
		}
		all = append(all, elems...)
		pages = append(pages, len(elems))
		if next == "" {
			if all == nil {
				all = []T{}
			}
			return all, pages
		}
		if len(elems) != size {
			t.Fatalf("%s: page %d has %d elements and a next page; every page but the last must have %d", what, len(pages), len(elems), size)
		}
		token = next
	}
	t.Fatalf("%s: more than %d pages", what, maxPages)
	return nil, nil
}

func (c *Client) pollTimeout() time.Duration {
	if c.PollTimeout > 0 {
		return c.PollTimeout
	}
	return DefaultPollTimeout
}

// Eventually polls cond every 50ms until it returns true, failing t after the client's
// poll timeout with what the last call said.
func (c *Client) Eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(c.pollTimeout())
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v; last: %s", what, c.pollTimeout(), state)
		}
		time.Sleep(50 * time.Millisecond) // the poll interval, not a wait for the effect
	}
}

// WaitShipped polls an order until it is shipped and returns it.
func (c *Client) WaitShipped(t testing.TB, orderID string) Order {
	t.Helper()
	var o Order
	c.Eventually(t, "order "+orderID+" shipped", func() (bool, string) {
		o = c.GetOrder(t, orderID)
		return o.Status == StatusShipped && o.TrackingID != "", fmt.Sprintf("%+v", o)
	})
	return o
}

// WaitNotifications polls a user's notifications until the order has one of each kind, and
// returns them all.
func (c *Client) WaitNotifications(t testing.TB, userID, orderID string, kinds ...string) []Notification {
	t.Helper()
	var list []Notification
	c.Eventually(t, fmt.Sprintf("notifications %v of order %s", kinds, orderID), func() (bool, string) {
		list = c.Notifications(t, userID)
		for _, k := range kinds {
			if countKind(list, orderID, k) == 0 {
				return false, fmt.Sprintf("%+v", list)
			}
		}
		return true, ""
	})
	return list
}

func countKind(list []Notification, orderID, kind string) int {
	n := 0
	for _, x := range list {
		if x.OrderID == orderID && x.Kind == kind {
			n++
		}
	}
	return n
}

// Consistently polls cond every 50ms for d and fails t the first time it returns false:
// for effects that must not happen (a second notification), however late they might come.
func (c *Client) Consistently(t testing.TB, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if ok, state := cond(); !ok {
			t.Fatalf("%s: no longer so: %s", what, state)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond) // the poll interval
	}
}

// WaitReady polls /readyz until the deployment answers 200, failing t after the client's
// poll timeout; connection errors count as not ready yet (the process may be starting).
func (c *Client) WaitReady(t testing.TB) {
	t.Helper()
	c.Eventually(t, "deployment ready", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := c.Do(ctx, http.MethodGet, "/readyz", nil, nil)
		if err != nil {
			return false, err.Error()
		}
		return r.Status == http.StatusOK, r.String()
	})
}
