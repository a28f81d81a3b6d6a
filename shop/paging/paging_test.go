package paging_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		size, def, want int
		ok              bool
	}{
		{0, 20, 20, true}, {1, 20, 1, true}, {100, 20, 100, true}, {0, 100, 100, true},
		{-1, 20, 0, false}, {101, 20, 0, false},
	} {
		got, err := paging.Size(tc.size, tc.def)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("Size(%d, %d) = %d, %v; want %d", tc.size, tc.def, got, err, tc.want)
		}
		if !tc.ok && (!errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "page_size") {
			t.Errorf("Size(%d, %d): %v, want a validation error on page_size", tc.size, tc.def, err)
		}
	}
}

func TestTokens(t *testing.T) {
	for _, pos := range []uint64{0, 1, 99, 1 << 40, ^uint64(0)} {
		tok := paging.Token('o', pos)
		if got, err := paging.Position(tok, 'o'); err != nil || got != pos {
			t.Errorf("Position(Token(%d)) = %d, %v", pos, got, err)
		}
		if _, err := paging.Position(tok, 'n'); validation.FieldOf(err) != "page_token" {
			t.Errorf("a token of another list: %v, want a validation error on page_token", err)
		}
	}
	for _, bad := range []string{
		"", "!!", "abc", "b3==", paging.Token('o', 5) + "=",
		encode("o"), encode("o-1"), encode("o+1"), encode("o01"), encode("o 1"), encode("o18446744073709551616"),
	} {
		if _, err := paging.Position(bad, 'o'); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "page_token" {
			t.Errorf("Position(%q): %v, want a validation error on page_token", bad, err)
		}
	}
}

func encode(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// FuzzPosition: whatever a client sends as a token, Position either refuses it or names the
// one position whose token it is.
func FuzzPosition(f *testing.F) {
	f.Add(paging.Token('o', 42))
	f.Add("")
	f.Add("b0xx")
	f.Fuzz(func(t *testing.T, token string) {
		pos, err := paging.Position(token, 'o')
		if err != nil {
			if validation.FieldOf(err) != "page_token" {
				t.Fatalf("Position(%q): %v, want a validation error on page_token", token, err)
			}
			return
		}
		if again := paging.Token('o', pos); again != token {
			t.Fatalf("Position(%q) = %d, whose token is %q", token, pos, again)
		}
	})
}
