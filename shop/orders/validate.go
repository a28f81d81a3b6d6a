package orders

import (
	"strings"
	"unicode/utf8"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Limits on a checkout request, checked before any side effect (and stated in
// shop/httpapi/openapi.yaml, whose tests read them here).
const (
	MaxKeyLen     = 64  // of an Idempotency-Key, printable ASCII
	MaxEmailLen   = 254 // the longest address SMTP carries (RFC 5321)
	MaxAddressLen = 200 // characters, of each line of the address
)

// validateCheckout returns a validation error naming the first bad field, or nil.
func validateCheckout(key string, req CheckoutRequest) error {
	if !validKey(key) {
		return validation.Errorf("Idempotency-Key", "must be 1 to %d printable ASCII characters", MaxKeyLen)
	}
	if err := validateOrderer(req.UserID, req.Email, req.Address); err != nil {
		return err
	}
	return payments.ValidateCard(req.Card)
}

// validateOrderer checks who orders and where to: the checkout's fields but the key and the
// card.
func validateOrderer(user, email string, address Address) error {
	if err := ids.Check("user_id", user); err != nil {
		return err
	}
	if !validEmail(email) {
		return validation.Errorf("email", "must be an address with one @, at most %d characters", MaxEmailLen)
	}
	for _, f := range []struct{ name, value string }{
		{"address.street", address.Street},
		{"address.city", address.City},
		{"address.postal_code", address.PostalCode},
		{"address.country", address.Country},
	} {
		if strings.TrimSpace(f.value) == "" {
			return validation.Errorf(f.name, "is required")
		}
		if utf8.RuneCountInString(f.value) > MaxAddressLen {
			return validation.Errorf(f.name, "must be at most %d characters", MaxAddressLen)
		}
	}
	return nil
}

// validKey reports whether key is 1..MaxKeyLen characters of printable ASCII (0x20..0x7E).
func validKey(key string) bool {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7E {
			return false
		}
	}
	return true
}

// validEmail checks the shape only (one @ with something on each side): whether the
// mailbox exists is for the mail server to say.
func validEmail(email string) bool {
	if len(email) > MaxEmailLen || strings.Count(email, "@") != 1 {
		return false
	}
	at := strings.IndexByte(email, '@')
	return at > 0 && at < len(email)-1
}
