// Package catalogtest is the conformance suite of catalog.Service, written once against the
// interface and run against every way of getting one: the implementation over the memory
// store and over JetStream, and (in services/) a gRPC client talking to a real server.
package catalogtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Run runs the suite. newService returns a catalog over a store holding the seed catalog
// and nothing else. Products the tests create have IDs starting with "test-"; one test
// replaces sku-0001 with a higher price.
func Run(t *testing.T, newService func(t *testing.T) catalog.Service) {
	t.Run("SeedPresent", func(t *testing.T) {
		svc := newService(t)
		all := walk(t, svc, "", catalog.MaxPageSize)
		if len(all) < 50 {
			t.Fatalf("catalog has %d products, want at least 50", len(all))
		}
		p, err := svc.Get(context.Background(), "sku-0001")
		if err != nil {
			t.Fatalf("Get sku-0001: %v", err)
		}
		if p.ID != "sku-0001" || p.Name == "" || p.Price.Currency != money.USD || p.Price.Units <= 0 || p.WeightGrams <= 0 {
			t.Fatalf("Get sku-0001 = %+v, want a named product with a USD price and a weight", p)
		}
		if got := all[0]; got != p {
			t.Fatalf("first listed product = %+v, want sku-0001 as Get returns it: %+v", got, p)
		}
	})

	t.Run("PaginationWalksEverythingOnce", func(t *testing.T) {
		svc := newService(t)
		all := walk(t, svc, "", catalog.MaxPageSize)
		byPage := walk(t, svc, "", 7)
		if !slices.Equal(ids(byPage), ids(all)) {
			t.Fatalf("pages of 7 list %d products %v,\nwant the %d of pages of %d: %v",
				len(byPage), ids(byPage), len(all), catalog.MaxPageSize, ids(all))
		}
		if !slices.IsSorted(ids(all)) {
			t.Fatalf("products not sorted by id: %v", ids(all))
		}
	})

	t.Run("DefaultPageSize", func(t *testing.T) {
		svc := newService(t)
		page, err := svc.List(context.Background(), catalog.ListRequest{})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(page.Products) != catalog.DefaultPageSize || page.NextPageToken == "" {
			t.Fatalf("first page has %d products and next token %q, want %d and a token",
				len(page.Products), page.NextPageToken, catalog.DefaultPageSize)
		}
	})

	t.Run("ExactlyFullLastPageHasNoToken", func(t *testing.T) {
		svc := newService(t)
		n := len(walk(t, svc, "", catalog.MaxPageSize))
		// The largest page size below n that divides it, so that the last page is full.
		size := 1
		for k := min(n-1, catalog.MaxPageSize); k > 1; k-- {
			if n%k == 0 {
				size = k
				break
			}
		}
		got := walk(t, svc, "", size) // walk fails on a trailing empty page
		if len(got) != n {
			t.Fatalf("pages of %d list %d products, want %d", size, len(got), n)
		}
		if n <= catalog.MaxPageSize {
			page := list(t, svc, catalog.ListRequest{PageSize: n})
			if len(page.Products) != n || page.NextPageToken != "" {
				t.Fatalf("one page of exactly %d: %d products, token %q, want all and no token",
					n, len(page.Products), page.NextPageToken)
			}
		}
	})

	t.Run("SearchIsCaseInsensitiveOnNameAndDescription", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		byName := product("test-search-name", "Quokka Xylophone", "A wooden instrument.", 1999)
		byDesc := product("test-search-desc", "Plain Mallet", "Made for the Flibbertigibbet orchestra.", 999)
		for _, p := range []catalog.Product{byName, byDesc} {
			if _, err := svc.Upsert(ctx, p); err != nil {
				t.Fatalf("Upsert %s: %v", p.ID, err)
			}
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"xylophone", []string{byName.ID}},
			{"QUOKKA xYLOPHONE", []string{byName.ID}},
			{"fLiBbErTiGiBbEt", []string{byDesc.ID}},
			{"no product says this: zzqqzz", []string{}},
		} {
			got := walk(t, svc, tc.query, 7)
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("search %q = %v, want %v", tc.query, ids(got), tc.want)
			}
		}

		// A seed product is found by its own name in another case.
		seed, err := svc.Get(ctx, "sku-0001")
		if err != nil {
			t.Fatalf("Get sku-0001: %v", err)
		}
		if got := ids(walk(t, svc, strings.ToUpper(seed.Name), 7)); !slices.Contains(got, seed.ID) {
			t.Errorf("search %q = %v, want it to include %s", strings.ToUpper(seed.Name), got, seed.ID)
		}
	})

	t.Run("SearchPaginates", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		want := []string{"test-page-a", "test-page-b", "test-page-c"}
		for _, id := range want {
			if _, err := svc.Upsert(ctx, product(id, "Wombat Kettle "+id, "", 500)); err != nil {
				t.Fatalf("Upsert %s: %v", id, err)
			}
		}
		first := list(t, svc, catalog.ListRequest{Query: "WOMBAT", PageSize: 2})
		if !slices.Equal(ids(first.Products), want[:2]) || first.NextPageToken == "" {
			t.Fatalf("first page = %v, token %q; want %v and a token", ids(first.Products), first.NextPageToken, want[:2])
		}
		second := list(t, svc, catalog.ListRequest{Query: "WOMBAT", PageSize: 2, PageToken: first.NextPageToken})
		if !slices.Equal(ids(second.Products), want[2:]) || second.NextPageToken != "" {
			t.Fatalf("second page = %v, token %q; want %v and no token", ids(second.Products), second.NextPageToken, want[2:])
		}
		exact := list(t, svc, catalog.ListRequest{Query: "wombat", PageSize: 3})
		if len(exact.Products) != 3 || exact.NextPageToken != "" {
			t.Fatalf("page of exactly the 3 matches: %v, token %q; want all and no token", ids(exact.Products), exact.NextPageToken)
		}
	})

	// Case-insensitive is Unicode's simple case folding, not just lower case: a final sigma
	// matches a capital one, the Kelvin sign a K.
	t.Run("SearchFoldsCase", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		if _, err := svc.Upsert(ctx, product("test-fold-greek", "ΣΟΦΟΣ qqfold", "", 500)); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Upsert(ctx, product("test-fold-kelvin", "Plain", "273 \u212Aelvin qqfold", 500)); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ query, want string }{
			{"σοφος qqfold", "test-fold-greek"},
			{"ΣΟΦΟΣ QQFOLD", "test-fold-greek"},
			{"kelvin QQfold", "test-fold-kelvin"},
			{"273 KELVIN", "test-fold-kelvin"},
		} {
			if got := ids(list(t, svc, catalog.ListRequest{Query: tc.query}).Products); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("search %q = %v, want [%s]", tc.query, got, tc.want)
			}
		}
	})

	t.Run("EmptyPageIsNotNil", func(t *testing.T) {
		svc := newService(t)
		page := list(t, svc, catalog.ListRequest{Query: "nothing matches qqzzqqzz"})
		if page.Products == nil || len(page.Products) != 0 || page.NextPageToken != "" {
			t.Fatalf("page = %#v, want an empty non-nil list and no token", page)
		}
	})

	t.Run("BadListRequests", func(t *testing.T) {
		svc := newService(t)
		for _, tc := range []struct {
			name  string
			req   catalog.ListRequest
			field string
		}{
			{"negative page size", catalog.ListRequest{PageSize: -1}, "page_size"},
			{"page size over max", catalog.ListRequest{PageSize: catalog.MaxPageSize + 1}, "page_size"},
			{"token not base64", catalog.ListRequest{PageToken: "!!not a token!!"}, "page_token"},
			{"token of bad length", catalog.ListRequest{PageToken: "a"}, "page_token"},
			{"token with padding", catalog.ListRequest{PageToken: "c2t1LTAwMDE="}, "page_token"},
			{"token of no id", catalog.ListRequest{PageToken: "YQFi"}, "page_token"},                     // "a\x01b"
			{"token too long", catalog.ListRequest{PageToken: strings.Repeat("QUFB", 43)}, "page_token"}, // 129 bytes
		} {
			_, err := svc.List(context.Background(), tc.req)
			if !errors.Is(err, validation.ErrInvalid) {
				t.Errorf("%s: List(%+v) error = %v, want a validation error", tc.name, tc.req, err)
				continue
			}
			if got := validation.FieldOf(err); got != tc.field {
				t.Errorf("%s: error names field %q, want %q", tc.name, got, tc.field)
			}
		}
	})

	t.Run("UpsertCreatesAndReplaces", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		p := product("test-upsert", "Trail Mix Tin", "Keeps trail mix crunchy.", 1250)
		got, err := svc.Upsert(ctx, p)
		if err != nil || got != p {
			t.Fatalf("Upsert create = %+v, %v; want %+v", got, err, p)
		}
		assertVisible(t, svc, p)

		p.Name = "Trail Mix Tin, Large"
		p.Price = money.Cents(1550)
		p.WeightGrams = 410
		if got, err := svc.Upsert(ctx, p); err != nil || got != p {
			t.Fatalf("Upsert replace = %+v, %v; want %+v", got, err, p)
		}
		assertVisible(t, svc, p)
		count := 0
		for _, q := range walk(t, svc, "", catalog.MaxPageSize) {
			if q.ID == p.ID {
				count++
			}
		}
		if count != 1 {
			t.Fatalf("%s listed %d times after a replace, want once", p.ID, count)
		}

		// A seed product can be replaced too.
		seed, err := svc.Get(ctx, "sku-0001")
		if err != nil {
			t.Fatalf("Get sku-0001: %v", err)
		}
		seed.Price = seed.Price.Add(money.Cents(100))
		if _, err := svc.Upsert(ctx, seed); err != nil {
			t.Fatalf("Upsert sku-0001: %v", err)
		}
		assertVisible(t, svc, seed)
	})

	t.Run("UpsertRejectsBadProducts", func(t *testing.T) {
		svc := newService(t)
		good := product("test-valid", "Valid Thing", "", 100)
		for _, tc := range []struct {
			name  string
			edit  func(p *catalog.Product)
			field string
		}{
			{"empty id", func(p *catalog.Product) { p.ID = "" }, "id"},
			{"id too long", func(p *catalog.Product) { p.ID = strings.Repeat("a", 129) }, "id"},
			{"id with a control character", func(p *catalog.Product) { p.ID = "a\nb" }, "id"},
			{"id not UTF-8", func(p *catalog.Product) { p.ID = "a\xffb" }, "id"},
			{"empty name", func(p *catalog.Product) { p.Name = "" }, "name"},
			{"blank name", func(p *catalog.Product) { p.Name = "  \t " }, "name"},
			{"name too long", func(p *catalog.Product) { p.Name = strings.Repeat("n", 201) }, "name"},
			{"description too long", func(p *catalog.Product) { p.Description = strings.Repeat("d", 4001) }, "description"},
			{"no currency", func(p *catalog.Product) { p.Price.Currency = "" }, "price.currency"},
			{"other currency", func(p *catalog.Product) { p.Price.Currency = "EUR" }, "price.currency"},
			{"negative price", func(p *catalog.Product) { p.Price.Units = -1 }, "price.units"},
			{"price too high", func(p *catalog.Product) { p.Price.Units = 100_000_001 }, "price.units"},
			{"negative weight", func(p *catalog.Product) { p.WeightGrams = -1 }, "weight_grams"},
			{"weight too high", func(p *catalog.Product) { p.WeightGrams = 1_000_001 }, "weight_grams"},
		} {
			p := good
			tc.edit(&p)
			_, err := svc.Upsert(context.Background(), p)
			if !errors.Is(err, validation.ErrInvalid) {
				t.Errorf("%s: Upsert error = %v, want a validation error", tc.name, err)
				continue
			}
			if got := validation.FieldOf(err); got != tc.field {
				t.Errorf("%s: error names field %q, want %q", tc.name, got, tc.field)
			}
		}
		if _, err := svc.Get(context.Background(), good.ID); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Get after rejected upserts: %v, want ErrNotFound", err)
		}
	})

	t.Run("UpsertAcceptsLimits", func(t *testing.T) {
		const maxID = 128 // API.md
		svc := newService(t)
		p := catalog.Product{
			// The longest ID, of any characters but control ones (ids.Valid).
			ID:          "test /?#%ü." + strings.Repeat("Z9", 57) + "xy",
			Name:        strings.Repeat("é", 200),
			Description: strings.Repeat("ü", 4000),
			Price:       money.Cents(100_000_000),
			WeightGrams: 1_000_000,
		}
		if len(p.ID) != maxID {
			t.Fatalf("test id has %d bytes, want %d", len(p.ID), maxID)
		}
		if _, err := svc.Upsert(context.Background(), p); err != nil {
			t.Fatalf("Upsert at the limits: %v", err)
		}
		assertVisible(t, svc, p)
		free := product("test-free", "Free Sticker", "", 0)
		free.WeightGrams = 0
		if _, err := svc.Upsert(context.Background(), free); err != nil {
			t.Fatalf("Upsert of a free, weightless product: %v", err)
		}
		assertVisible(t, svc, free)
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		svc := newService(t)
		for _, id := range []string{"sku-9999", "no such product", "", "a\x00b", strings.Repeat("x", 4100)} {
			if _, err := svc.Get(context.Background(), id); !errors.Is(err, catalog.ErrNotFound) {
				t.Errorf("Get(%q) error = %v, want ErrNotFound", id, err)
			}
		}
	})
}

