// Package paging is the one rule of the shop's paged lists (API.md: page_size, page_token,
// next_page_token): the bounds of a page size, and opaque page tokens for the lists whose
// pages start at a position (a user's orders and notifications). It knows nothing of what
// is listed; the catalog's tokens, which name a product ID, are the catalog's own.
package paging

import (
	"encoding/base64"
	"strconv"

	"github.com/mitosis-dev/mitosis/shop/validation"
)

// MaxSize is the largest page size of every list.
const MaxSize = 100

// Size returns the page size a request asks for: def for 0 (none given), size itself in
// 1..MaxSize, and otherwise a validation error on page_size.
func Size(size, def int) (int, error) {
	switch {
	case size == 0:
		return def, nil
	case size < 1 || size > MaxSize:
		return 0, validation.Errorf("page_size", "must be 1 to %d", MaxSize)
	}
	return size, nil
}

// A token is the base64url encoding (unpadded, strict: one token per position) of the
// list's kind, one letter, followed by the position in decimal. The kind makes a list refuse
// the tokens of another; nothing else about a token is for clients to read.
var encoding = base64.RawURLEncoding.Strict()

// maxTokenLen bounds what Position decodes: a kind and the 20 digits of the largest uint64.
var maxTokenLen = encoding.EncodedLen(1 + len(strconv.FormatUint(^uint64(0), 10)))

// ErrBadToken is the error of a page token that names no page of the list it was given to.
func ErrBadToken() error {
	return validation.Errorf("page_token", "is not a page token of this list")
}

// Token returns the page token of position pos in a list of the given kind.
func Token(kind byte, pos uint64) string {
	return encoding.EncodeToString(strconv.AppendUint([]byte{kind}, pos, 10))
}

// Position returns the position a token of the given kind names, or a validation error on
// page_token for anything Token would not have made for that kind.
func Position(token string, kind byte) (uint64, error) {
	if len(token) > maxTokenLen {
		return 0, ErrBadToken()
	}
	for i := range len(token) {
		// The decoder skips '\r' and '\n'; a token is only ever the URL alphabet.
		if c := token[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return 0, ErrBadToken()
		}
	}
	raw, err := encoding.DecodeString(token)
	if err != nil || len(raw) < 2 || raw[0] != kind {
		return 0, ErrBadToken()
	}
	digits := string(raw[1:])
	pos, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || strconv.FormatUint(pos, 10) != digits { // no sign, no leading zeros
		return 0, ErrBadToken()
	}
	return pos, nil
}
