package payments

import (
	"time"

	"github.com/mitosis-dev/mitosis/shop/validation"
)

// The shape of a card, checked by ValidateCard (and stated in shop/httpapi/openapi.yaml,
// whose tests read it here).
const (
	MinCVVDigits, MaxCVVDigits = 3, 4
	MinExpYear, MaxExpYear     = 1000, 9999 // four digits
)

// ValidateCard checks that c is well formed: a number of digits (no spaces) that passes the
// Luhn check, a month 1..12, a four-digit year and a CVV of 3 or 4 digits. The number has no
// length of its own: API.md approves any Luhn-valid number but its test cards (79927398713,
// Luhn's own example, has 11 digits), and the number goes nowhere but to the checksum and,
// its last four digits, to the charge; the body's 1 MiB bounds it. It is
// pure, so that callers can reject a bad card at the edge before any side effect (orders does
// it before reserving stock). An expired card is well formed: expiry is a decline, decided
// by Charge with the clock.
func ValidateCard(c Card) error {
	if c.Number == "" || !digits(c.Number) {
		return validation.Errorf("card.number", "must be digits only")
	}
	if !luhn(c.Number) {
		return validation.Errorf("card.number", "is not a valid card number (Luhn check failed)")
	}
	if c.ExpMonth < 1 || c.ExpMonth > 12 {
		return validation.Errorf("card.exp_month", "must be 1 to 12, got %d", c.ExpMonth)
	}
	if c.ExpYear < MinExpYear || c.ExpYear > MaxExpYear {
		return validation.Errorf("card.exp_year", "must be four digits, got %d", c.ExpYear)
	}
	if n := len(c.CVV); n < MinCVVDigits || n > MaxCVVDigits || !digits(c.CVV) {
		return validation.Errorf("card.cvv", "must be %d or %d digits", MinCVVDigits, MaxCVVDigits)
	}
	return nil
}

// expired reports whether a card expiring in (year, month) is expired at now: a card is good
// through the last day of its expiry month, judged in UTC.
func expired(year, month int, now time.Time) bool {
	now = now.UTC()
	if year != now.Year() {
		return year < now.Year()
	}
	return month < int(now.Month())
}

// last4 is all of a card number the shop ever stores: its last four digits, or all of a
// shorter one.
func last4(number string) string { return number[max(0, len(number)-4):] }

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// luhn reports whether a string of digits passes the Luhn checksum.
func luhn(number string) bool {
	sum := 0
	double := false
	for i := len(number) - 1; i >= 0; i-- {
		d := int(number[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
