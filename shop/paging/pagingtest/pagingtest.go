// Package pagingtest walks a paged list as a client of API.md does, checking the rules of
// shop/paging on every page: the conformance suites of the contexts with lists share it.
package pagingtest

import (
	"context"
	"fmt"
)

// maxPages bounds a walk: far more pages than any test makes, so a list whose tokens never end
// fails instead of looping.
const maxPages = 1000

// Walk follows next from the first page (token "") to the last and returns every item in the
// order the pages gave them, or an error if the pages break their rules: a nil page, a page
// before the last that is not full (pageSize, the default size next asks for), or an item (by
// id) twice. what names the list in errors ("orders of user-1").
func Walk[T any](ctx context.Context, what string, pageSize int, id func(T) string,
	next func(ctx context.Context, token string) (items []T, nextToken string, err error)) ([]T, error) {
	all := []T{}
	seen := map[string]bool{}
	token := ""
	for range maxPages {
		items, nextToken, err := next(ctx, token)
		if err != nil {
			return nil, err
		}
		if items == nil {
			return nil, fmt.Errorf("%s: a page of nil", what)
		}
		for _, it := range items {
			if seen[id(it)] {
				return nil, fmt.Errorf("%s: %s twice", what, id(it))
			}
			seen[id(it)] = true
		}
		all = append(all, items...)
		if nextToken == "" {
			return all, nil
		}
		if len(items) != pageSize {
			return nil, fmt.Errorf("%s: a page of %d before the last", what, len(items))
		}
		token = nextToken
	}
	return nil, fmt.Errorf("%s: more than %d pages", what, maxPages)
}
