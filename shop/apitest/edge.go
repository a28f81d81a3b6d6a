package apitest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

func testHealth(t *testing.T, c *Client) {
	for _, path := range []string{"/healthz", "/readyz"} {
		r := c.Request(t, http.MethodGet, path, nil, nil)
		var body struct {
			Status string `json:"status"`
		}
		expectJSON(t, path, r, http.StatusOK, &body)
		ExpectKeys(t, path, r.Body, "status")
		if body.Status != "ok" {
			t.Errorf("%s: status %q, want ok", path, body.Status)
		}
	}
}

// testOpenAPIDocument: the deployment serves the very OpenAPI document the suite checks every
// request and response against.
func testOpenAPIDocument(t *testing.T, c *Client) {
	r := c.Request(t, http.MethodGet, "/openapi.yaml", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %s", r)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/yaml" {
		t.Errorf("GET /openapi.yaml: Content-Type %q, want application/yaml", r.Header.Get("Content-Type"))
	}
	if !bytes.Equal(r.Body, httpapi.OpenAPI()) {
		t.Errorf("GET /openapi.yaml: %d bytes that differ from shop/httpapi/openapi.yaml (%d bytes)", len(r.Body), len(httpapi.OpenAPI()))
	}
}

// testUnknownRoute: a path no route serves is 404 not-found, and so is a method a path does
// not serve: API.md's routes are methods and paths, and the codes of its problems hold no 405.
func testUnknownRoute(t *testing.T, c *Client) {
	for _, path := range []string{"/nope", "/v1/nope", "/v1/products/x/y", "/v2/products"} {
		ExpectProblem(t, c.Invalid().Request(t, http.MethodGet, path, nil, nil), http.StatusNotFound, "not-found")
	}
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/healthz"},
		{http.MethodPatch, "/v1/products"},
		{http.MethodDelete, "/v1/products/" + NewID("t")},
		{http.MethodPut, "/v1/carts/" + NewID("u")},
		{http.MethodGet, "/v1/checkout"},
		{http.MethodDelete, "/v1/admin/products/" + NewID("t")},
	} {
		ExpectProblem(t, c.Invalid().Request(t, r.method, r.path, nil, nil), http.StatusNotFound, "not-found")
	}
}

func testAdminUnauthorized(t *testing.T, c *Client) {
	id := NewID("t")
	p := Product{ID: id, Name: "Never", Description: "must not exist", Price: Money{"USD", 100}, WeightGrams: 1}
	stocked := c.NewProduct(t, 100, 1)
	// Only a wrong token has the form of the document's bearer scheme; the others break it
	// on purpose.
	for name, tc := range map[string]struct {
		header     http.Header
		wellFormed bool
	}{
		"no header":    {nil, false},
		"wrong token":  {http.Header{"Authorization": {"Bearer " + c.AdminToken + "x"}}, true},
		"empty bearer": {http.Header{"Authorization": {"Bearer "}}, false},
		"basic scheme": {http.Header{"Authorization": {"Basic " + c.AdminToken}}, false},
		"bare token":   {http.Header{"Authorization": {c.AdminToken}}, false},
	} {
		t.Run(name, func(t *testing.T) {
			sender := c.Invalid()
			if tc.wellFormed {
				sender = c
			}
			r := sender.Request(t, http.MethodPut, "/v1/admin/products/"+id, tc.header, productBody(p))
			ExpectProblem(t, r, http.StatusUnauthorized, "unauthorized")
			r = sender.Request(t, http.MethodPost, "/v1/admin/inventory/"+stocked.ID, tc.header, map[string]int64{"add": 5})
			ExpectProblem(t, r, http.StatusUnauthorized, "unauthorized")
		})
	}
	ExpectProblem(t, c.Request(t, http.MethodGet, "/v1/products/"+id, nil, nil), http.StatusNotFound, "not-found")
	if s := c.Inventory(t, stocked.ID); s != (Stock{ProductID: stocked.ID}) {
		t.Errorf("inventory after unauthorized adds: %+v, want all zeros", s)
	}
}