// product returns a valid product for the tests.
func product(id, name, description string, cents int64) catalog.Product {
	return catalog.Product{ID: id, Name: name, Description: description, Price: money.Cents(cents), WeightGrams: 250}
}

// list calls List and fails the test on error.
func list(t *testing.T, svc catalog.Service, req catalog.ListRequest) catalog.Page {
	t.Helper()
	page, err := svc.List(context.Background(), req)
	if err != nil {
		t.Fatalf("List(%+v): %v", req, err)
	}
	if page.Products == nil {
		t.Fatalf("List(%+v): products is nil, want a list", req)
	}
	return page
}

// walk lists every page of query with the page size and checks the paging contract on the
// way: every page but the last is full, the last one has no token, none is empty unless it
// is the only one, and IDs strictly increase across pages.
func walk(t *testing.T, svc catalog.Service, query string, size int) []catalog.Product {
	t.Helper()
	var all []catalog.Product
	token := ""
	for pages := 1; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("walk %q by %d: no last page after %d pages", query, size, pages)
		}
		page := list(t, svc, catalog.ListRequest{Query: query, PageSize: size, PageToken: token})
		if len(page.Products) > size {
			t.Fatalf("walk %q by %d: page %d has %d products", query, size, pages, len(page.Products))
		}
		if len(page.Products) == 0 && pages > 1 {
			t.Fatalf("walk %q by %d: page %d is empty; the previous page should have been the last", query, size, pages)
		}
		if page.NextPageToken != "" && len(page.Products) != size {
			t.Fatalf("walk %q by %d: page %d has %d products and a next token; only the last page may be short",
				query, size, pages, len(page.Products))
		}
		for _, p := range page.Products {
			if n := len(all); n > 0 && all[n-1].ID >= p.ID {
				t.Fatalf("walk %q by %d: %s listed after %s", query, size, p.ID, all[n-1].ID)
			}
			all = append(all, p)
		}
		if page.NextPageToken == "" {
			return all
		}
		token = page.NextPageToken
	}
}

// assertVisible checks that Get and List both return p as it was last upserted.
func assertVisible(t *testing.T, svc catalog.Service, p catalog.Product) {
	t.Helper()
	got, err := svc.Get(context.Background(), p.ID)
	if err != nil || got != p {
		t.Fatalf("Get(%s) = %+v, %v; want %+v", p.ID, got, err, p)
	}
	for _, q := range walk(t, svc, "", catalog.MaxPageSize) {
		if q.ID == p.ID {
			if q != p {
				t.Fatalf("List shows %+v, want %+v", q, p)
			}
			return
		}
	}
	t.Fatalf("List does not show %s", p.ID)
}

func ids(products []catalog.Product) []string {
	out := make([]string, len(products))
	for i, p := range products {
		out[i] = p.ID
	}
	return out
}
