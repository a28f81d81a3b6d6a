package catalog

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Limits on a product, checked by Upsert.
const (
	maxIDLen          = 64
	maxNameLen        = 200
	maxDescriptionLen = 4000
	maxPriceUnits     = 100_000_000 // one million dollars
	maxWeightGrams    = 1_000_000   // one tonne
)

// validateProduct returns a validation error naming the first bad field of p, or nil.
func validateProduct(p Product) error {
	if !validID(p.ID) {
		return validation.Errorf("id", "must be 1 to %d characters of letters, digits, '.', '_' or '-'", maxIDLen)
	}
	if n := utf8.RuneCountInString(p.Name); n == 0 || n > maxNameLen || strings.TrimSpace(p.Name) == "" {
		return validation.Errorf("name", "must be 1 to %d characters and not blank", maxNameLen)
	}
	if !utf8.ValidString(p.Name) {
		return validation.Errorf("name", "must be valid UTF-8")
	}
	if utf8.RuneCountInString(p.Description) > maxDescriptionLen {
		return validation.Errorf("description", "must be at most %d characters", maxDescriptionLen)
	}
	if !utf8.ValidString(p.Description) {
		return validation.Errorf("description", "must be valid UTF-8")
	}
	if p.Price.Currency != money.USD {
		return validation.Errorf("price.currency", "must be %q, got %q", money.USD, p.Price.Currency)
	}
	if p.Price.Units < 0 || p.Price.Units > maxPriceUnits {
		return validation.Errorf("price.units", "must be 0 to %d", maxPriceUnits)
	}
	if p.WeightGrams < 0 || p.WeightGrams > maxWeightGrams {
		return validation.Errorf("weight_grams", "must be 0 to %d", maxWeightGrams)
	}
	return nil
}

// validID reports whether id is 1..maxIDLen bytes of [A-Za-z0-9._-].
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Page tokens are the base64url (unpadded) encoding of the last ID of the previous page:
// opaque to clients, and still meaningful if that product has changed since.
var tokenEncoding = base64.RawURLEncoding.Strict() // Strict: one token per ID

func encodeToken(id string) string { return tokenEncoding.EncodeToString([]byte(id)) }

// decodeToken writes the ID a page token names into buf and returns its length. It does not
// allocate, because it runs on every request for a page after the first.
func decodeToken(token string, buf *[maxIDLen]byte) (int, error) {
	if tokenEncoding.DecodedLen(len(token)) > maxIDLen {
		return 0, validation.Errorf("page_token", "is not a page token")
	}
	for i := 0; i < len(token); i++ {
		// The decoder skips '\r' and '\n'; a token is only ever the URL alphabet.
		if c := token[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return 0, validation.Errorf("page_token", "is not a page token")
		}
	}
	n, err := tokenEncoding.Decode(buf[:], []byte(token))
	if err != nil || !validID(string(buf[:n])) {
		return 0, validation.Errorf("page_token", "is not a page token")
	}
	return n, nil
}
