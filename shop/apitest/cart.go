package apitest

import (
	"net/http"
	"slices"
	"testing"
)

func testCartAddMerge(t *testing.T, c *Client) {
	p1, p2 := c.NewProduct(t, 100, 10), c.NewProduct(t, 200, 20)
	user := NewID("u")
	steps := []struct {
		product string
		n       int
		want    []CartItem
	}{
		{p1.ID, 2, []CartItem{{p1.ID, 2}}},
		{p2.ID, 1, []CartItem{{p1.ID, 2}, {p2.ID, 1}}},
		{p1.ID, 3, []CartItem{{p1.ID, 5}, {p2.ID, 1}}}, // merges, keeps the line's place
	}
	for _, s := range steps {
		r := c.Request(t, http.MethodPost, "/v1/carts/"+user+"/items", nil, CartItem{s.product, s.n})
		var crt Cart
		expectJSON(t, "add to cart", r, http.StatusOK, &crt)
		ExpectKeys(t, "cart", r.Body, "user_id", "items")
		ExpectKeys(t, "cart item", firstElement(t, rawField(t, r.Body, "items")), "product_id", "quantity")
		if crt.UserID != user || !slices.Equal(crt.Items, s.want) {
			t.Fatalf("after adding %d of %s: %+v, want items %+v", s.n, s.product, crt, s.want)
		}
	}
	if crt := c.Cart(t, user); crt.UserID != user || !slices.Equal(crt.Items, steps[len(steps)-1].want) {
		t.Errorf("GET cart: %+v, want items %+v", crt, steps[len(steps)-1].want)
	}
}

func testCartOver99(t *testing.T, c *Client) {
	p := c.NewProduct(t, 100, 10)
	user := NewID("u")
	path := "/v1/carts/" + user + "/items"
	for _, n := range []int{0, -1, 100} {
		ExpectProblem(t, c.Invalid().Request(t, http.MethodPost, path, nil, CartItem{p.ID, n}), http.StatusBadRequest, "invalid-argument")
	}
	ExpectProblem(t, c.Invalid().Request(t, http.MethodPost, path, nil, CartItem{"", 1}), http.StatusBadRequest, "invalid-argument")
	c.AddToCart(t, user, p.ID, 60)
	ExpectProblem(t, c.Request(t, http.MethodPost, path, nil, CartItem{p.ID, 40}), http.StatusBadRequest, "invalid-argument")
	if crt := c.Cart(t, user); !slices.Equal(crt.Items, []CartItem{{p.ID, 60}}) {
		t.Fatalf("after a rejected add: %+v, want 60 units", crt.Items)
	}
	if crt := c.AddToCart(t, user, p.ID, 39); !slices.Equal(crt.Items, []CartItem{{p.ID, 99}}) {
		t.Fatalf("adding up to 99: %+v", crt.Items)
	}
	ExpectProblem(t, c.Request(t, http.MethodPost, path, nil, CartItem{p.ID, 1}), http.StatusBadRequest, "invalid-argument")
}

func testCartUnknownProduct(t *testing.T, c *Client) {
	user := NewID("u")
	r := c.Request(t, http.MethodPost, "/v1/carts/"+user+"/items", nil, CartItem{NewID("t"), 1})
	ExpectProblem(t, r, http.StatusNotFound, "not-found")
	if crt := c.Cart(t, user); len(crt.Items) != 0 {
		t.Errorf("cart after adding an unknown product: %+v, want empty", crt)
	}
}

func testCartDelete(t *testing.T, c *Client) {
	p := c.NewProduct(t, 100, 10)
	user := NewID("u")
	c.AddToCart(t, user, p.ID, 3)
	c.ClearCart(t, user)
	if crt := c.Cart(t, user); crt.UserID != user || len(crt.Items) != 0 {
		t.Errorf("after DELETE: %+v, want an empty cart", crt)
	}
	c.ClearCart(t, NewID("u"))    // a user who never had a cart
	c.AddToCart(t, user, p.ID, 1) // a cleared cart is usable again
}

func testCartUnknownUser(t *testing.T, c *Client) {
	user := NewID("u")
	r := c.Request(t, http.MethodGet, "/v1/carts/"+user, nil, nil)
	var crt Cart
	expectJSON(t, "cart of an unknown user", r, http.StatusOK, &crt)
	ExpectKeys(t, "cart", r.Body, "user_id", "items")
	expectEmptyList(t, r.Body, "items")
	if crt.UserID != user {
		t.Errorf("user_id %q, want %q", crt.UserID, user)
	}
}
