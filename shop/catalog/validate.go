package catalog

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Limits on a product, checked by Upsert (and stated in shop/httpapi/openapi.yaml, whose
// tests read them here).
const (
	MaxNameLen        = 200 // characters
	MaxDescriptionLen = 4000
	MaxPriceUnits     = 100_000_000 // one million dollars
	MaxWeightGrams    = 1_000_000   // one tonne
)

// validateProduct returns a validation error naming the first bad field of p, or nil.
func validateProduct(p Product) error {
	if err := ids.Check("id", p.ID); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(p.Name); n == 0 || n > MaxNameLen || strings.TrimSpace(p.Name) == "" {
		return validation.Errorf("name", "must be 1 to %d characters and not blank", MaxNameLen)
	}
	if !utf8.ValidString(p.Name) {
		return validation.Errorf("name", "must be valid UTF-8")
	}
	if utf8.RuneCountInString(p.Description) > MaxDescriptionLen {
		return validation.Errorf("description", "must be at most %d characters", MaxDescriptionLen)
	}
	if !utf8.ValidString(p.Description) {
		return validation.Errorf("description", "must be valid UTF-8")
	}
	if p.Price.Currency != money.USD {
		return validation.Errorf("price.currency", "must be %q, got %q", money.USD, p.Price.Currency)
	}
	if p.Price.Units < 0 || p.Price.Units > MaxPriceUnits {
		return validation.Errorf("price.units", "must be 0 to %d", MaxPriceUnits)
	}
	if p.WeightGrams < 0 || p.WeightGrams > MaxWeightGrams {
		return validation.Errorf("weight_grams", "must be 0 to %d", MaxWeightGrams)
	}
	return nil
}

// Page tokens are the base64url (unpadded) encoding of the last ID of the previous page:
// opaque to clients, and still meaningful if that product has changed since.
var tokenEncoding = base64.RawURLEncoding.Strict() // Strict: one token per ID

func encodeToken(id string) string { return tokenEncoding.EncodeToString([]byte(id)) }

// decodeToken writes the ID a page token names into buf and returns its length. It does not
// allocate, because it runs on every request for a page after the first.
func decodeToken(token string, buf *[ids.MaxLen]byte) (int, error) {
	if tokenEncoding.DecodedLen(len(token)) > ids.MaxLen {
		return 0, validation.Errorf("page_token", "is not a page token")
	}
	for i := 0; i < len(token); i++ {
		// The decoder skips '\r' and '\n'; a token is only ever the URL alphabet.
		if c := token[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return 0, validation.Errorf("page_token", "is not a page token")
		}
	}
	n, err := tokenEncoding.Decode(buf[:], []byte(token))
	if err != nil || !ids.Valid(string(buf[:n])) {
		return 0, validation.Errorf("page_token", "is not a page token")
	}
	return n, nil
}
