package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/logtest"
	"github.com/mitosis-dev/mitosis/shop/money"
)

// serve runs one request through h.
func serve(h http.Handler, method, target string, header http.Header, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkProblem fails t unless rec is a problem document of status and code.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) httpapi.Problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); mt != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", rec.Header().Get("Content-Type"))
	}
	var p httpapi.Problem
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem: %v in %s", err, rec.Body)
	}
	if p.Type != httpapi.ProblemTypePrefix+code || p.Status != status || p.Title == "" || p.Detail == "" {
		t.Fatalf("problem %+v, want code %s status %d with a title and a detail", p, code, status)
	}
	return p
}

// jsonEqual reports whether two JSON texts are equal as values.
func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("response is not JSON: %v in %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func TestHandler(t *testing.T) {
	cfg := memoryConfig(t)
	ctx := t.Context()
	if _, err := cfg.Catalog.Upsert(ctx, catalog.Product{ID: "p-1", Name: "Pen", Description: "Blue ink", Price: money.Cents(1000), WeightGrams: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Inventory.Add(ctx, "p-1", 5); err != nil {
		t.Fatal(err)
	}
	h := httpapi.New(cfg)
	auth := http.Header{"Authorization": {"Bearer " + testToken}}
	jsonCT := http.Header{"Content-Type": {"application/json"}}

	cases := []struct {
		name           string
		method, target string
		header         http.Header
		body           string
		status         int
		code           string // the problem's code when status is an error
		want           string // the exact JSON body (as a value) when not ""
		allow          string // the Allow header of a wrong method's 404
	}{
		{name: "healthz", method: "GET", target: "/healthz", status: 200, want: `{"status":"ok"}`},
		{name: "readyz without a check", method: "GET", target: "/readyz", status: 200, want: `{"status":"ok"}`},

		{name: "product", method: "GET", target: "/v1/products/p-1", status: 200,
			want: `{"id":"p-1","name":"Pen","description":"Blue ink","price":{"currency":"USD","units":1000},"weight_grams":100}`},
		{name: "unknown product", method: "GET", target: "/v1/products/nope", status: 404, code: "not-found"},
		{name: "product id with an escaped slash", method: "GET", target: "/v1/products/p-1%2Fx", status: 404, code: "not-found"},
		{name: "search", method: "GET", target: "/v1/products?q=BLUE+INK&page_size=5", status: 200,
			want: `{"products":[{"id":"p-1","name":"Pen","description":"Blue ink","price":{"currency":"USD","units":1000},"weight_grams":100}],"next_page_token":""}`},
		{name: "search nothing", method: "GET", target: "/v1/products?q=zzzzzz", status: 200, want: `{"products":[],"next_page_token":""}`},
		{name: "page_size 0", method: "GET", target: "/v1/products?page_size=0", status: 400, code: "invalid-argument"},
		{name: "page_size -1", method: "GET", target: "/v1/products?page_size=-1", status: 400, code: "invalid-argument"},
		{name: "page_size 101", method: "GET", target: "/v1/products?page_size=101", status: 400, code: "invalid-argument"},
		{name: "page_size abc", method: "GET", target: "/v1/products?page_size=abc", status: 400, code: "invalid-argument"},
		{name: "page_size bad escape", method: "GET", target: "/v1/products?page_size=%zz", status: 400, code: "invalid-argument"},
		{name: "bad page_token", method: "GET", target: "/v1/products?page_token=%21%21", status: 400, code: "invalid-argument"},
		{name: "page_size empty means default", method: "GET", target: "/v1/products?q=&page_size=&page_token=", status: 200},

		{name: "cart of a new user", method: "GET", target: "/v1/carts/u-new", status: 200, want: `{"user_id":"u-new","items":[]}`},
		{name: "add to cart", method: "POST", target: "/v1/carts/u-1/items", header: jsonCT, body: `{"product_id":"p-1","quantity":2}`, status: 200,
			want: `{"user_id":"u-1","items":[{"product_id":"p-1","quantity":2}]}`},
		{name: "add merges", method: "POST", target: "/v1/carts/u-1/items", body: `{"quantity":3,"product_id":"p-1"}`, status: 200,
			want: `{"user_id":"u-1","items":[{"product_id":"p-1","quantity":5}]}`},
		{name: "add over 99", method: "POST", target: "/v1/carts/u-1/items", body: `{"product_id":"p-1","quantity":95}`, status: 400, code: "invalid-argument"},
		{name: "add an unknown product", method: "POST", target: "/v1/carts/u-1/items", body: `{"product_id":"nope","quantity":1}`, status: 404, code: "not-found"},
		{name: "add without product", method: "POST", target: "/v1/carts/u-1/items", body: `{"quantity":1}`, status: 400, code: "invalid-argument"},
		{name: "unknown field", method: "POST", target: "/v1/carts/u-1/items", body: `{"product_id":"p-1","quantity":1,"x":1}`, status: 400, code: "invalid-argument"},
		{name: "field in another case", method: "POST", target: "/v1/carts/u-1/items", body: `{"Product_ID":"p-1","quantity":1}`, status: 400, code: "invalid-argument"},
		{name: "duplicate field", method: "POST", target: "/v1/carts/u-1/items", body: `{"product_id":"p-1","quantity":1,"quantity":1}`, status: 400, code: "invalid-argument"},
		{name: "null body", method: "POST", target: "/v1/carts/u-1/items", body: `null`, status: 400, code: "invalid-argument"},
		{name: "empty body", method: "POST", target: "/v1/carts/u-1/items", status: 400, code: "invalid-argument"},
		{name: "trailing data", method: "POST", target: "/v1/carts/u-1/items", body: `{"product_id":"p-1","quantity":1} {}`, status: 400, code: "invalid-argument"},
		{name: "wrong type", method: "POST", target: "/v1/carts/u-1/items", body: `{"product_id":"p-1","quantity":"1"}`, status: 400, code: "invalid-argument"},
		{name: "cart unchanged by the rejected adds", method: "GET", target: "/v1/carts/u-1", status: 200,
			want: `{"user_id":"u-1","items":[{"product_id":"p-1","quantity":5}]}`},
		{name: "clear cart", method: "DELETE", target: "/v1/carts/u-1", status: 204},
		{name: "cleared cart", method: "GET", target: "/v1/carts/u-1", status: 200, want: `{"user_id":"u-1","items":[]}`},

		{name: "checkout without key", method: "POST", target: "/v1/checkout", body: `{}`, status: 400, code: "invalid-argument"},
		{name: "checkout with a key over 64", method: "POST", target: "/v1/checkout", header: http.Header{"Idempotency-Key": {strings.Repeat("k", 65)}}, body: `{}`, status: 400, code: "invalid-argument"},
		{name: "checkout with two keys", method: "POST", target: "/v1/checkout", header: http.Header{"Idempotency-Key": {"a", "b"}}, body: `{}`, status: 400, code: "invalid-argument"},
		{name: "checkout with a control character in the key", method: "POST", target: "/v1/checkout", header: http.Header{"Idempotency-Key": {"a\x7fb"}}, body: `{}`, status: 400, code: "invalid-argument"},
		{name: "checkout with a null address", method: "POST", target: "/v1/checkout", header: http.Header{"Idempotency-Key": {"k1"}},
			body: `{"user_id":"u-2","email":"a@example.com","address":null,"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`, status: 400, code: "invalid-argument"},
		{name: "checkout of an empty cart", method: "POST", target: "/v1/checkout", header: http.Header{"Idempotency-Key": {"k2"}},
			body: `{"user_id":"u-empty","email":"a@example.com","address":{"street":"s","city":"c","postal_code":"1","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`, status: 400, code: "invalid-argument"},
		{name: "unknown order", method: "GET", target: "/v1/orders/nope", status: 404, code: "not-found"},
		{name: "orders of a new user", method: "GET", target: "/v1/users/u-new/orders", status: 200, want: `{"orders":[],"next_page_token":""}`},
		{name: "orders, page_size empty means default", method: "GET", target: "/v1/users/u-new/orders?page_size=&page_token=", status: 200, want: `{"orders":[],"next_page_token":""}`},
		{name: "orders, page_size 100", method: "GET", target: "/v1/users/u-new/orders?page_size=100", status: 200, want: `{"orders":[],"next_page_token":""}`},
		{name: "orders, page_size 0", method: "GET", target: "/v1/users/u-new/orders?page_size=0", status: 400, code: "invalid-argument"},
		{name: "orders, page_size 101", method: "GET", target: "/v1/users/u-new/orders?page_size=101", status: 400, code: "invalid-argument"},
		{name: "orders, page_size abc", method: "GET", target: "/v1/users/u-new/orders?page_size=abc", status: 400, code: "invalid-argument"},
		{name: "orders, bad page_token", method: "GET", target: "/v1/users/u-new/orders?page_token=%21%21", status: 400, code: "invalid-argument"},
		{name: "orders, a token of the catalog", method: "GET", target: "/v1/users/u-new/orders?page_token=cC0x", status: 400, code: "invalid-argument"},
		{name: "notifications of a new user", method: "GET", target: "/v1/users/u-new/notifications", status: 200, want: `{"notifications":[],"next_page_token":""}`},
		{name: "notifications, page_size 100", method: "GET", target: "/v1/users/u-new/notifications?page_size=100&page_token=", status: 200, want: `{"notifications":[],"next_page_token":""}`},
		{name: "notifications, page_size 0", method: "GET", target: "/v1/users/u-new/notifications?page_size=0", status: 400, code: "invalid-argument"},
		{name: "notifications, page_size 101", method: "GET", target: "/v1/users/u-new/notifications?page_size=101", status: 400, code: "invalid-argument"},
		{name: "notifications, bad page_token", method: "GET", target: "/v1/users/u-new/notifications?page_token=%21%21", status: 400, code: "invalid-argument"},

		{name: "inventory", method: "GET", target: "/v1/inventory/p-1", status: 200, want: `{"product_id":"p-1","available":5,"reserved":0,"sold":0}`},
		{name: "inventory of an unknown product", method: "GET", target: "/v1/inventory/nope", status: 404, code: "not-found"},

		{name: "admin without token", method: "PUT", target: "/v1/admin/products/p-2", body: `{}`, status: 401, code: "unauthorized"},
		{name: "admin with a wrong token", method: "PUT", target: "/v1/admin/products/p-2", header: http.Header{"Authorization": {"Bearer nope"}}, body: `{}`, status: 401, code: "unauthorized"},
		{name: "admin with a token prefix", method: "PUT", target: "/v1/admin/products/p-2", header: http.Header{"Authorization": {"Bearer " + testToken[:5]}}, body: `{}`, status: 401, code: "unauthorized"},
		{name: "put product", method: "PUT", target: "/v1/admin/products/p-2", header: auth,
			body: `{"name":"Pad","description":"","price":{"currency":"USD","units":250},"weight_grams":40}`, status: 200,
			want: `{"id":"p-2","name":"Pad","description":"","price":{"currency":"USD","units":250},"weight_grams":40}`},
		{name: "put product with id", method: "PUT", target: "/v1/admin/products/p-3", header: auth,
			body: `{"id":"p-3","name":"Pad","description":"","price":{"currency":"USD","units":250},"weight_grams":40}`, status: 400, code: "invalid-argument"},
		{name: "put an invalid product", method: "PUT", target: "/v1/admin/products/p-3", header: auth,
			body: `{"name":"Pad","description":"","price":{"currency":"EUR","units":250},"weight_grams":40}`, status: 400, code: "invalid-argument"},
		{name: "put product, bad id", method: "PUT", target: "/v1/admin/products/a%01b", header: auth,
			body: `{"name":"Pad","description":"","price":{"currency":"USD","units":250},"weight_grams":40}`, status: 400, code: "invalid-argument"},
		{name: "put product, id of spaces and accents", method: "PUT", target: "/v1/admin/products/a%20%C3%BC", header: auth,
			body: `{"name":"Pad","description":"","price":{"currency":"USD","units":250},"weight_grams":40}`, status: 200,
			want: `{"id":"a ü","name":"Pad","description":"","price":{"currency":"USD","units":250},"weight_grams":40}`},
		{name: "put product, no weight", method: "PUT", target: "/v1/admin/products/p-4", header: auth,
			body: `{"name":"Pad","description":"","price":{"currency":"USD","units":250}}`, status: 400, code: "invalid-argument"},
		{name: "add stock", method: "POST", target: "/v1/admin/inventory/p-2", header: auth, body: `{"add":7}`, status: 200,
			want: `{"product_id":"p-2","available":7,"reserved":0,"sold":0}`},
		{name: "add 0", method: "POST", target: "/v1/admin/inventory/p-2", header: auth, body: `{"add":0}`, status: 400, code: "invalid-argument"},
		{name: "add too much", method: "POST", target: "/v1/admin/inventory/p-2", header: auth, body: `{"add":1000001}`, status: 400, code: "invalid-argument"},
		{name: "add to an unknown product", method: "POST", target: "/v1/admin/inventory/nope", header: auth, body: `{"add":1}`, status: 404, code: "not-found"},

		{name: "unknown route", method: "GET", target: "/v1/nope", status: 404, code: "not-found"},
		{name: "root", method: "GET", target: "/", status: 404, code: "not-found"},
		// An empty ID at the end of a path is an ID that breaks API.md's rule, answered as the
		// route answers one: 400 for a user ID and a product ID written, 404 for one read.
		{name: "an empty product ID", method: "GET", target: "/v1/products/", status: 404, code: "not-found"},
		{name: "the cart of an empty user ID", method: "GET", target: "/v1/carts/", status: 400, code: "invalid-argument"},
		{name: "clear the cart of an empty user ID", method: "DELETE", target: "/v1/carts/", status: 400, code: "invalid-argument"},
		{name: "add to the cart of an empty user ID", method: "POST", target: "/v1/carts//items", body: `{"product_id":"p-1","quantity":1}`, status: 400, code: "invalid-argument"},
		{name: "an empty order ID", method: "GET", target: "/v1/orders/", status: 404, code: "not-found"},
		{name: "the orders of an empty user ID", method: "GET", target: "/v1/users//orders", status: 400, code: "invalid-argument"},
		{name: "the inventory of an empty product ID", method: "GET", target: "/v1/inventory/", status: 404, code: "not-found"},
		{name: "put a product of an empty ID", method: "PUT", target: "/v1/admin/products/", header: auth,
			body: `{"name":"Pad","description":"","price":{"currency":"USD","units":250},"weight_grams":40}`, status: 400, code: "invalid-argument"},
		{name: "put a product of an empty ID without token", method: "PUT", target: "/v1/admin/products/", status: 401, code: "unauthorized"},
		{name: "stock a product of an empty ID", method: "POST", target: "/v1/admin/inventory/", header: auth, body: `{"add":1}`, status: 404, code: "not-found"},
		{name: "POST to an empty user's cart", method: "POST", target: "/v1/carts/", status: 404, code: "not-found", allow: "GET, DELETE"},
		{name: "unknown method on an unknown route", method: "PROPFIND", target: "/v1/nope", status: 404, code: "not-found"},
		// API.md's routes are methods and paths, and its problems hold no 405: a method a path
		// does not serve is an unknown route, whose Allow header says what the path serves.
		{name: "POST healthz", method: "POST", target: "/healthz", status: 404, code: "not-found", allow: "GET"},
		{name: "DELETE a product", method: "DELETE", target: "/v1/products/p-1", status: 404, code: "not-found", allow: "GET"},
		{name: "PATCH a cart", method: "PATCH", target: "/v1/carts/u-1", status: 404, code: "not-found", allow: "GET, DELETE"},
		{name: "GET checkout", method: "GET", target: "/v1/checkout", status: 404, code: "not-found", allow: "POST"},
		{name: "HEAD products", method: "HEAD", target: "/v1/products", status: 404, code: "not-found", allow: "GET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(h, tc.method, tc.target, tc.header, strings.NewReader(tc.body))
			if tc.code != "" {
				p := checkProblem(t, rec, tc.status, tc.code)
				if got := rec.Header().Get("Allow"); got != tc.allow {
					t.Errorf("Allow %q, want %q", got, tc.allow)
				}
				if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if tc.status == 400 && !strings.Contains(tc.name, "body") && p.Detail == "" {
					t.Errorf("400 without detail")
				}
				return
			}
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusNoContent {
				if rec.Body.Len() != 0 {
					t.Errorf("204 with body %q", rec.Body)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.want != "" && !jsonEqual(t, rec.Body.Bytes(), []byte(tc.want)) {
				t.Errorf("body %s, want %s", rec.Body, tc.want)
			}
		})
	}
}

// TestProblemDetails checks that the details name what the client needs to fix.
func TestProblemDetails(t *testing.T) {
	h := newHandler(t)
	cases := []struct {
		name, method, target string
		header               http.Header
		body                 string
		detail               string
	}{
		{"page_size", "GET", "/v1/products?page_size=0", nil, "", "page_size"},
		{"orders page_size", "GET", "/v1/users/u/orders?page_size=101", nil, "", "page_size"},
		{"orders page_token", "GET", "/v1/users/u/orders?page_token=bm90", nil, "", "page_token"},
		{"notifications page_size", "GET", "/v1/users/u/notifications?page_size=-3", nil, "", "page_size"},
		{"notifications page_token", "GET", "/v1/users/u/notifications?page_token=bzE", nil, "", "page_token"},
		{"quantity type", "POST", "/v1/carts/u/items", nil, `{"product_id":"sku-0001","quantity":"x"}`, "quantity"},
		{"unknown field", "POST", "/v1/carts/u/items", nil, `{"product_id":"sku-0001","colour":1}`, "colour"},
		{"nested unknown field", "POST", "/v1/checkout", http.Header{"Idempotency-Key": {"k"}}, `{"card":{"pin":1}}`, "card.pin"},
		{"missing key", "POST", "/v1/checkout", nil, `{}`, "Idempotency-Key"},
		{"add", "POST", "/v1/admin/inventory/sku-0001", http.Header{"Authorization": {"Bearer " + testToken}}, `{"add":0}`, "add"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := checkProblem(t, serve(h, tc.method, tc.target, tc.header, strings.NewReader(tc.body)), 400, "invalid-argument")
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not name %q", p.Detail, tc.detail)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHandler(t)
	item := `{"product_id":"sku-0001","quantity":1}`
	padded := func(n int) string { return item + strings.Repeat(" ", n-len(item)) }

	// Exactly 1 MiB is read; one byte more is 413, with or without a Content-Length.
	if rec := serve(h, "POST", "/v1/carts/u-1/items", nil, strings.NewReader(padded(httpapi.MaxBodyBytes))); rec.Code != 200 {
		t.Fatalf("1 MiB: status %d, %s", rec.Code, rec.Body)
	}
	checkProblem(t, serve(h, "POST", "/v1/carts/u-1/items", nil, strings.NewReader(padded(httpapi.MaxBodyBytes+1))), 413, "payload-too-large")
	chunked := struct{ io.Reader }{strings.NewReader(padded(httpapi.MaxBodyBytes + 1))}
	checkProblem(t, serve(h, "POST", "/v1/carts/u-1/items", nil, chunked), 413, "payload-too-large")
	checkProblem(t, serve(h, "PUT", "/v1/admin/products/x", http.Header{"Authorization": {"Bearer " + testToken}},
		strings.NewReader(strings.Repeat("x", httpapi.MaxBodyBytes+1))), 413, "payload-too-large")

	// A declared length over the limit is refused before anything is read.
	req := httptest.NewRequest("POST", "/v1/carts/u-1/items", strings.NewReader(item))
	req.ContentLength = httpapi.MaxBodyBytes + 1
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	checkProblem(t, rec, 413, "payload-too-large")

	// Every request body over 1 MiB is refused, declared or chunked, also on a route that
	// reads none, a route unknown, or an admin route without its token.
	for _, r := range []struct{ method, target string }{
		{"DELETE", "/v1/carts/u-1"}, {"GET", "/v1/products"}, {"GET", "/healthz"}, {"POST", "/nope"},
		{"PUT", "/v1/admin/products/x"},
	} {
		for _, body := range []io.Reader{
			strings.NewReader(padded(httpapi.MaxBodyBytes + 1)),
			struct{ io.Reader }{strings.NewReader(padded(httpapi.MaxBodyBytes + 1))},
		} {
			req := httptest.NewRequest(r.method, r.target, body)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			checkProblem(t, rec, 413, "payload-too-large")
		}
	}
	// A chunked body that breaks off is a bad request, on a route that reads none as well.
	broken := io.MultiReader(strings.NewReader(`{"product_id":`), iotest.ErrReader(io.ErrUnexpectedEOF))
	checkProblem(t, serve(h, "GET", "/v1/products", nil, broken), 400, "invalid-argument")
	// A chunked body within the limit is read as a declared one.
	chunkedItem := struct{ io.Reader }{strings.NewReader(item)}
	if rec := serve(h, "POST", "/v1/carts/u-2/items", nil, chunkedItem); rec.Code != 200 {
		t.Errorf("chunked cart add: status %d, %s", rec.Code, rec.Body)
	}
	if rec := serve(h, "GET", "/v1/carts/u-1", nil, nil); !strings.Contains(rec.Body.String(), `"quantity":1`) {
		t.Errorf("cart after a refused DELETE: %s", rec.Body)
	}
}

func TestReady(t *testing.T) {
	cfg := memoryConfig(t)
	var down error
	var mu sync.Mutex
	cfg.Ready = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return down
	}
	h := httpapi.New(cfg)
	if rec := serve(h, "GET", "/readyz", nil, nil); rec.Code != 200 || !jsonEqual(t, rec.Body.Bytes(), []byte(`{"status":"ok"}`)) {
		t.Fatalf("ready: %d %s", rec.Code, rec.Body)
	}
	mu.Lock()
	down = errors.New("nats: no connection")
	mu.Unlock()
	p := checkProblem(t, serve(h, "GET", "/readyz", nil, nil), 503, "unavailable")
	if !strings.Contains(p.Detail, "nats") {
		t.Errorf("detail %q does not say what is not ready", p.Detail)
	}
	if rec := serve(h, "GET", "/healthz", nil, nil); rec.Code != 200 {
		t.Errorf("healthz while not ready: %d", rec.Code)
	}
}

func TestAdminDisabled(t *testing.T) {
	cfg := memoryConfig(t)
	cfg.AdminToken = ""
	h := httpapi.New(cfg)
	for _, header := range []http.Header{nil, {"Authorization": {"Bearer "}}, {"Authorization": {"Bearer"}}, {"Authorization": {"Bearer " + testToken}}} {
		checkProblem(t, serve(h, "POST", "/v1/admin/inventory/sku-0001", header, strings.NewReader(`{"add":1}`)), 401, "unauthorized")
	}
}

func TestAdminSchemeCaseInsensitive(t *testing.T) {
	h := newHandler(t)
	rec := serve(h, "POST", "/v1/admin/inventory/sku-0001", http.Header{"Authorization": {"bearer " + testToken}}, strings.NewReader(`{"add":1}`))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

// panicky and blocking are catalogs that misbehave, to test the edge; the rest of the shop
// is real.
type panicky struct{ catalog.Service }

func (panicky) Get(context.Context, string) (catalog.Product, error) { panic("boom") }

type blocking struct{ catalog.Service }

func (blocking) List(ctx context.Context, _ catalog.ListRequest) (catalog.Page, error) {
	<-ctx.Done()
	return catalog.Page{}, ctx.Err()
}

func TestPanicIsRecovered(t *testing.T) {
	var logs logtest.Buffer
	cfg := memoryConfig(t)
	cfg.Catalog = panicky{cfg.Catalog}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h := httpapi.New(cfg)
	checkProblem(t, serve(h, "GET", "/v1/products/sku-0001", nil, nil), 500, "internal")
	if !strings.Contains(logs.String(), "handler panicked") || !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	// The server goes on serving.
	if rec := serve(h, "GET", "/v1/products", nil, nil); rec.Code != 200 {
		t.Errorf("after a panic: %d", rec.Code)
	}
}

func TestDeadline(t *testing.T) {
	var logs logtest.Buffer
	cfg := memoryConfig(t)
	cfg.Catalog = blocking{cfg.Catalog}
	cfg.Timeout = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h := httpapi.New(cfg)
	start := time.Now()
	p := checkProblem(t, serve(h, "GET", "/v1/products", nil, nil), 503, "unavailable")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if strings.Contains(p.Detail, "deadline") {
		t.Errorf("detail %q leaks the internal error", p.Detail)
	}
	if !strings.Contains(logs.String(), "deadline exceeded") {
		t.Errorf("error not logged: %s", logs.String())
	}
}

func TestAccessLog(t *testing.T) {
	var logs logtest.Buffer
	cfg := memoryConfig(t)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := httpapi.New(cfg)
	serve(h, "GET", "/v1/products/nope", nil, nil)
	if got := logs.String(); !strings.Contains(got, "path=/v1/products/nope") || !strings.Contains(got, "status=404") {
		t.Errorf("access log: %s", got)
	}
}

// TestBodyTooLargeClosesConnection: after a body over the limit the server closes the
// connection rather than read the rest of the body, also through the edge's writer wrapper.
// The overflow is small, so that the server would otherwise drain it and keep the
// connection alive.
func TestBodyTooLargeClosesConnection(t *testing.T) {
	srv := httptest.NewServer(newHandler(t))
	t.Cleanup(srv.Close)
	body := struct{ io.Reader }{strings.NewReader(`{"product_id":"sku-0001","quantity":1}` + strings.Repeat(" ", httpapi.MaxBodyBytes+1000))}
	resp, err := srv.Client().Post(srv.URL+"/v1/carts/u-1/items", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Errorf("status %d, Connection: close %v; want 413 and close", resp.StatusCode, resp.Close)
	}
}

// TestBodyTooLargeIsAnsweredToAClientThatSendsItAll: a client that writes its whole request
// before it reads (as Python's http.client does) gets the 413, not a reset connection, for
// a body well over the limit (7 MiB: more than the socket buffers of a loopback connection
// hold), declared or chunked.
func TestBodyTooLargeIsAnsweredToAClientThatSendsItAll(t *testing.T) {
	srv := httptest.NewServer(newHandler(t))
	t.Cleanup(srv.Close)
	body := `{"product_id":"sku-0001","quantity":1}` + strings.Repeat(" ", 7*httpapi.MaxBodyBytes)
	chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	for name, req := range map[string]string{
		"content-length": fmt.Sprintf("POST /v1/carts/u-1/items HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body),
		"chunked":        "POST /v1/carts/u-1/items HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Errorf("%s: writing the request: %v", name, err)
			conn.Close()
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s: reading the response: %v", name, err)
		} else if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
			t.Errorf("%s: status %d, Connection: close %v; want 413 and close", name, resp.StatusCode, resp.Close)
		}
		conn.Close()
	}
}

// gated is a catalog whose List waits, once it has said so on entered, until release is
// closed: requests held in flight for as long as a test needs.
type gated struct {
	catalog.Service
	entered chan struct{}
	release chan struct{}
}

func (g gated) List(ctx context.Context, req catalog.ListRequest) (catalog.Page, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return catalog.Page{}, ctx.Err()
	}
	return g.Service.List(ctx, req)
}

// Past MaxInFlight requests at once, the edge answers 503 with Retry-After at once instead
// of queueing (an overload costs the excess, not the process); the probes still answer, and
// once the requests in flight are done the next one is served.
func TestInFlightBound(t *testing.T) {
	cfg := memoryConfig(t)
	g := gated{Service: cfg.Catalog, entered: make(chan struct{}), release: make(chan struct{})}
	cfg.Catalog = g
	cfg.MaxInFlight = 2
	h := httpapi.New(cfg)

	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() { codes[i] = serve(h, "GET", "/v1/products", nil, nil).Code })
		select {
		case <-g.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d never reached the catalog", i)
		}
	}
	rec := serve(h, "GET", "/v1/products/p1", nil, nil)
	p := checkProblem(t, rec, 503, "unavailable")
	if rec.Header().Get("Retry-After") != "1" || !strings.Contains(p.Detail, "2 requests") {
		t.Errorf("Retry-After %q, detail %q: want 1 and the limit", rec.Header().Get("Retry-After"), p.Detail)
	}
	if rec.Header().Get("traceresponse") == "" && rec.Header().Get("X-Amzn-Trace-Id") == "" {
		t.Errorf("a turned-away request names no trace: %v", rec.Header())
	}
	for _, probe := range []string{"/healthz", "/readyz"} {
		if code := serve(h, "GET", probe, nil, nil).Code; code != 200 {
			t.Errorf("%s at the limit: %d, want 200", probe, code)
		}
	}
	close(g.release)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Errorf("the requests in flight got %v, want 200s", codes)
	}
	go func() { <-g.entered }()
	if code := serve(h, "GET", "/v1/products", nil, nil).Code; code != 200 {
		t.Errorf("after the requests in flight: %d, want 200", code)
	}
}
