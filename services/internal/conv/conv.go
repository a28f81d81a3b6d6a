// Package conv converts the types several contexts share between their Go and protobuf forms.
// The rule every adapter follows: a conversion loses nothing, so that a value that crossed
// the wire compares equal to the one that was sent (times in UTC, lists never nil).
package conv

import (
	"time"
	"unsafe"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/mitosis-dev/mitosis/services/gen/common/v1"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/money"
)

// B returns s as bytes for a bytes field of a message about to be sent, without copying:
// marshalling only reads the bytes, and strings are immutable, so they cannot change under
// it. Never use it for a message that something may modify.
func B(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// S returns a received bytes field as a string, without copying. Unmarshalling copies every
// bytes field into a slice of its own (never into the transport's buffer), and the adapters
// drop the message once converted, so nothing writes to those bytes again; the string keeps
// them alive. Copying instead cost a quarter of a product list's allocations on the wire.
func S(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Money returns m's protobuf form.
func Money(m money.Money) *commonv1.Money {
	return &commonv1.Money{Currency: B(m.Currency), Units: m.Units}
}

// FromMoney returns m's Go form; nil is the zero amount.
func FromMoney(m *commonv1.Money) money.Money {
	return money.Money{Currency: S(m.GetCurrency()), Units: m.GetUnits()}
}

// Address returns a's protobuf form.
func Address(a events.Address) *commonv1.Address {
	return &commonv1.Address{Street: B(a.Street), City: B(a.City), PostalCode: B(a.PostalCode), Country: B(a.Country)}
}

// FromAddress returns a's Go form.
func FromAddress(a *commonv1.Address) events.Address {
	return events.Address{
		Street:     S(a.GetStreet()),
		City:       S(a.GetCity()),
		PostalCode: S(a.GetPostalCode()),
		Country:    S(a.GetCountry()),
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
