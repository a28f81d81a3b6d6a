package apitest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var productKeys = []string{"id", "name", "description", "price", "weight_grams"}

func testProductGet(t *testing.T, c *Client) {
	p := c.NewProduct(t, 1999, 250)
	r := c.Request(t, http.MethodGet, "/v1/products/"+p.ID, nil, nil)
	var got Product
	expectJSON(t, "get product", r, http.StatusOK, &got)
	ExpectKeys(t, "product", r.Body, productKeys...)
	ExpectKeys(t, "product price", rawField(t, r.Body, "price"), "currency", "units")
	if got != p {
		t.Errorf("got %+v, want %+v", got, p)
	}
	ExpectProblem(t, c.Request(t, http.MethodGet, "/v1/products/"+NewID("t"), nil, nil), http.StatusNotFound, "not-found")
}

func testProductReplace(t *testing.T, c *Client) {
	p := c.NewProduct(t, 500, 100)
	p.Name, p.Description, p.Price.Units, p.WeightGrams = "Replaced "+p.ID, "second version", 750, 120
	c.PutProduct(t, p)
	if got := c.Product(t, p.ID); got != p {
		t.Errorf("after replace: %+v, want %+v", got, p)
	}
}

func testProductPutRejectsID(t *testing.T, c *Client) {
	id := NewID("t")
	body := map[string]any{"id": id, "name": "With id", "description": "d", "price": Money{"USD", 100}, "weight_grams": 1}
	ExpectProblem(t, c.Invalid().Request(t, http.MethodPut, "/v1/admin/products/"+id, c.adminHeader(), body), http.StatusBadRequest, "invalid-argument")
	ExpectProblem(t, c.Request(t, http.MethodGet, "/v1/products/"+id, nil, nil), http.StatusNotFound, "not-found")
}

// newMarker returns a word no product outside the calling test contains.
func newMarker() string { return strings.ReplaceAll(NewID("zq"), "-", "") }

// walk collects every page of a query, failing t unless every page but the last is full
// (of size, or 20 when size is 0), the last has next_page_token "", and IDs increase.
func walk(t *testing.T, c *Client, q string, size int) (ids []string, pages []int) {
	t.Helper()
	token := ""
	want := size
	if want == 0 {
		want = 20
	}
	for range maxPages {
		params := query("q", q, "page_token", token)
		if size != 0 {
			params.Set("page_size", strconv.Itoa(size))
		}
		page := c.Products(t, params)
		for _, p := range page.Products {
			if len(ids) > 0 && p.ID <= ids[len(ids)-1] {
				t.Fatalf("product %s after %s: not sorted by id", p.ID, ids[len(ids)-1])
			}
			ids = append(ids, p.ID)
		}
		pages = append(pages, len(page.Products))
		if page.NextPageToken == "" {
			return ids, pages
		}
		if len(page.Products) != want {
			t.Fatalf("page %d has %d products and a next page; every page but the last must have %d", len(pages), len(page.Products), want)
		}
		token = page.NextPageToken
	}
	t.Fatalf("more than %d pages", maxPages)
	return nil, nil
}

func testProductListPaging(t *testing.T, c *Client) {
	marker := newMarker()
	prefix := NewID("t")
	var want []string
	for _, i := range rand.Perm(25) { // created out of order: the list sorts
		id := fmt.Sprintf("%s-%02d", prefix, i)
		c.PutProduct(t, Product{ID: id, Name: "Paging " + marker, Description: "page me", Price: Money{"USD", 100}, WeightGrams: 1})
		want = append(want, id)
	}
	slices.Sort(want)

	ids, pages := walk(t, c, marker, 7)
	if !slices.Equal(ids, want) || !slices.Equal(pages, []int{7, 7, 7, 4}) {
		t.Errorf("page_size 7: ids %v in pages %v, want %v in pages [7 7 7 4]", ids, pages, want)
	}
	ids, pages = walk(t, c, marker, 0)
	if !slices.Equal(ids, want) || !slices.Equal(pages, []int{20, 5}) {
		t.Errorf("default page size: ids %v in pages %v, want %v in pages [20 5]", ids, pages, want)
	}
	ids, pages = walk(t, c, marker, 25)
	if !slices.Equal(ids, want) || !slices.Equal(pages, []int{25}) {
		t.Errorf("page_size 25: ids %v in pages %v, want %v in one page", ids, pages, want)
	}
	ids, _ = walk(t, c, marker, 100)
	if !slices.Equal(ids, want) {
		t.Errorf("page_size 100: ids %v, want %v", ids, want)
	}
}

