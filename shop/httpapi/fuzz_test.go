package httpapi_test

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// problemStatus is the status of each problem code the API answers with.
var problemStatus = map[string]int{
	httpapi.CodeInvalidArgument: 400,
	httpapi.CodeUnauthorized:    401,
	httpapi.CodePaymentDeclined: 402,
	httpapi.CodeNotFound:        404,
	httpapi.CodeConflict:        409,
	httpapi.CodeOutOfStock:      409,
	httpapi.CodePayloadTooLarge: 413,
}

// FuzzDecodeRequest feeds arbitrary path segments, headers and bodies to the routes that
// decode a body (cart add, checkout, admin product PUT, admin stock POST) over the real
// contexts. Whatever comes in, the handler must not panic (a recovered panic would be a 500)
// nor fail as if a dependency were down (503): every answer is a success with a JSON body or
// a well-formed problem document of one of API.md's codes.
func FuzzDecodeRequest(f *testing.F) {
	checkout := `{"user_id":"u-1","email":"a@example.com","address":{"street":"s","city":"c","postal_code":"1","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`
	seeds := []struct {
		route        uint8
		segment, key string
		auth         bool
		body         string
	}{
		{0, "u-1", "", false, `{"product_id":"sku-0001","quantity":2}`},
		{0, "u-1", "", false, `{"product_id":"sku-0001","quantity":99}`},
		{0, "u/1%2F", "", false, `{"product_id":"","quantity":1}`},
		{0, "u-2", "", false, `{"product_id":"sku-0001","quantity":1,"quantity":2}`},
		{1, "", "k-1", false, checkout},
		{1, "", "k-1", false, strings.Replace(checkout, "4242424242424242", "4000000000000002", 1)},
		{1, "", "k-2", false, strings.Replace(checkout, `"exp_month":12`, `"exp_month":13`, 1)},
		{1, "", "", false, checkout},
		{1, "", "k\x00", false, `{"user_id":null}`},
		{2, "sku-0001", "", true, `{"name":"n","description":"d","price":{"currency":"USD","units":1},"weight_grams":1}`},
		{2, "new-1", "", true, `{"name":"n","description":"d","price":{"currency":"USD","units":-1},"weight_grams":1}`},
		{2, "new-2", "", false, `{"name":"n"}`},
		{2, "x y", "", true, `{"id":"x","name":"n"}`},
		{3, "sku-0002", "", true, `{"add":5}`},
		{3, "nope", "", true, `{"add":5}`},
		{3, "sku-0002", "", true, `{"add":99999999999999999999}`},
	}
	for _, s := range seeds {
		f.Add(s.route, s.segment, s.key, s.auth, []byte(s.body))
	}
	h := newHandler(f)
	f.Fuzz(func(t *testing.T, route uint8, segment, key string, auth bool, body []byte) {
		var method, target string
		switch route % 4 {
		case 0:
			method, target = http.MethodPost, "/v1/carts/"+url.PathEscape(segment)+"/items"
		case 1:
			method, target = http.MethodPost, "/v1/checkout"
		case 2:
			method, target = http.MethodPut, "/v1/admin/products/"+url.PathEscape(segment)
		case 3:
			method, target = http.MethodPost, "/v1/admin/inventory/"+url.PathEscape(segment)
		}
		req := httptest.NewRequest(method, target, bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		if rec.Code < 400 {
			if rec.Code != 200 && rec.Code != 201 {
				t.Fatalf("%s %s %q: status %d", method, target, body, rec.Code)
			}
			if mt != "application/json" || !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %s %q: %d with %s %q", method, target, body, rec.Code, mt, rec.Body)
			}
			return
		}
		if mt != "application/problem+json" {
			t.Fatalf("%s %s %q: %d with Content-Type %q", method, target, body, rec.Code, mt)
		}
		var p httpapi.Problem
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("%s %s %q: problem %q: %v", method, target, body, rec.Body, err)
		}
		code, _ := strings.CutPrefix(p.Type, httpapi.ProblemTypePrefix)
		if want, ok := problemStatus[code]; !ok || want != rec.Code || p.Status != rec.Code || p.Title == "" || p.Detail == "" {
			t.Fatalf("%s %s %q (key %q): %d %+v", method, target, body, key, rec.Code, p)
		}
	})
}
