package apitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Exchange is one request and its response, with IDs and timestamps normalised.
type Exchange struct {
	Request     string
	Status      int
	ContentType string
	Body        string
}

func (e Exchange) String() string {
	return fmt.Sprintf("%s -> %d %s %s", e.Request, e.Status, e.ContentType, e.Body)
}

var (
	generatedID = regexp.MustCompile(`\b[a-z]+-[0-9a-f]{28}\b`)
	timestamp   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
)

// Session runs one scripted session against c (browse, search, admin, cart, declines,
// checkout, idempotent retry, conflict, out of stock, order history, notifications) and
// returns what was asked and answered, for a test to compare between deployments: the
// differential. It writes fixed IDs (alice, diff-widget...), so each deployment it runs
// against must have fresh stores. Generated IDs are numbered by first appearance, so that
// the same ID reads the same wherever it reappears.
func Session(t *testing.T, c *Client) []Exchange {
	t.Helper()
	var out []Exchange
	names := map[string]string{}
	normalise := func(s string) string {
		s = generatedID.ReplaceAllStringFunc(s, func(id string) string {
			if n, ok := names[id]; ok {
				return n
			}
			n := fmt.Sprintf("<%s#%d>", id[:strings.IndexByte(id, '-')], len(names)+1)
			names[id] = n
			return n
		})
		return timestamp.ReplaceAllString(s, "<time>")
	}
	admin := c.adminHeader()
	send := func(c *Client, method, path string, header http.Header, body any) *Response {
		t.Helper()
		r := c.Request(t, method, path, header, body)
		out = append(out, Exchange{
			Request:     normalise(method + " " + path),
			Status:      r.Status,
			ContentType: r.Header.Get("Content-Type"),
			Body:        normalise(strings.TrimSpace(string(r.Body))),
		})
		return r
	}
	// do sends a request the API's document allows; bad, one that breaks it on purpose.
	do := func(method, path string, header http.Header, body any) *Response {
		t.Helper()
		return send(c, method, path, header, body)
	}
	bad := func(method, path string, header http.Header, body any) *Response {
		t.Helper()
		return send(c.Invalid(), method, path, header, body)
	}
	key := func(k string) http.Header { return http.Header{"Idempotency-Key": {k}} }
	now := time.Now()
	lastMonth := now.AddDate(0, -1, 0)
	checkout := func(user, number string, month, year int) map[string]any {
		return map[string]any{
			"user_id": user, "email": user + "@example.com",
			"address": map[string]string{"street": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
			"card":    map[string]any{"number": number, "exp_month": month, "exp_year": year, "cvv": "123"},
		}
	}
	approved := checkout("alice", "4242424242424242", 12, now.Year()+2)

	// Browse and search.
	first := do("GET", "/v1/products?page_size=3", nil, nil)
	var page struct {
		NextPageToken string `json:"next_page_token"`
	}
	_ = json.Unmarshal(first.Body, &page)
	do("GET", "/v1/products?page_size=3&page_token="+page.NextPageToken, nil, nil)
	do("GET", "/v1/products?q=TENT&page_size=5", nil, nil)
	bad("GET", "/v1/products?page_size=101", nil, nil)
	do("GET", "/v1/products?page_token=garbage", nil, nil)
	do("GET", "/v1/products/sku-0001", nil, nil)
	do("GET", "/v1/products/sku-nope", nil, nil)
	bad("GET", "/v1/nowhere", nil, nil)

	// Admin.
	widget := map[string]any{"name": "Diff Widget", "description": "Made for the differential test.",
		"price": map[string]any{"currency": "USD", "units": 1999}, "weight_grams": 345}
	bad("PUT", "/v1/admin/products/diff-widget", nil, widget)
	do("PUT", "/v1/admin/products/diff-widget", admin, widget)
	bad("PUT", "/v1/admin/products/diff-bad", admin, map[string]any{"name": "", "price": map[string]any{"currency": "USD", "units": 1}})
	do("POST", "/v1/admin/inventory/diff-widget", admin, map[string]any{"add": 3})
	do("POST", "/v1/admin/inventory/sku-0001", admin, map[string]any{"add": 10})
	do("POST", "/v1/admin/inventory/sku-nope", admin, map[string]any{"add": 1})
	bad("POST", "/v1/admin/inventory/sku-0001", admin, map[string]any{"add": 0})
	do("GET", "/v1/inventory/diff-widget", nil, nil)

	// Cart.
	do("GET", "/v1/carts/alice", nil, nil)
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-0001", "quantity": 2})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "diff-widget", "quantity": 1})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-0001", "quantity": 1})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-0001", "quantity": 99})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-nope", "quantity": 1})
	bad("POST", "/v1/carts/alice/items", nil, `{"product_id": "sku-0001", "quantity": 1, "extra": true}`)
	bad("POST", "/v1/carts/alice/items", nil, `{"product_id": `)

	// Checkouts that change nothing.
	do("POST", "/v1/checkout", key("decl-1"), checkout("alice", "4000000000000002", 12, now.Year()+2))
	do("POST", "/v1/checkout", key("decl-2"), checkout("alice", "4000000000009995", 12, now.Year()+2))
	do("POST", "/v1/checkout", key("decl-3"), checkout("alice", "4242424242424242", int(lastMonth.Month()), lastMonth.Year()))
	do("POST", "/v1/checkout", key("decl-4"), checkout("alice", "4242424242424241", 12, now.Year()+2))
	bad("POST", "/v1/checkout", nil, approved)
	bad("POST", "/v1/checkout", key("bad-1"), checkout("", "4242424242424242", 12, now.Year()+2))
	do("POST", "/v1/checkout", key("empty-1"), checkout("nobody", "4242424242424242", 12, now.Year()+2))
	do("GET", "/v1/carts/alice", nil, nil)
	do("GET", "/v1/inventory/sku-0001", nil, nil)

	// The checkout, its replay, and a conflicting reuse of its key.
	r := do("POST", "/v1/checkout", key("alice-1"), approved)
	var order Order
	if err := json.Unmarshal(r.Body, &order); err != nil || order.ID == "" {
		t.Fatalf("checkout: %s", r)
	}
	do("GET", "/v1/carts/alice", nil, nil)
	do("GET", "/v1/inventory/sku-0001", nil, nil)
	do("GET", "/v1/inventory/diff-widget", nil, nil)

	// Asynchronous effects, compared once settled (a replay answers the order's current
	// state, so it too waits for shipping).
	c.WaitShipped(t, order.ID)
	c.WaitNotifications(t, "alice", order.ID, "order-paid", "order-shipped")
	do("POST", "/v1/checkout", key("alice-1"), approved)
	do("POST", "/v1/checkout", key("alice-1"), checkout("alice", "5555555555554444", 12, now.Year()+2))
	do("GET", "/v1/orders/"+order.ID, nil, nil)
	do("GET", "/v1/users/alice/orders", nil, nil)
	do("GET", "/v1/users/alice/notifications", nil, nil)

	// Out of stock, names the product.
	do("POST", "/v1/carts/bob/items", nil, map[string]any{"product_id": "diff-widget", "quantity": 3})
	do("POST", "/v1/checkout", key("bob-1"), checkout("bob", "4242424242424242", 12, now.Year()+2))
	do("GET", "/v1/inventory/diff-widget", nil, nil)
	do("DELETE", "/v1/carts/bob", nil, nil)
	do("GET", "/v1/carts/bob", nil, nil)

	// Unknowns.
	do("GET", "/v1/orders/ord-nope", nil, nil)
	do("GET", "/v1/users/nobody/orders", nil, nil)
	do("GET", "/v1/users/nobody/notifications", nil, nil)
	do("GET", "/v1/inventory/sku-nope", nil, nil)
	return out
}

// CompareSessions fails t for every step where got (of deployment name) differs from want
// (of the deployment named base): status, content type and body, IDs and times aside.
func CompareSessions(t *testing.T, base string, want []Exchange, name string, got []Exchange) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s answered %d requests, %s %d", base, len(want), name, len(got))
	}
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("step %d differs:\n%s: %s\n%s: %s", i, base, want[i], name, got[i])
		}
	}
}
