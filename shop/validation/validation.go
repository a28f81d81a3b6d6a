// Package validation is the error every context returns for bad input, carrying the name of
// the offending field so that it survives any transport (HTTP problem documents, gRPC
// status details) and callers can test for it with errors.Is(err, validation.ErrInvalid).
package validation

import (
	"errors"
	"fmt"
)

// ErrInvalid matches every *Error with errors.Is.
var ErrInvalid = errors.New("invalid argument")

// Error says which field of a request is wrong and why.
type Error struct {
	Field  string // JSON name of the field, "" when the request as a whole is wrong
	Reason string
}

// Errorf returns an *Error for field with a formatted reason.
func Errorf(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// FieldOf returns the field named by the first *Error in err's chain, or "".
func FieldOf(err error) string {
	var v *Error
	if errors.As(err, &v) {
		return v.Field
	}
	return ""
}
