package apitest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// badIDs are IDs that break API.md's rule (1..128 bytes of UTF-8 without control
// characters), by name. The 4,100-byte one once closed the store connection of the process
// that served it for good: it became a KV key, and the key a subject over NATS's 4 KB
// control line.
func badIDs() map[string]string {
	return map[string]string{
		"0 bytes":             "", // "/v1/carts/": the route's 400, not an unknown route's 404
		"129 bytes":           strings.Repeat("i", 129),
		"129 bytes of 43 × 用": strings.Repeat("用", 43),
		"4,100 bytes":         strings.Repeat("x", 4100),
		"a control character": "id\x01",
		"a DEL":               "id\x7f",
		"not UTF-8":           "id\xff",
	}
}

// testIDRule: every route answers a bad ID as API.md says (400 for a user ID anywhere and a
// product ID where one is written, 404 for a product ID that is read and any order ID),
// changes nothing, and the deployment still serves afterwards: it is ready and takes a
// checkout.
func testIDRule(t *testing.T, c *Client) {
	p := c.NewProduct(t, 100, 10)
	c.AddStock(t, p.ID, 5)
	user := NewID("u")
	admin := c.adminHeader()
	for name, id := range badIDs() {
		t.Run(name, func(t *testing.T) {
			esc := url.PathEscape(id)
			for _, r := range []struct {
				method, path string
				header       http.Header
				body         any
				status       int
			}{
				{http.MethodGet, "/v1/products/" + esc, nil, nil, http.StatusNotFound},
				{http.MethodGet, "/v1/inventory/" + esc, nil, nil, http.StatusNotFound},
				{http.MethodPost, "/v1/admin/inventory/" + esc, admin, map[string]int64{"add": 1}, http.StatusNotFound},
				{http.MethodPut, "/v1/admin/products/" + esc, admin, productBody(Product{Name: "n", Price: Money{"USD", 1}}), http.StatusBadRequest},
				{http.MethodGet, "/v1/carts/" + esc, nil, nil, http.StatusBadRequest},
				{http.MethodPost, "/v1/carts/" + esc + "/items", nil, map[string]any{"product_id": p.ID, "quantity": 1}, http.StatusBadRequest},
				{http.MethodDelete, "/v1/carts/" + esc, nil, nil, http.StatusBadRequest},
				{http.MethodGet, "/v1/orders/" + esc, nil, nil, http.StatusNotFound},
				{http.MethodGet, "/v1/users/" + esc + "/orders", nil, nil, http.StatusBadRequest},
				{http.MethodGet, "/v1/users/" + esc + "/notifications", nil, nil, http.StatusBadRequest},
			} {
				code := map[int]string{http.StatusNotFound: "not-found", http.StatusBadRequest: "invalid-argument"}[r.status]
				ExpectProblem(t, c.Invalid().Request(t, r.method, r.path, r.header, r.body), r.status, code)
			}
			// In a body: an encoder would replace invalid UTF-8 with U+FFFD, a valid ID, so
			// the bodies are written by hand, the ID's bytes as they are (malformed JSON then,
			// and 400 all the same).
			raw, err := json.Marshal(id)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(name, "not UTF-8") {
				raw = []byte(`"` + id + `"`)
			}
			ExpectProblem(t, c.Invalid().Request(t, http.MethodPost, "/v1/carts/"+user+"/items", nil,
				`{"product_id":`+string(raw)+`,"quantity":1}`), http.StatusBadRequest, "invalid-argument")
			checkout, err := json.Marshal(NewCheckout("USER", CardApproved))
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Invalid().CheckoutResponse(t.Context(), NewID("k"), strings.Replace(string(checkout), `"USER"`, string(raw), 1))
			if err != nil {
				t.Fatal(err)
			}
			ExpectProblem(t, r, http.StatusBadRequest, "invalid-argument")
		})
	}
	if crt := c.Cart(t, user); len(crt.Items) != 0 {
		t.Errorf("cart after adds of bad product IDs: %+v, want empty", crt)
	}

	// The longest user ID of multi-byte characters works on every route.
	longest := strings.Repeat("用", 42) + "ab" // 128 bytes
	c.AddToCart(t, longest, p.ID, 1)
	o := c.Checkout(t, NewID("k"), NewCheckout(longest, CardApproved))
	if got := c.Orders(t, longest); len(got) != 1 || got[0].ID != o.ID {
		t.Errorf("orders of a 128-byte user: %+v, want the one order %s", got, o.ID)
	}
	c.WaitNotifications(t, longest, o.ID, KindOrderPaid)

	// Still serving: ready, and a checkout of another user goes through.
	c.WaitReady(t)
	other := NewID("u")
	c.AddToCart(t, other, p.ID, 1)
	c.Checkout(t, NewID("k"), NewCheckout(other, CardApproved))
}
