package loadtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// fakeShop is a tiny stand-in for the shop's API, strict where the scenario's correctness
// shows: a checkout of an empty cart is 400, a checkout without an Idempotency-Key is 400, the
// declined card is 402, and a request that carries the generator's bookkeeping headers is 400.
// Every request it gets is checked against the API's OpenAPI document (shop/httpapi's, the
// one the edges serve): one that breaks it is 400, and fails the test that made the shop.
// It is for the generator's own tests; the real shop is tested in TestShortRunAgainstMonolith.
type fakeShop struct {
	t        *testing.T
	contract *apitest.Contract
	broken   []string // what the contract said of the requests that break it
	mu       sync.Mutex
	carts    map[string]int // units per user
	keys     map[string]bool
	orders   int
	declined int
	byKind   map[Kind]int
	leaked   int // requests that carried X-Loadtest-* or X-Vegeta-* headers
	stock    map[string]int64
	// before, if set, runs first on every request (stalls, failures).
	before func(w http.ResponseWriter, r *http.Request) bool
}

func newFakeShop(t *testing.T) (*fakeShop, *httptest.Server) {
	contract, err := apitest.LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeShop{t: t, contract: contract, carts: map[string]int{}, keys: map[string]bool{}, byKind: map[Kind]int{}, stock: map[string]int64{}}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, b := range f.broken {
			if i == 10 {
				t.Errorf("... and %d more requests that break the API's document", len(f.broken)-i)
				break
			}
			t.Error(b)
		}
	})
	return f, srv
}

var fakeProducts = []apitest.Product{
	{ID: "sku-0001", Name: "Trailhead Tent", Price: apitest.Money{Currency: "USD", Units: 100}},
	{ID: "sku-0002", Name: "Steel Bottle", Price: apitest.Money{Currency: "USD", Units: 200}},
	{ID: "sku-0003", Name: "Camp Stove", Price: apitest.Money{Currency: "USD", Units: 300}},
}

func (f *fakeShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client is gone
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := f.contract.CheckRequest(r, body); err != nil {
		f.mu.Lock()
		f.broken = append(f.broken, err.Error())
		f.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if f.before != nil && !f.before(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range r.Header {
		if strings.HasPrefix(k, "X-Loadtest-") || strings.HasPrefix(k, "X-Vegeta-") {
			f.leaked++
		}
	}
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	p := r.URL.Path
	switch {
	case p == "/readyz":
		reply(200, map[string]string{"status": "ok"})
	case r.Method == http.MethodGet && p == "/v1/products":
		if r.URL.Query().Has("q") {
			f.byKind[KindSearch]++
		} else {
			f.byKind[KindList]++
		}
		reply(200, apitest.Page{Products: fakeProducts})
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/products/"):
		f.byKind[KindProduct]++
		reply(200, fakeProducts[0])
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/inventory/"):
		id := strings.TrimPrefix(p, "/v1/inventory/")
		reply(200, apitest.Stock{ProductID: id, Available: f.stock[id]})
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/v1/admin/inventory/"):
		if r.Header.Get("Authorization") != "Bearer secret" {
			reply(401, apitest.Problem{Status: 401})
			return
		}
		var body struct {
			Add int64 `json:"add"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.Add < 1 || body.Add > maxAdd {
			reply(400, apitest.Problem{Status: 400})
			return
		}
		id := strings.TrimPrefix(p, "/v1/admin/inventory/")
		f.stock[id] += body.Add
		reply(200, apitest.Stock{ProductID: id, Available: f.stock[id]})
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/v1/carts/") && strings.HasSuffix(p, "/items"):
		f.byKind[KindCartAdd]++
		user := strings.TrimSuffix(strings.TrimPrefix(p, "/v1/carts/"), "/items")
		var item apitest.CartItem
		if json.NewDecoder(r.Body).Decode(&item) != nil || item.Quantity < 1 || item.Quantity > 99 {
			reply(400, apitest.Problem{Status: 400})
			return
		}
		f.carts[user] += item.Quantity
		reply(200, apitest.Cart{UserID: user, Items: []apitest.CartItem{item}})
	case r.Method == http.MethodPost && p == "/v1/checkout":
		f.byKind[KindCheckout]++
		key := r.Header.Get("Idempotency-Key")
		var req apitest.CheckoutRequest
		if key == "" || len(key) > 64 || json.NewDecoder(r.Body).Decode(&req) != nil {
			reply(400, apitest.Problem{Status: 400, Detail: "bad request"})
			return
		}
		if f.carts[req.UserID] == 0 {
			reply(400, apitest.Problem{Status: 400, Detail: "cart is empty"})
			return
		}
		if f.keys[key] {
			reply(409, apitest.Problem{Status: 409, Detail: "key reused"})
			return
		}
		f.keys[key] = true
		if req.Card.Number == apitest.CardDeclined {
			f.declined++
			reply(402, apitest.Problem{Status: 402, Detail: "declined"})
			return
		}
		f.carts[req.UserID] = 0
		f.orders++
		reply(201, apitest.Order{ID: "ord", UserID: req.UserID, Status: "paid"})
	default:
		reply(404, apitest.Problem{Status: 404})
	}
}
