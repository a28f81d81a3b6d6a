package apitest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The checks the client makes are real: the contract accepts what the API's document
// allows and rejects, naming the route, what it does not.
func TestContractChecksRequests(t *testing.T) {
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	checkout := `{"user_id":"ada","email":"ada@example.com","address":{"street":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvv":"123"}}`
	json := http.Header{"Content-Type": {"application/json"}}
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name, method, target string
		header               http.Header
		body                 string
		breaks               string // "" when the request is the document's, else part of the message
	}{
		{"list", "GET", "/v1/products?q=lamp&page_size=100&page_token=abc", nil, "", ""},
		{"empty query values", "GET", "/v1/products?q=&page_token=", nil, "", ""},
		{"page_size 101", "GET", "/v1/products?page_size=101", nil, "", "page_size"},
		{"page_size 0", "GET", "/v1/users/ada/orders?page_size=0", nil, "", "page_size"},
		{"page_size not a number", "GET", "/v1/users/ada/notifications?page_size=abc", nil, "", "page_size"},
		{"a 128-byte multi-byte user", "GET", "/v1/carts/" + strings.Repeat("%E7%94%A8", 42) + "ab", nil, "", ""},
		{"an escaped slash in an ID", "GET", "/v1/products/a%2Fb", nil, "", ""},
		{"a 129-character ID", "GET", "/v1/products/" + strings.Repeat("i", 129), nil, "", "id"},
		{"a control character in an ID", "GET", "/v1/carts/u%01", nil, "", "user_id"},
		{"an empty ID", "GET", "/v1/users//orders", nil, "", "user_id"},
		{"a body on a GET", "GET", "/v1/products", json, "{}", "body"},
		{"cart add", "POST", "/v1/carts/ada/items", json, `{"product_id":"sku-0001","quantity":99}`, ""},
		{"cart add of 100", "POST", "/v1/carts/ada/items", json, `{"product_id":"sku-0001","quantity":100}`, "quantity"},
		{"cart add, unknown field", "POST", "/v1/carts/ada/items", json, `{"product_id":"sku-0001","quantity":1,"color":"red"}`, "color"},
		{"cart add, missing field", "POST", "/v1/carts/ada/items", json, `{"product_id":"sku-0001"}`, "quantity"},
		{"cart add, empty product", "POST", "/v1/carts/ada/items", json, `{"product_id":"","quantity":1}`, "product_id"},
		{"cart add, malformed JSON", "POST", "/v1/carts/ada/items", json, `{"product_id":`, "body"},
		{"checkout", "POST", "/v1/checkout", with(json, "Idempotency-Key", "k-1"), checkout, ""},
		{"checkout without a key", "POST", "/v1/checkout", json, checkout, "Idempotency-Key"},
		{"checkout, key over 64", "POST", "/v1/checkout", with(json, "Idempotency-Key", strings.Repeat("k", 65)), checkout, "Idempotency-Key"},
		{"checkout, exp_month 13", "POST", "/v1/checkout", with(json, "Idempotency-Key", "k-1"), strings.Replace(checkout, `"exp_month":12`, `"exp_month":13`, 1), "exp_month"},
		{"checkout, unknown nested field", "POST", "/v1/checkout", with(json, "Idempotency-Key", "k-1"), strings.Replace(checkout, `"cvv":"123"`, `"cvv":"123","pin":"0"`, 1), "pin"},
		{"admin PUT", "PUT", "/v1/admin/products/sku-1", with(json, "Authorization", "Bearer t"), `{"name":"n","description":"","price":{"currency":"USD","units":0},"weight_grams":0}`, ""},
		{"admin PUT without a token", "PUT", "/v1/admin/products/sku-1", json, `{"name":"n","description":"","price":{"currency":"USD","units":0},"weight_grams":0}`, "Authorization"},
		{"admin PUT, basic scheme", "PUT", "/v1/admin/products/sku-1", with(json, "Authorization", "Basic dDp0"), `{"name":"n","description":"","price":{"currency":"USD","units":0},"weight_grams":0}`, "Authorization"},
		{"admin PUT with an id", "PUT", "/v1/admin/products/sku-1", with(json, "Authorization", "Bearer t"), `{"id":"sku-1","name":"n","description":"","price":{"currency":"USD","units":0},"weight_grams":0}`, "id"},
		{"admin PUT in euros", "PUT", "/v1/admin/products/sku-1", with(json, "Authorization", "Bearer t"), `{"name":"n","description":"","price":{"currency":"EUR","units":0},"weight_grams":0}`, "currency"},
		{"add stock over 1000000", "POST", "/v1/admin/inventory/sku-1", with(json, "Authorization", "Bearer t"), `{"add":1000001}`, "add"},
		{"an unknown route", "GET", "/v1/nope", nil, "", "no matching operation"},
		{"a method no path serves", "PATCH", "/v1/checkout", json, "{}", "method not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
				req.ContentLength = int64(len(body))
			}
			err := c.CheckRequest(req, body)
			switch {
			case tc.breaks == "" && err != nil:
				t.Errorf("the document's request refused: %v", err)
			case tc.breaks != "" && err == nil:
				t.Errorf("a request that breaks the document (%s) passed", tc.breaks)
			case tc.breaks != "":
				var ce *ContractError
				if !errors.As(err, &ce) || ce.Status != 0 || !strings.Contains(err.Error(), tc.breaks) {
					t.Errorf("error %v: want a *ContractError of the request that says %q", err, tc.breaks)
				}
			}
		})
	}
}