// testProductListWholeCatalog walks the unfiltered catalog: sorted, full pages, and it
// holds a product just created.
func testProductListWholeCatalog(t *testing.T, c *Client) {
	p := c.NewProduct(t, 100, 1)
	ids, _ := walk(t, c, "", 100)
	if !slices.Contains(ids, p.ID) {
		t.Errorf("the catalog's %d products do not include %s", len(ids), p.ID)
	}
}

func testProductSearch(t *testing.T, c *Client) {
	marker := newMarker()
	mixed := strings.ToUpper(marker[:4]) + marker[4:]
	inName := c.PutProduct(t, Product{ID: NewID("t"), Name: "Alpha " + strings.ToUpper(marker), Description: "plain", Price: Money{"USD", 100}, WeightGrams: 1})
	inDescription := c.PutProduct(t, Product{ID: NewID("t"), Name: "Beta", Description: "has " + mixed + " inside", Price: Money{"USD", 100}, WeightGrams: 1})
	c.PutProduct(t, Product{ID: NewID("t"), Name: "Gamma " + marker[:len(marker)-1], Description: "almost", Price: Money{"USD", 100}, WeightGrams: 1})
	want := []string{inName.ID, inDescription.ID}
	slices.Sort(want)
	for _, q := range []string{marker, strings.ToUpper(marker), mixed} {
		if ids, _ := walk(t, c, q, 0); !slices.Equal(ids, want) {
			t.Errorf("q=%s: %v, want %v", q, ids, want)
		}
	}
	if ids, _ := walk(t, c, NewID("nothing"), 0); len(ids) != 0 {
		t.Errorf("a query nothing matches: %v, want none", ids)
	}

	// Case-insensitive beyond ASCII: a capital sigma matches a final one.
	greek := c.PutProduct(t, Product{ID: NewID("t"), Name: "ΣΟΦΟΣ " + strings.ToUpper(marker), Description: "Émile", Price: Money{"USD", 100}, WeightGrams: 1})
	for _, q := range []string{"σοφος " + marker, "ΣΟΦΟΣ " + marker, "émile"} {
		if ids, _ := walk(t, c, q, 0); !slices.Contains(ids, greek.ID) || (q != "émile" && len(ids) != 1) {
			t.Errorf("q=%s: %v, want %s", q, ids, greek.ID)
		}
	}
}

func testProductListBadQuery(t *testing.T, c *Client) {
	for _, size := range []string{"0", "-1", "101", "abc", "1.5", "99999999999999999999"} {
		r := c.Invalid().Request(t, http.MethodGet, "/v1/products?"+query("page_size", size).Encode(), nil, nil)
		ExpectProblem(t, r, http.StatusBadRequest, "invalid-argument")
	}
	r := c.Request(t, http.MethodGet, "/v1/products?"+query("page_token", "!!not a token!!").Encode(), nil, nil)
	ExpectProblem(t, r, http.StatusBadRequest, "invalid-argument")
	for _, size := range []int{1, 100} {
		page := c.Products(t, query("page_size", strconv.Itoa(size)))
		if len(page.Products) > size || page.NextPageToken != "" && len(page.Products) != size {
			t.Errorf("page_size %d: %d products, next_page_token %q", size, len(page.Products), page.NextPageToken)
		}
	}
}
