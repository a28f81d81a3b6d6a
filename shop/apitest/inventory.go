package apitest

import (
	"net/http"
	"testing"
)

func testInventory(t *testing.T, c *Client) {
	p := c.NewProduct(t, 100, 10)
	r := c.Request(t, http.MethodGet, "/v1/inventory/"+p.ID, nil, nil)
	var s Stock
	expectJSON(t, "inventory", r, http.StatusOK, &s)
	ExpectKeys(t, "inventory", r.Body, "product_id", "available", "reserved", "sold")
	if s != (Stock{ProductID: p.ID}) {
		t.Errorf("never stocked: %+v, want all zeros", s)
	}
	if got := c.AddStock(t, p.ID, 5); got != (Stock{ProductID: p.ID, Available: 5}) {
		t.Errorf("after adding 5: %+v", got)
	}
	if got := c.AddStock(t, p.ID, 1_000_000); got != (Stock{ProductID: p.ID, Available: 1_000_005}) {
		t.Errorf("after adding 1000000: %+v", got)
	}
	if got := c.Inventory(t, p.ID); got != (Stock{ProductID: p.ID, Available: 1_000_005}) {
		t.Errorf("GET after adding: %+v", got)
	}
	for _, body := range []string{`{"add":0}`, `{"add":-1}`, `{"add":1000001}`, `{}`, `{"add":1,"extra":1}`, `{"add":"1"}`} {
		r := c.Invalid().Request(t, http.MethodPost, "/v1/admin/inventory/"+p.ID, c.adminHeader(), body)
		ExpectProblem(t, r, http.StatusBadRequest, "invalid-argument")
	}
	unknown := NewID("t")
	ExpectProblem(t, c.Request(t, http.MethodGet, "/v1/inventory/"+unknown, nil, nil), http.StatusNotFound, "not-found")
	ExpectProblem(t, c.Request(t, http.MethodPost, "/v1/admin/inventory/"+unknown, c.adminHeader(), `{"add":1}`), http.StatusNotFound, "not-found")
}
