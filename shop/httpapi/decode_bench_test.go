package httpapi

import (
	"encoding/json"
	"io"
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// BenchmarkDecodeBody decodes the request bodies of a cart add and a checkout, the shop's
// hottest writes, as the handlers do (shape, then types).
func BenchmarkDecodeBody(b *testing.B) {
	s := newSchemas()
	item := []byte(`{"product_id":"sku-0042","quantity":1}`)
	checkout := []byte(`{"user_id":"bench-1","email":"b@example.com","address":{"street":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`)
	b.ReportAllocs()
	for b.Loop() {
		var it cart.Item
		if err := decodeJSON(item, s.cartItem, &it); err != nil {
			b.Fatal(err)
		}
		var req orders.CheckoutRequest
		if err := decodeJSON(checkout, s.checkout, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodeAgrees: decodeJSON takes a body's values from JSON v2 and falls back to
// encoding/json when v2 refuses; for that to change nothing, v2 must accept only bodies
// encoding/json accepts, with the same values. Every body that passes the shape check of a
// request type is decoded by both.
func FuzzDecodeAgrees(f *testing.F) {
	for _, body := range []string{
		`{"product_id":"sku-0042","quantity":1}`,
		`{"product_id":"sk\u00e9-\ud83d\ude00","quantity":-0}`,
		"{\"product_id\":\"\xff\xfe\",\"quantity\":1}",
		`{"product_id":"a","quantity":1.0}`,
		`{"product_id":"a","quantity":1e2}`,
		`{"product_id":"a","quantity":99999999999999999999}`,
		`{"product_id":"a","quantity":"1"}`,
		`{"user_id":"u","email":"e","address":{"street":"s","city":"c","postal_code":"p","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`,
		`{"name":"n","description":"d","price":{"currency":"USD","units":-5},"weight_grams":1}`,
		`{"add":5}`,
	} {
		f.Add([]byte(body))
	}
	s := newSchemas()
	f.Fuzz(func(t *testing.T, body []byte) {
		agree(t, body, s.cartItem, func() any { return new(cart.Item) })
		agree(t, body, s.checkout, func() any { return new(orders.CheckoutRequest) })
		agree(t, body, s.product, func() any { return new(productBody) })
		agree(t, body, s.stock, func() any { return new(stockBody) })
	})
}

func agree(t *testing.T, body []byte, s *schema, newValue func() any) {
	t.Helper()
	r := shapeReaders.Get().(*shapeReader)
	defer shapeReaders.Put(r)
	r.body.Reset(body)
	r.dec.Reset(&r.body, shapeOptions...)
	if checkShape(&r.dec, s, "") != nil {
		return
	}
	if _, err := r.dec.ReadToken(); err != io.EOF {
		return
	}
	v1, v2 := newValue(), newValue()
	err1, err2 := json.Unmarshal(body, v1), jsonv2.Unmarshal(body, v2, decodeOptions)
	if err2 == nil && err1 != nil {
		t.Fatalf("%q: JSON v2 accepts what encoding/json refuses: %v", body, err1)
	}
	if err2 == nil && !reflect.DeepEqual(v1, v2) {
		t.Fatalf("%q: encoding/json decodes %+v, JSON v2 %+v", body, v1, v2)
	}
}
