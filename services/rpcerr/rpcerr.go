// Package rpcerr is the one table that carries the shop's errors across gRPC: a server turns
// a domain error into a status (a code, a UTF-8-safe message and a DomainError detail), and a
// client turns that status back into an error for which errors.Is and errors.As answer as
// they did on the server (sentinels, *validation.Error with its field, *inventory.OutOfStockError
// with its product), with the server's message byte for byte, so that the HTTP layer renders
// the same problem document in both architectures.
//
// Errors that are not the domain's (a store down, a deadline, a peer unreachable) keep their
// gRPC status: on the client they match context.DeadlineExceeded or context.Canceled where
// that is what happened, and nothing of the domain otherwise, which the HTTP layer answers
// with 503 unavailable.
package rpcerr

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/mitosis-dev/mitosis/services/gen/common/v1"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// sentinel is one row of the table: a domain error, its wire name and its status code.
type sentinel struct {
	reason string
	code   codes.Code
	err    error
}

// sentinels is the table. Order matters: a more specific error comes before the error it
// wraps (every decline wraps payments.ErrDeclined), because the first match names the error.
// Reasons are wire names: never change one, only add.
var sentinels = []sentinel{
	{"OUT_OF_STOCK", codes.FailedPrecondition, inventory.ErrOutOfStock},
	{"CARD_DECLINED", codes.FailedPrecondition, payments.ErrCardDeclined},
	{"INSUFFICIENT_FUNDS", codes.FailedPrecondition, payments.ErrInsufficientFunds},
	{"CARD_EXPIRED", codes.FailedPrecondition, payments.ErrCardExpired},
	{"PAYMENT_DECLINED", codes.FailedPrecondition, payments.ErrDeclined},
	{"CHARGE_VOIDED", codes.FailedPrecondition, payments.ErrVoided},
	{"IDEMPOTENCY_CONFLICT", codes.AlreadyExists, orders.ErrIdempotencyConflict},
	{"CATALOG_NOT_FOUND", codes.NotFound, catalog.ErrNotFound},
	{"RESERVATION_NOT_FOUND", codes.NotFound, inventory.ErrReservationNotFound},
	{"CHARGE_NOT_FOUND", codes.NotFound, payments.ErrNotFound},
	{"ORDER_NOT_FOUND", codes.NotFound, orders.ErrNotFound},
	{"SHIPMENT_NOT_FOUND", codes.NotFound, shipping.ErrNotFound},
}

// ToStatus returns the gRPC status error a server answers for err (nil for nil).
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	detail := &commonv1.DomainError{Message: msg}
	code := codes.Unknown
	var verr *validation.Error
	var oos *inventory.OutOfStockError
	switch {
	case errors.As(err, &verr):
		code = codes.InvalidArgument
		detail.Violation = &commonv1.Violation{Field: verr.Field, Reason: verr.Reason}
	case errors.As(err, &oos):
		code = codes.FailedPrecondition
		detail.Reason = "OUT_OF_STOCK"
		detail.OutOfStock = &commonv1.OutOfStock{ProductId: oos.ProductID, Requested: oos.Requested, Available: oos.Available}
	default:
		for _, s := range sentinels {
			if errors.Is(err, s.err) {
				code, detail.Reason = s.code, s.reason
				break
			}
		}
	}
	if detail.Reason == "" && detail.Violation == nil {
		// Not the domain's: the status says what kind of failure it was, and no detail.
		return status.Error(transportCode(err), safe(msg))
	}
	st, derr := status.New(code, safe(msg)).WithDetails(detail)
	if derr != nil { // cannot happen: DomainError has no string fields to be invalid
		return status.Error(code, safe(msg))
	}
	return st.Err()
}

// transportCode is the code of an error the domain does not know.
func transportCode(err error) codes.Code {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	// A client's error from a peer (orders calling payments, say) keeps that peer's code, so
	// that an Unavailable two hops away still reads Unavailable at the edge.
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		return st.Code()
	}
	return codes.Unknown
}

// safe returns s as valid UTF-8: a status message is a proto3 string.
func safe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// FromStatus returns the error a client returns for a failed call to method (the full gRPC
// method name, used only in the message of errors that are not the domain's). It is the
// inverse of ToStatus: a domain error comes back as an error with the server's message that
// matches the same sentinels and types; anything else as an *Error.
func FromStatus(method string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		// Not from the wire (the client's own context, say): as it is.
		return err
	}
	for _, d := range st.Details() {
		de, ok := d.(*commonv1.DomainError)
		if !ok {
			continue
		}
		if e := fromDetail(de); e != nil {
			return e
		}
	}
	return &Error{Method: method, Status: st}
}

// fromDetail rebuilds a domain error, or returns nil for a detail it does not understand (a
// reason added by a newer server), which the caller then treats as a transport failure.
func fromDetail(de *commonv1.DomainError) error {
	msg := de.GetMessage()
	switch {
	case de.GetViolation() != nil:
		v := de.GetViolation()
		return &domainError{msg: msg, err: &validation.Error{Field: v.GetField(), Reason: v.GetReason()}}
	case de.GetOutOfStock() != nil:
		o := de.GetOutOfStock()
		return &domainError{msg: msg, err: &inventory.OutOfStockError{ProductID: o.GetProductId(), Requested: o.GetRequested(), Available: o.GetAvailable()}}
	}
	for _, s := range sentinels {
		if s.reason == de.GetReason() {
			return &domainError{msg: msg, err: s.err}
		}
	}
	return nil
}

// domainError is a domain error rebuilt on the client: the server's message, and the
// sentinel or typed error it matched there.
type domainError struct {
	msg string
	err error
}

func (e *domainError) Error() string { return e.msg }
func (e *domainError) Unwrap() error { return e.err }

// Error is a failed call that the domain has no name for: a peer unreachable or shutting
// down, a deadline, a store failure on the server. errors.Is(err, context.DeadlineExceeded)
// and errors.Is(err, context.Canceled) hold when that is what the status says.
type Error struct {
	Method string
	Status *status.Status
}

func (e *Error) Error() string {
	return e.Method + ": " + e.Status.Code().String() + ": " + e.Status.Message()
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *Error) GRPCStatus() *status.Status { return e.Status }

// Is makes a deadline or a cancellation on the wire match its context error.
func (e *Error) Is(target error) bool {
	switch e.Status.Code() {
	case codes.DeadlineExceeded:
		return target == context.DeadlineExceeded
	case codes.Canceled:
		return target == context.Canceled
	}
	return false
}
