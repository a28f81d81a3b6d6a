package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// Shop is the little client a run needs before and after the load: the catalog, stock
// levels and readiness, over the public API only.
type Shop struct {
	BaseURL    string
	AdminToken string
	HTTP       *http.Client // nil: one with a 10s timeout
}

func (s Shop) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (s Shop) do(ctx context.Context, method, path string, admin bool, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	}
	res, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// WaitReady polls GET /readyz until it answers 200 or timeout passes.
func (s Shop) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = s.Ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", s.BaseURL, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ready asks GET /readyz once, for at most 2 s: nil when it answers 200, as only an edge
// does.
func (s Shop) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.do(ctx, http.MethodGet, "/readyz", false, nil, nil)
}

// Catalog lists every product (at most 100 pages of 100).
func (s Shop) Catalog(ctx context.Context) ([]apitest.Product, error) {
	var all []apitest.Product
	token := ""
	for range 100 {
		var page apitest.Page
		q := url.Values{"page_size": {"100"}}
		if token != "" {
			q.Set("page_token", token)
		}
		if err := s.do(ctx, http.MethodGet, "/v1/products?"+q.Encode(), false, nil, &page); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		all = append(all, page.Products...)
		if page.NextPageToken == "" {
			return all, nil
		}
		token = page.NextPageToken
	}
	return nil, errors.New("catalog: more than 100 pages")
}

// SearchTerms picks words of four letters or more from the products' names: words that
// match something, as a shopper's searches mostly do.
func SearchTerms(products []apitest.Product) []string {
	seen := map[string]bool{}
	var terms []string
	for _, p := range products {
		for _, w := range strings.FieldsFunc(strings.ToLower(p.Name), func(r rune) bool { return !unicode.IsLetter(r) }) {
			if len([]rune(w)) >= 4 && !seen[w] {
				seen[w] = true
				terms = append(terms, w)
			}
		}
	}
	slices.Sort(terms)
	return terms
}

// Stock reads a product's inventory.
func (s Shop) Stock(ctx context.Context, productID string) (apitest.Stock, error) {
	var st apitest.Stock
	err := s.do(ctx, http.MethodGet, "/v1/inventory/"+url.PathEscape(productID), false, nil, &st)
	return st, err
}

// maxAdd is API.md's bound of one admin stock addition.
const maxAdd = 1_000_000

// Replenish tops every product's available stock up to level through the admin API, so that
// stock never ends a run early. It returns the units it added.
func (s Shop) Replenish(ctx context.Context, productIDs []string, level int64) (int64, error) {
	added, err := s.TopUp(ctx, productIDs, level)
	var n int64
	for _, a := range added {
		n += a
	}
	return n, err
}

// StockLevel is the stock per product that a plan needs: three times the units its
// checkouts could buy if every request were one, spread over the products, and at least 1000.
func StockLevel(p Plan, products int) int64 {
	var reqs float64
	for _, st := range p.Steps() {
		reqs += st.Rate * st.Duration.Seconds()
	}
	reqs += p.WarmupRate * p.Warmup.Seconds()
	return stockFor(reqs, p.Mix, products)
}

// stockFor is the stock per product that reqs requests of mix need: three times the units
// their checkouts could buy if every request were one, spread over the products, and at
// least 1000.
func stockFor(reqs float64, mix Mix, products int) int64 {
	if products <= 0 {
		return 1000
	}
	w := mix.weights()
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	// A cart add puts at most 2 units in a cart; each unit is bought at most once.
	units := reqs * (mix.CartAdd / sum) * 2
	level := int64(3*units/float64(products)) + 1
	return max(level, 1000)
}

// AdminToken returns SHOP_ADMIN_TOKEN, else the content of the token file (trimmed), else "".
func AdminToken(tokenFile string) string {
	if t := os.Getenv("SHOP_ADMIN_TOKEN"); t != "" {
		return t
	}
	if b, err := os.ReadFile(filepath.Clean(tokenFile)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}
