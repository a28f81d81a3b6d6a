package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

func TestProblemFor(t *testing.T) {
	oos := &inventory.OutOfStockError{ProductID: "sku-0042", Requested: 3, Available: 1}
	cases := []struct {
		name       string
		err        error
		status     int
		code       string
		detail     string // a substring of the detail
		unexpected bool
	}{
		{"validation", fmt.Errorf("add: %w", validation.Errorf("quantity", "must be 1 to 99")), 400, CodeInvalidArgument, "quantity: must be 1 to 99", false},
		{"bare invalid", fmt.Errorf("x: %w", validation.ErrInvalid), 400, CodeInvalidArgument, "invalid argument", false},
		{"product not found", fmt.Errorf("get: %w", catalog.ErrNotFound), 404, CodeNotFound, "product", false},
		{"order not found", fmt.Errorf("get: %w", orders.ErrNotFound), 404, CodeNotFound, "order", false},
		{"out of stock", fmt.Errorf("checkout: reserve: %w", oos), 409, CodeOutOfStock, "product sku-0042 is out of stock", false},
		{"out of stock, bare", fmt.Errorf("reserve sku-7: %w", inventory.ErrOutOfStock), 409, CodeOutOfStock, "sku-7", false},
		{"idempotency", fmt.Errorf("checkout: %w", orders.ErrIdempotencyConflict), 409, CodeConflict, "idempotency key", false},
		{"declined", fmt.Errorf("charge: %w", payments.ErrCardDeclined), 402, CodePaymentDeclined, "card declined", false},
		{"insufficient funds", fmt.Errorf("charge: %w", payments.ErrInsufficientFunds), 402, CodePaymentDeclined, "insufficient funds", false},
		{"expired", fmt.Errorf("charge: %w", payments.ErrCardExpired), 402, CodePaymentDeclined, "card expired", false},
		{"too large", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: MaxBodyBytes}), 413, CodePayloadTooLarge, "1048576", false},
		{"deadline", fmt.Errorf("kv get: %w", context.DeadlineExceeded), 503, CodeUnavailable, "retry", true},
		{"canceled", context.Canceled, 503, CodeUnavailable, "retry", true},
		{"anything else", errors.New("nats: connection closed"), 503, CodeUnavailable, "retry", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, unexpected := problemFor(tc.err)
			if p.Status != tc.status || p.Type != ProblemTypePrefix+tc.code || !strings.Contains(p.Detail, tc.detail) || p.Title == "" || unexpected != tc.unexpected {
				t.Errorf("problemFor(%v) = %+v, %v; want %d %s with %q, unexpected %v", tc.err, p, unexpected, tc.status, tc.code, tc.detail, tc.unexpected)
			}
			if tc.unexpected && strings.Contains(p.Detail, tc.err.Error()) {
				t.Errorf("detail %q leaks the internal error", p.Detail)
			}
		})
	}
	// The three declines read differently.
	seen := map[string]bool{}
	for _, err := range []error{payments.ErrCardDeclined, payments.ErrInsufficientFunds, payments.ErrCardExpired} {
		p, _ := problemFor(fmt.Errorf("x: %w", err))
		if seen[p.Detail] {
			t.Errorf("detail %q used twice", p.Detail)
		}
		seen[p.Detail] = true
	}
}

