package pagingtest_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/paging/pagingtest"
)

// pages serves the given pages in turn, each naming the next by its index.
func pages(ps ...[]string) func(context.Context, string) ([]string, string, error) {
	return func(_ context.Context, token string) ([]string, string, error) {
		i := 0
		if token != "" {
			i, _ = strconv.Atoi(token)
		}
		next := ""
		if i+1 < len(ps) {
			next = strconv.Itoa(i + 1)
		}
		return ps[i], next, nil
	}
}

func TestWalk(t *testing.T) {
	id := func(s string) string { return s }
	got, err := pagingtest.Walk(t.Context(), "list", 2, id, pages([]string{"a", "b"}, []string{"c", "d"}, []string{"e"}))
	if err != nil || strings.Join(got, "") != "abcde" {
		t.Fatalf("Walk: %v, %v", got, err)
	}
	if got, err := pagingtest.Walk(t.Context(), "list", 2, id, pages([]string{})); err != nil || got == nil || len(got) != 0 {
		t.Errorf("an empty list: %v, %v", got, err)
	}
	for name, tc := range map[string]struct {
		next func(context.Context, string) ([]string, string, error)
		want string
	}{
		"nil page":         {pages(nil), "a page of nil"},
		"short page":       {pages([]string{"a"}, []string{"b"}), "a page of 1 before the last"},
		"item twice":       {pages([]string{"a", "b"}, []string{"b"}), "b twice"},
		"tokens never end": {func(context.Context, string) ([]string, string, error) { return []string{}, "again", nil }, "a page of 0 before the last"},
		"endless full pages": {func(_ context.Context, tok string) ([]string, string, error) {
			n, _ := strconv.Atoi(tok)
			return []string{strconv.Itoa(2 * n), strconv.Itoa(2*n + 1)}, strconv.Itoa(n + 1), nil
		}, "more than 1000 pages"},
	} {
		if _, err := pagingtest.Walk(t.Context(), "list", 2, id, tc.next); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
}