// testRequestBodyRules: unknown fields, malformed JSON, a value that is not an object, data
// after the object and wrong types are all 400, and change nothing.
func testRequestBodyRules(t *testing.T, c *Client) {
	p := c.NewProduct(t, 100, 10)
	user := NewID("u")
	path := "/v1/carts/" + user + "/items"
	for _, body := range []string{
		`{"product_id":"` + p.ID + `","quantity":1,"color":"red"}`,
		`{"product_id":"` + p.ID + `","quantity":1,"Quantity":2}`,
		`{"product_id":"` + p.ID + `","quantity":1`,
		`{"product_id":"` + p.ID + `","quantity":1}{}`,
		`{"product_id":"` + p.ID + `","quantity":1} x`,
		`{"product_id":"` + p.ID + `","quantity":"1"}`,
		`{"product_id":"` + p.ID + `","quantity":1.5}`,
		`{"product_id":42,"quantity":1}`,
		`null`,
		`[]`,
		`"text"`,
		``,
	} {
		r := c.Invalid().Request(t, http.MethodPost, path, nil, body)
		ExpectProblem(t, r, http.StatusBadRequest, "invalid-argument")
	}
	if crt := c.Cart(t, user); len(crt.Items) != 0 {
		t.Errorf("cart after rejected adds: %+v, want empty", crt)
	}

	// The admin PUT takes the product without its id, and its nested money object too is
	// checked field by field.
	for _, body := range []string{
		`{"name":"n","description":"d","price":{"currency":"USD","units":1,"cents":1},"weight_grams":1}`,
		`{"name":"n","description":"d","price":null,"weight_grams":1}`,
	} {
		r := c.Invalid().Request(t, http.MethodPut, "/v1/admin/products/"+p.ID, c.adminHeader(), body)
		ExpectProblem(t, r, http.StatusBadRequest, "invalid-argument")
	}
	if got := c.Product(t, p.ID); got != p {
		t.Errorf("product after rejected puts: %+v, want %+v", got, p)
	}
}

// testBodyTooLarge: a body over 1 MiB is 413 whatever its content and however it is sent;
// exactly 1 MiB is read.
func testBodyTooLarge(t *testing.T, c *Client) {
	p := c.NewProduct(t, 100, 10)
	user := NewID("u")
	path := "/v1/carts/" + user + "/items"
	item := `{"product_id":"` + p.ID + `","quantity":1}`
	pad := func(n int) []byte { return append([]byte(item), bytes.Repeat([]byte(" "), n-len(item))...) }

	bad := c.Invalid()
	ExpectProblem(t, bad.Request(t, http.MethodPost, path, nil, pad(MaxBodyBytes+1)), http.StatusRequestEntityTooLarge, "payload-too-large")
	ExpectProblem(t, bad.Request(t, http.MethodPost, path, nil, bytes.NewReader(pad(MaxBodyBytes+1))), http.StatusRequestEntityTooLarge, "payload-too-large")
	junk := strings.Repeat("x", MaxBodyBytes+1)
	ExpectProblem(t, bad.Request(t, http.MethodPut, "/v1/admin/products/"+p.ID, c.adminHeader(), junk), http.StatusRequestEntityTooLarge, "payload-too-large")
	// A client that writes its whole request before it reads the response (Python's
	// http.client does) gets the 413 too, not a reset connection: 7 MiB is more than the
	// socket buffers between it and a server that stopped reading hold.
	if code := sendAllThenRead(t, c, http.MethodPost, path, pad(7<<20)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 7 MiB body sent whole before reading: %d, want 413", code)
	}
	if crt := c.Cart(t, user); len(crt.Items) != 0 {
		t.Fatalf("cart after rejected adds: %+v, want empty", crt)
	}

	var crt Cart
	expectJSON(t, "add with a body of exactly 1 MiB", c.Request(t, http.MethodPost, path, nil, pad(MaxBodyBytes)), http.StatusOK, &crt)
	if want := []CartItem{{p.ID, 1}}; !slices.Equal(crt.Items, want) {
		t.Errorf("cart: %+v, want %+v", crt.Items, want)
	}

	// API.md refuses every body over 1 MiB, also on a route that reads none (the cart stays)
	// and on no route at all.
	ExpectProblem(t, bad.Request(t, http.MethodDelete, "/v1/carts/"+user, nil, pad(MaxBodyBytes+1)), http.StatusRequestEntityTooLarge, "payload-too-large")
	ExpectProblem(t, bad.Request(t, http.MethodGet, "/v1/products", nil, pad(MaxBodyBytes+1)), http.StatusRequestEntityTooLarge, "payload-too-large")
	ExpectProblem(t, bad.Request(t, http.MethodPost, "/v1/nope", nil, pad(MaxBodyBytes+1)), http.StatusRequestEntityTooLarge, "payload-too-large")
	c.ExpectCart(t, user, CartItem{p.ID, 1})
}

// sendAllThenRead writes a whole HTTP/1.1 request with body on a connection of its own, and
// only then reads the response, which it checks against the API's document; it returns the
// response's status.
func sendAllThenRead(t *testing.T, c *Client, method, path string, body []byte) int {
	t.Helper()
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", method, path, u.Host, len(body))
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		t.Errorf("%s %s: writing the request: %v", method, path, err)
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Errorf("%s %s: reading the response: %v", method, path, err)
		return 0
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading the response: %v", method, path, err)
		return 0
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.BaseURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.contractErr != nil {
		t.Fatal(c.contractErr)
	}
	if err := c.contract.CheckResponse(req, resp.StatusCode, resp.Header, data); err != nil {
		t.Error(err)
	}
	return resp.StatusCode
}

// query builds a list's query from pairs of names and values.
func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}