func TestDecodeJSON(t *testing.T) {
	s := newSchemas()
	cases := []struct {
		name  string
		body  string
		field string // the field the error names; "-" when the body must decode
		want  cart.Item
	}{
		{"ok", `{"product_id":"a","quantity":2}`, "-", cart.Item{ProductID: "a", Quantity: 2}},
		{"whitespace around", " \n\t{\"quantity\":2 , \"product_id\":\"a\"}\r\n ", "-", cart.Item{ProductID: "a", Quantity: 2}},
		{"escaped key", `{"product\u005fid":"a","quantity":1}`, "-", cart.Item{ProductID: "a", Quantity: 1}},
		{"missing field", `{"quantity":1}`, "product_id", cart.Item{}},
		{"no field", `{}`, "product_id", cart.Item{}},
		{"null field", `{"product_id":null,"quantity":1}`, "product_id", cart.Item{}},
		{"null number", `{"product_id":"a","quantity":null}`, "quantity", cart.Item{}},
		{"empty", ``, "", cart.Item{}},
		{"null", `null`, "", cart.Item{}},
		{"array", `[{"product_id":"a"}]`, "", cart.Item{}},
		{"number", `1`, "", cart.Item{}},
		{"trailing object", `{"product_id":"a","quantity":1}{}`, "", cart.Item{}},
		{"trailing garbage", `{"product_id":"a","quantity":1}x`, "", cart.Item{}},
		{"truncated", `{"product_id":"a"`, "", cart.Item{}},
		{"syntax", `{"product_id" "a"}`, "", cart.Item{}},
		{"unknown field", `{"product_id":"a","x":{"y":[1,2]}}`, "x", cart.Item{}},
		{"case", `{"PRODUCT_ID":"a"}`, "PRODUCT_ID", cart.Item{}},
		{"duplicate", `{"quantity":1,"quantity":99}`, "quantity", cart.Item{}},
		{"wrong type", `{"product_id":"a","quantity":"1"}`, "quantity", cart.Item{}},
		{"fraction", `{"product_id":"a","quantity":1.5}`, "quantity", cart.Item{}},
		{"overflow", `{"product_id":"a","quantity":1e100}`, "quantity", cart.Item{}},
		{"object for a string", `{"product_id":{"a":1},"quantity":1}`, "product_id", cart.Item{}},
		{"not UTF-8", "{\"product_id\":\"a\xff\",\"quantity\":1}", "", cart.Item{}},
		{"not UTF-8 in a name", "{\"product_id\":\"a\",\"quantity\":1,\"\xff\":1}", "", cart.Item{}},
		{"an escaped U+FFFD", `{"product_id":"a\ufffd","quantity":1}`, "-", cart.Item{ProductID: "a\ufffd", Quantity: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got cart.Item
			err := decodeJSON([]byte(tc.body), s.cartItem, &got)
			if tc.field == "-" {
				if err != nil || got != tc.want {
					t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != tc.field {
				t.Errorf("error %v (field %q), want a validation error naming %q", err, validation.FieldOf(err), tc.field)
			}
		})
	}
}

func TestDecodeNested(t *testing.T) {
	s := newSchemas()
	for body, field := range map[string]string{
		`{"address":null}`:                "address",
		`{"card":[]}`:                     "card",
		`{"card":{"number":"1","pin":1}}`: "card.pin",
		`{"address":{"City":"x"}}`:        "address.City",
		`{"card":{"exp_month":"x"}}`:      "card.number", // the shape first: a field is missing
		`{"user_id":"u","email":"e@x","address":{"street":"s","city":"c","postal_code":"p","country":"c"},` +
			`"card":{"number":"4242424242424242","exp_month":"x","exp_year":2030,"cvv":"123"}}`: "card.exp_month",
		`{"user_id":"u","email":"e@x","address":{"street":"s","city":"c","postal_code":"p"},` +
			`"card":{"number":"4242424242424242","exp_month":1,"exp_year":2030,"cvv":"123"}}`: "address.country",
		`{"user_id":"u","email":"e@x","address":{"street":"s","city":"c","postal_code":"p","country":"c"},` +
			`"card":{"number":"4242424242424242","exp_month":1,"exp_year":null,"cvv":"123"}}`: "card.exp_year",
	} {
		var req orders.CheckoutRequest
		if err := decodeJSON([]byte(body), s.checkout, &req); validation.FieldOf(err) != field {
			t.Errorf("%s: error %v, want one naming %q", body, err, field)
		}
	}
	var p productBody
	if err := decodeJSON([]byte(`{"id":"x","name":"n"}`), s.product, &p); validation.FieldOf(err) != "id" {
		t.Errorf("product with id: %v", err)
	}
	if err := decodeJSON([]byte(`{"price":{"currency":"USD","units":5,"Units":6}}`), s.product, &p); validation.FieldOf(err) != "price.Units" {
		t.Errorf("price.Units: %v", err)
	}
	if err := decodeJSON([]byte(`{"name":"n","description":"","price":{"currency":"USD"},"weight_grams":0}`), s.product, &p); validation.FieldOf(err) != "price.units" {
		t.Errorf("price without units: %v, want an error naming price.units", err)
	}
	if err := decodeJSON([]byte(`{"name":"n","description":"","price":{"currency":"USD","units":0},"weight_grams":0}`), s.product, &p); err != nil {
		t.Errorf("a product of zero price and weight: %v", err)
	}
}

func TestListRequest(t *testing.T) {
	cases := []struct {
		query string
		want  catalog.ListRequest
		field string // named by the error, "" for none
	}{
		{"", catalog.ListRequest{}, ""},
		{"q=Tent&page_size=5&page_token=abc", catalog.ListRequest{Query: "Tent", PageSize: 5, PageToken: "abc"}, ""},
		{"q=two+words%21&q=second", catalog.ListRequest{Query: "two words!"}, ""},
		{"page%5Fsize=7", catalog.ListRequest{PageSize: 7}, ""},
		{"page_size=&q=", catalog.ListRequest{}, ""},
		{"page_size=100", catalog.ListRequest{PageSize: 100}, ""},
		{"other=%zz&page_size=3", catalog.ListRequest{PageSize: 3}, ""},
		{"page_size=0", catalog.ListRequest{}, "page_size"},
		{"page_size=101", catalog.ListRequest{}, "page_size"},
		{"page_size=-1", catalog.ListRequest{}, "page_size"},
		{"page_size=abc", catalog.ListRequest{}, "page_size"},
		{"page_size=1.0", catalog.ListRequest{}, "page_size"},
		{"page_size=%zz", catalog.ListRequest{}, "page_size"},
		{"q=%zz", catalog.ListRequest{}, "q"},
	}
	for _, tc := range cases {
		got, err := listRequest(tc.query)
		if validation.FieldOf(err) != tc.field || (tc.field == "" && (err != nil || got != tc.want)) {
			t.Errorf("listRequest(%q) = %+v, %v; want %+v, error naming %q", tc.query, got, err, tc.want, tc.field)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"a":                       true,
		" ~!\"#$%&'()*+,-./09:;<": true,
		strings.Repeat("k", 64):   true,
		strings.Repeat("k", 65):   false,
		"":                        false,
		"tab\there":               false,
		"clé":                     false,
		"del\x7f":                 false,
	} {
		_, err := idempotencyKey(http.Header{"Idempotency-Key": {key}})
		if (err == nil) != ok {
			t.Errorf("key %q: error %v, want ok %v", key, err, ok)
		}
	}
}

// FuzzDecodeJSON: the decoder never panics, every failure is a validation error, and a body
// it accepts is one encoding/json accepts too, with the same result.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":"u","email":"e@example.com","address":{"street":"s","city":"c","postal_code":"1","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvv":"123"}}`,
		`{"card":{"number":"1"},"card":{}}`,
		`{"address":null}`,
		`{"user_id":"\u00e9\ud800"}`,
		` {"email":"x"} `,
		`[1,{"a":[]}]`,
		`{"card":{"exp_month":1e400}}`,
	} {
		f.Add([]byte(seed))
	}
	s := newSchemas()
	f.Fuzz(func(t *testing.T, body []byte) {
		var got orders.CheckoutRequest
		err := decodeJSON(body, s.checkout, &got)
		if err != nil {
			if !errors.Is(err, validation.ErrInvalid) {
				t.Fatalf("%q: error %v is not a validation error", body, err)
			}
			return
		}
		var want orders.CheckoutRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("%q accepted, but encoding/json says %v", body, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %+v, encoding/json %+v", body, got, want)
		}
	})
}
