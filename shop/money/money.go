// Package money is the shop's amount type: integer minor units of one currency, never floats.
package money

import "fmt"

// USD is the one currency the shop sells in.
const USD = "USD"

// Money is an amount in minor units (cents for USD).
type Money struct {
	Currency string `json:"currency"`
	Units    int64  `json:"units"`
}

// Cents returns an amount of US cents.
func Cents(units int64) Money { return Money{Currency: USD, Units: units} }

// Add returns m + o. Both must be in the same currency; the shop has only one.
func (m Money) Add(o Money) Money { return Money{Currency: m.currencyOr(o), Units: m.Units + o.Units} }

// Times returns m multiplied by n.
func (m Money) Times(n int64) Money { return Money{Currency: m.currencyOr(m), Units: m.Units * n} }

func (m Money) currencyOr(o Money) string {
	if m.Currency != "" {
		return m.Currency
	}
	if o.Currency != "" {
		return o.Currency
	}
	return USD
}

// String formats the amount for logs and messages, e.g. "USD 12.34".
func (m Money) String() string {
	sign := ""
	u := m.Units
	if u < 0 {
		sign, u = "-", -u
	}
	return fmt.Sprintf("%s %s%d.%02d", m.Currency, sign, u/100, u%100)
}