func TestContractChecksResponses(t *testing.T) {
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	traced := func(contentType string, kv ...string) http.Header {
		h := http.Header{
			"Traceresponse":   {"00-6580a1b2c3d4e5f60718293a4b5c6d7e-0123456789abcdef-01"},
			"X-Amzn-Trace-Id": {"Root=1-6580a1b2-c3d4e5f60718293a4b5c6d7e;Parent=0123456789abcdef;Sampled=1"},
		}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	product := `{"id":"sku-1","name":"Lamp","description":"","price":{"currency":"USD","units":1999},"weight_grams":250}`
	problem := func(code string, status string) string {
		return `{"type":"https://mitosis.dev/problems/` + code + `","title":"T","status":` + status + `,"detail":"d"}`
	}
	order := `{"id":"ord-1","user_id":"ada","status":"paid","items":[{"product_id":"sku-1","quantity":2,"unit_price":{"currency":"USD","units":100}}],"subtotal":{"currency":"USD","units":200},"shipping":{"currency":"USD","units":501},"total":{"currency":"USD","units":701},"tracking_id":"","created_at":"2026-01-02T03:04:05.123Z"}`
	for _, tc := range []struct {
		name, method, target string
		status               int
		header               http.Header
		body                 string
		breaks               string
	}{
		{"product", "GET", "/v1/products/sku-1", 200, traced("application/json"), product, ""},
		{"product without traceresponse", "GET", "/v1/products/sku-1", 200, func() http.Header { h := traced("application/json"); h.Del("Traceresponse"); return h }(), product, "traceresponse"},
		{"product with a malformed X-Amzn-Trace-Id", "GET", "/v1/products/sku-1", 200, traced("application/json", "X-Amzn-Trace-Id", "Root=1-x"), product, "X-Amzn-Trace-Id"},
		{"product with an extra field", "GET", "/v1/products/sku-1", 200, traced("application/json"), strings.Replace(product, `"weight_grams"`, `"color":"red","weight_grams"`, 1), "color"},
		{"product without description", "GET", "/v1/products/sku-1", 200, traced("application/json"), strings.Replace(product, `"description":"",`, "", 1), "description"},
		{"product as problem+json", "GET", "/v1/products/sku-1", 200, traced("application/problem+json"), product, "Content-Type"},
		{"a status the route does not list", "GET", "/v1/products/sku-1", 500, traced("application/problem+json"), problem("internal", "500"), "status"},
		{"not found", "GET", "/v1/products/sku-1", 404, traced("application/problem+json"), problem("not-found", "404"), ""},
		{"404 of another type", "GET", "/v1/products/sku-1", 404, traced("application/problem+json"), problem("invalid-argument", "404"), "type"},
		{"a problem with an extra field", "GET", "/v1/products/sku-1", 404, traced("application/problem+json"), strings.Replace(problem("not-found", "404"), `"detail"`, `"instance":"/x","detail"`, 1), "instance"},
		{"order", "GET", "/v1/orders/ord-1", 200, traced("application/json"), order, ""},
		{"order items null", "GET", "/v1/orders/ord-1", 200, traced("application/json"), strings.Replace(order, `"items":[{"product_id":"sku-1","quantity":2,"unit_price":{"currency":"USD","units":100}}]`, `"items":null`, 1), "items"},
		{"order created_at not in UTC", "GET", "/v1/orders/ord-1", 200, traced("application/json"), strings.Replace(order, "05.123Z", "05.123+01:00", 1), "created_at"},
		{"checkout conflict", "POST", "/v1/checkout", 409, traced("application/problem+json"), problem("conflict", "409"), ""},
		{"checkout out of stock", "POST", "/v1/checkout", 409, traced("application/problem+json"), problem("out-of-stock", "409"), ""},
		{"unauthorized", "PUT", "/v1/admin/products/x", 401, traced("application/problem+json", "WWW-Authenticate", `Bearer realm="mitosis-admin"`), problem("unauthorized", "401"), ""},
		{"unauthorized without WWW-Authenticate", "PUT", "/v1/admin/products/x", 401, traced("application/problem+json"), problem("unauthorized", "401"), "WWW-Authenticate"},
		{"cleared cart", "DELETE", "/v1/carts/ada", 204, traced(""), "", ""},
		{"unavailable", "GET", "/healthz", 503, traced("application/problem+json", "Retry-After", "1"), problem("unavailable", "503"), ""},
		{"an empty user ID, 400 as the edge routes it", "GET", "/v1/users//orders", 400, traced("application/problem+json"), problem("invalid-argument", "400"), ""},
		{"an empty user ID at the end, 400 as the edge routes it", "GET", "/v1/carts/", 400, traced("application/problem+json"), problem("invalid-argument", "400"), ""},
		{"an empty user ID at the end, 404", "GET", "/v1/carts/", 404, traced("application/problem+json"), problem("not-found", "404"), "status"},
		{"an escaped slash in an ID, one segment", "GET", "/v1/carts/a%2Fb", 200, traced("application/json"), `{"user_id":"a/b","items":[]}`, ""},
		{"an unknown route, 404", "GET", "/v1/nope", 404, traced("application/problem+json"), problem("not-found", "404"), ""},
		{"an unknown route, 200", "GET", "/v1/nope", 200, traced("application/json"), `{}`, "status"},
		{"a method the path does not serve, 404", "PATCH", "/v1/checkout", 404, traced("application/problem+json", "Allow", "POST"), problem("not-found", "404"), ""},
		{"a method the path does not serve, 405", "PATCH", "/v1/checkout", 405, traced("application/problem+json", "Allow", "POST"), problem("method-not-allowed", "405"), "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			err := c.CheckResponse(req, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.breaks == "" && err != nil:
				t.Errorf("the document's response refused: %v", err)
			case tc.breaks != "" && err == nil:
				t.Errorf("a response that breaks the document (%s) passed", tc.breaks)
			case tc.breaks != "":
				var ce *ContractError
				if !errors.As(err, &ce) || ce.Status != tc.status || !strings.Contains(err.Error(), tc.breaks) {
					t.Errorf("error %v: want a *ContractError of the %d that says %q", err, tc.status, tc.breaks)
				}
			}
		})
	}
}
