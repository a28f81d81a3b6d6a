package telemetry

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestASCIIAgreesWithTheStandardLibrary checks the fast path against a byte-by-byte answer
// at every length and every position of a byte with its high bit set, and validUTF8 against
// strings.ToValidUTF8.
func TestASCIIAgreesWithTheStandardLibrary(t *testing.T) {
	for n := range 40 {
		s := strings.Repeat("a", n)
		if !ascii(s) {
			t.Fatalf("ascii(%q) = false", s)
		}
		for i := range n {
			for _, c := range []byte{0x80, 0xc3, 0xff} {
				b := []byte(s)
				b[i] = c
				if ascii(string(b)) {
					t.Fatalf("ascii(%q) = true", b)
				}
				want := strings.ToValidUTF8(string(b), "\uFFFD")
				if got := validUTF8(string(b)); got != want || !utf8.ValidString(got) {
					t.Fatalf("validUTF8(%q) = %q, want %q", b, got, want)
				}
			}
		}
	}
	for _, s := range []string{"é", "GET /v1/products/{id}", "mitosis.catalog.v1.CatalogService/Get", "naïve résumé ✓"} {
		if got := validUTF8(s); got != s {
			t.Errorf("validUTF8(%q) = %q", s, got)
		}
	}
}

// BenchmarkValidUTF8 compares validUTF8 with utf8.ValidString alone on strings spans carry.
func BenchmarkValidUTF8(b *testing.B) {
	strs := []string{"Get orders_sagas", "db.collection.name", "mitosis.orders.v1.OrdersService/Checkout", "nats_kv", "POST /v1/carts/{user_id}/items"}
	b.Run("validUTF8", func(b *testing.B) {
		for b.Loop() {
			for _, s := range strs {
				_ = validUTF8(s)
			}
		}
	})
	b.Run("utf8.ValidString", func(b *testing.B) {
		for b.Loop() {
			for _, s := range strs {
				_ = utf8.ValidString(s)
			}
		}
	})
}
