package host_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// routes are the API's routes, with {id} where the fuzzer's ID goes.
var routes = []struct{ method, path string }{
	{http.MethodGet, "/v1/products/{id}"},
	{http.MethodGet, "/v1/products?q={id}&page_token={id}"},
	{http.MethodGet, "/v1/carts/{id}"},
	{http.MethodPost, "/v1/carts/{id}/items"},
	{http.MethodDelete, "/v1/carts/{id}"},
	{http.MethodPost, "/v1/checkout"},
	{http.MethodGet, "/v1/orders/{id}"},
	{http.MethodGet, "/v1/users/{id}/orders"},
	{http.MethodGet, "/v1/users/{id}/notifications"},
	{http.MethodGet, "/v1/inventory/{id}"},
	{http.MethodPut, "/v1/admin/products/{id}"},
	{http.MethodPost, "/v1/admin/inventory/{id}"},
	{http.MethodGet, "/{id}"},
}

var (
	fuzzOnce   sync.Once
	fuzzClient *apitest.Client
	fuzzSKU    apitest.Product
)

// FuzzEdge drives the real edge of the whole shop (every context in one host, on a real
// NATS server) with generated routes, IDs, headers and bodies, and after every input checks
// that the shop answered with a 2xx or a 4xx that its OpenAPI document lists for the route,
// is still ready, and still takes a checkout: no input may stop a deployment from serving
// (API.md). A 4,100-byte order ID once closed the store connection for good.
func FuzzEdge(f *testing.F) {
	checkout := `{"user_id":"u-1","email":"a@example.com","address":{"street":"s","city":"c","postal_code":"1","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`
	for _, seed := range []struct {
		route             uint8
		id, header, value string
		admin             bool
		body              string
	}{
		{6, strings.Repeat("x", 4100), "", "", false, ""},
		{2, strings.Repeat("用", 43), "", "", false, ""},
		{3, "u-1", "", "", false, `{"product_id":"sku-0001","quantity":2}`},
		{3, "u-1", "", "", false, `{"product_id":"` + strings.Repeat("p", 5000) + `","quantity":1}`},
		{5, "", "Idempotency-Key", "k-1", false, checkout},
		{5, "", "Idempotency-Key", strings.Repeat("k", 65), false, checkout},
		{5, "", "X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793", false, `{"user_id":null}`},
		{10, "p\x01", "", "", true, `{"name":"n","description":"d","price":{"currency":"USD","units":1},"weight_grams":1}`},
		{11, "sku-0001", "", "", true, `{"add":1000001}`},
		{7, "u-1", "traceparent", "00-" + strings.Repeat("0", 32) + "-" + strings.Repeat("0", 16) + "-01", false, ""},
		{12, "..%2F..%2F", "", "", false, ""},
	} {
		f.Add(seed.route, seed.id, seed.header, seed.value, seed.admin, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, route uint8, id, header, value string, admin bool, body []byte) {
		c := fuzzShop(t)
		r := routes[int(route)%len(routes)]
		path := strings.ReplaceAll(r.path, "{id}", url.PathEscape(id))
		h := http.Header{}
		if admin {
			h.Set("Authorization", "Bearer "+hosttest.Token)
		}
		if header != "" && validHeader(header, value) {
			h.Set(header, value)
		}
		var b any
		if len(body) > 0 {
			b = body
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A generated request may break the API's document; its answer may not.
		resp, err := c.Invalid().Do(ctx, r.method, path, h, b)
		if _, broken := errors.AsType[*apitest.ContractError](err); broken {
			t.Fatal(err)
		}
		if err != nil {
			t.Skipf("the client could not send it: %v", err) // not the shop's doing
		}
		if resp.Status >= 500 {
			t.Fatalf("%s %s with %q: %q: %s, want a 2xx or a 4xx", r.method, path, header, value, resp)
		}
		c.WaitReady(t)
		user := apitest.NewID("u")
		c.AddToCart(t, user, fuzzSKU.ID, 1)
		c.Checkout(t, apitest.NewID("k"), apitest.NewCheckout(user, apitest.CardApproved))
	})
}

// fuzzShop starts the whole shop once per fuzzing process, with a product stocked for the
// checkouts that follow every input. It stops when the process ends.
func fuzzShop(t *testing.T) *apitest.Client {
	fuzzOnce.Do(func() {
		// A testing.TB that outlives one input: the fuzzing process's shop.
		tb := &processTB{TB: t}
		nats := hosttest.StartNATS(tb)
		h := hosttest.Start(tb, "edge+"+strings.Join(bounded.Names(), "+"), map[string]string{"SHOP_NATS_URL": nats.URL()})
		fuzzClient = apitest.NewClient(apitest.Target{BaseURL: h.BaseURL, AdminToken: hosttest.Token})
		fuzzSKU = fuzzClient.NewProduct(t, 100, 10)
		fuzzClient.AddStock(t, fuzzSKU.ID, 1_000_000)
	})
	return fuzzClient
}

// processTB keeps what a test would clean up for the life of the process, and logs to
// stderr: the fuzzer runs each input as a test of its own, and the shop serves them all.
type processTB struct{ testing.TB }

func (p *processTB) Cleanup(func()) {}

func (p *processTB) Log(args ...any) { fmt.Fprintln(os.Stderr, args...) }

func (p *processTB) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (p *processTB) TempDir() string {
	dir, err := os.MkdirTemp("", "mitosis-fuzz-")
	if err != nil {
		p.TB.Fatal(err)
	}
	return dir
}

// validHeader reports whether the client would send the header as given: a valid field,
// and none of those that frame the message (the client writes those itself).
func validHeader(k, v string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Trailer", "Upgrade", "Te", "Keep-Alive", "Expect":
		return false
	}
	return httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(v)
}
