// Package conv converts the types several contexts share between their Go and protobuf forms.
// The rule every adapter follows: a conversion loses nothing, so that a value that crossed
// the wire compares equal to the one that was sent (times in UTC, lists never nil).
package conv

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/mitosis-dev/mitosis/services/gen/common/v1"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/money"
)

// Money returns m's protobuf form.
func Money(m money.Money) *commonv1.Money {
	return FillMoney(new(commonv1.Money), m)
}

// FillMoney sets dst, a new message (one of a list made at once, say), to m's protobuf form
// and returns it.
func FillMoney(dst *commonv1.Money, m money.Money) *commonv1.Money {
	dst.Currency, dst.Units = m.Currency, m.Units
	return dst
}

// FromMoney returns m's Go form; nil is the zero amount.
func FromMoney(m *commonv1.Money) money.Money {
	return money.Money{Currency: m.GetCurrency(), Units: m.GetUnits()}
}

// Address returns a's protobuf form.
func Address(a events.Address) *commonv1.Address {
	return &commonv1.Address{Street: a.Street, City: a.City, PostalCode: a.PostalCode, Country: a.Country}
}

// FromAddress returns a's Go form.
func FromAddress(a *commonv1.Address) events.Address {
	return events.Address{
		Street:     a.GetStreet(),
		City:       a.GetCity(),
		PostalCode: a.GetPostalCode(),
		Country:    a.GetCountry(),
	}
}

// Time returns t's protobuf form; the zero time is unset.
func Time(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// FromTime returns t's Go form in UTC; unset is the zero time.
func FromTime(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}
