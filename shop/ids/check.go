package ids

import (
	"unicode"
	"unicode/utf8"

	"github.com/mitosis-dev/mitosis/shop/validation"
)

// MaxLen is the longest ID in bytes (API.md). It bounds every key and subject an ID becomes:
// escaped for NATS, 128 bytes stay far below the server's 4 KB control line.
const MaxLen = 128

// Valid reports whether id is an ID as API.md defines one, for products, users and orders
// alike: 1..MaxLen bytes of UTF-8 without control characters. Every context checks the IDs
// it is given with it before any store or bus call.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Check returns a validation error naming field when id is not Valid: for an ID that is
// written (a product created, a cart's owner), where a bad one is the caller's mistake. Where
// an ID is only looked up, a bad one names nothing that exists, and the context answers its
// own not-found error instead.
func Check(field, id string) error {
	if !Valid(id) {
		return validation.Errorf(field, "must be 1 to %d bytes of UTF-8 without control characters", MaxLen)
	}
	return nil
}
