package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestDifferential drives one scripted session (browse, search, admin, cart, declines,
// checkout, idempotent retry, conflict, out of stock, order history, notifications) against
// the monolith and against the microservices' gateway, each on fresh stores, and requires
// the responses to be identical, status, content type and body, except IDs and timestamps.
func TestDifferential(t *testing.T) {
	stack := startStack(t)
	mono := startMonolith(t)
	got := map[string][]exchange{}
	for name, base := range map[string]string{"monolith": mono, "microservices": stack.GatewayURL} {
		c := apitest.NewClient(apitest.Target{BaseURL: base, AdminToken: testToken})
		got[name] = session(t, c)
	}
	m, s := got["monolith"], got["microservices"]
	if len(m) != len(s) {
		t.Fatalf("the monolith answered %d requests, the microservices %d", len(m), len(s))
	}
	for i := range m {
		if m[i] != s[i] {
			t.Errorf("step %d differs:\nmonolith:      %s\nmicroservices: %s", i, m[i], s[i])
		}
	}
	t.Logf("%d responses compared", len(m))
}

// exchange is one request and its response, with IDs and timestamps normalised.
type exchange struct {
	request     string
	status      int
	contentType string
	body        string
}

func (e exchange) String() string {
	return fmt.Sprintf("%s -> %d %s %s", e.request, e.status, e.contentType, e.body)
}

var (
	generatedID = regexp.MustCompile(`\b[a-z]+-[0-9a-f]{28}\b`)
	timestamp   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
)

// session runs the script against c. Generated IDs are numbered by first appearance, so that
// the same ID reads the same wherever it reappears.
func session(t *testing.T, c *apitest.Client) []exchange {
	t.Helper()
	var out []exchange
	names := map[string]string{}
	normalise := func(s string) string {
		s = generatedID.ReplaceAllStringFunc(s, func(id string) string {
			if n, ok := names[id]; ok {
				return n
			}
			n := fmt.Sprintf("<%s#%d>", id[:strings.IndexByte(id, '-')], len(names)+1)
			names[id] = n
			return n
		})
		return timestamp.ReplaceAllString(s, "<time>")
	}
	admin := http.Header{"Authorization": {"Bearer " + testToken}}
	do := func(method, path string, header http.Header, body any) *apitest.Response {
		t.Helper()
		r := c.Request(t, method, path, header, body)
		out = append(out, exchange{
			request:     normalise(method + " " + path),
			status:      r.Status,
			contentType: r.Header.Get("Content-Type"),
			body:        normalise(strings.TrimSpace(string(r.Body))),
		})
		return r
	}
	key := func(k string) http.Header { return http.Header{"Idempotency-Key": {k}} }
	now := time.Now()
	lastMonth := now.AddDate(0, -1, 0)
	checkout := func(user, number string, month, year int) map[string]any {
		return map[string]any{
			"user_id": user, "email": user + "@example.com",
			"address": map[string]string{"street": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
			"card":    map[string]any{"number": number, "exp_month": month, "exp_year": year, "cvv": "123"},
		}
	}
	approved := checkout("alice", "4242424242424242", 12, now.Year()+2)

	// Browse and search.
	first := do("GET", "/v1/products?page_size=3", nil, nil)
	var page struct {
		NextPageToken string `json:"next_page_token"`
	}
	_ = json.Unmarshal(first.Body, &page)
	do("GET", "/v1/products?page_size=3&page_token="+page.NextPageToken, nil, nil)
	do("GET", "/v1/products?q=TENT&page_size=5", nil, nil)
	do("GET", "/v1/products?page_size=101", nil, nil)
	do("GET", "/v1/products?page_token=garbage", nil, nil)
	do("GET", "/v1/products/sku-0001", nil, nil)
	do("GET", "/v1/products/sku-nope", nil, nil)
	do("GET", "/v1/nowhere", nil, nil)

	// Admin.
	widget := map[string]any{"name": "Diff Widget", "description": "Made for the differential test.",
		"price": map[string]any{"currency": "USD", "units": 1999}, "weight_grams": 345}
	do("PUT", "/v1/admin/products/diff-widget", nil, widget)
	do("PUT", "/v1/admin/products/diff-widget", admin, widget)
	do("PUT", "/v1/admin/products/diff-bad", admin, map[string]any{"name": "", "price": map[string]any{"currency": "USD", "units": 1}})
	do("POST", "/v1/admin/inventory/diff-widget", admin, map[string]any{"add": 3})
	do("POST", "/v1/admin/inventory/sku-0001", admin, map[string]any{"add": 10})
	do("POST", "/v1/admin/inventory/sku-nope", admin, map[string]any{"add": 1})
	do("POST", "/v1/admin/inventory/sku-0001", admin, map[string]any{"add": 0})
	do("GET", "/v1/inventory/diff-widget", nil, nil)

	// Cart.
	do("GET", "/v1/carts/alice", nil, nil)
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-0001", "quantity": 2})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "diff-widget", "quantity": 1})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-0001", "quantity": 1})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-0001", "quantity": 99})
	do("POST", "/v1/carts/alice/items", nil, map[string]any{"product_id": "sku-nope", "quantity": 1})
	do("POST", "/v1/carts/alice/items", nil, `{"product_id": "sku-0001", "quantity": 1, "extra": true}`)
	do("POST", "/v1/carts/alice/items", nil, `{"product_id": `)

	// Checkouts that change nothing.
	do("POST", "/v1/checkout", key("decl-1"), checkout("alice", "4000000000000002", 12, now.Year()+2))
	do("POST", "/v1/checkout", key("decl-2"), checkout("alice", "4000000000009995", 12, now.Year()+2))
	do("POST", "/v1/checkout", key("decl-3"), checkout("alice", "4242424242424242", int(lastMonth.Month()), lastMonth.Year()))
	do("POST", "/v1/checkout", key("decl-4"), checkout("alice", "4242424242424241", 12, now.Year()+2))
	do("POST", "/v1/checkout", nil, approved)
	do("POST", "/v1/checkout", key("bad-1"), checkout("", "4242424242424242", 12, now.Year()+2))
	do("POST", "/v1/checkout", key("empty-1"), checkout("nobody", "4242424242424242", 12, now.Year()+2))
	do("GET", "/v1/carts/alice", nil, nil)
	do("GET", "/v1/inventory/sku-0001", nil, nil)

	// The checkout, its replay, and a conflicting reuse of its key.
	r := do("POST", "/v1/checkout", key("alice-1"), approved)
	var order apitest.Order
	if err := json.Unmarshal(r.Body, &order); err != nil || order.ID == "" {
		t.Fatalf("checkout: %s", r)
	}
	do("GET", "/v1/carts/alice", nil, nil)
	do("GET", "/v1/inventory/sku-0001", nil, nil)
	do("GET", "/v1/inventory/diff-widget", nil, nil)

	// Asynchronous effects, compared once settled (a replay answers the order's current
	// state, so it too waits for shipping).
	c.WaitShipped(t, order.ID)
	c.WaitNotifications(t, "alice", order.ID, "order-paid", "order-shipped")
	do("POST", "/v1/checkout", key("alice-1"), approved)
	do("POST", "/v1/checkout", key("alice-1"), checkout("alice", "5555555555554444", 12, now.Year()+2))
	do("GET", "/v1/orders/"+order.ID, nil, nil)
	do("GET", "/v1/users/alice/orders", nil, nil)
	do("GET", "/v1/users/alice/notifications", nil, nil)

	// Out of stock, names the product.
	do("POST", "/v1/carts/bob/items", nil, map[string]any{"product_id": "diff-widget", "quantity": 3})
	do("POST", "/v1/checkout", key("bob-1"), checkout("bob", "4242424242424242", 12, now.Year()+2))
	do("GET", "/v1/inventory/diff-widget", nil, nil)
	do("DELETE", "/v1/carts/bob", nil, nil)
	do("GET", "/v1/carts/bob", nil, nil)

	// Unknowns.
	do("GET", "/v1/orders/ord-nope", nil, nil)
	do("GET", "/v1/users/nobody/orders", nil, nil)
	do("GET", "/v1/users/nobody/notifications", nil, nil)
	do("GET", "/v1/inventory/sku-nope", nil, nil)
	return out
}

// startMonolith runs the monolith binary on a free port with its own embedded NATS, stopped
// (SIGTERM) when t ends, and returns its base URL once ready.
func startMonolith(t *testing.T) string {
	t.Helper()
	dir := build(t)
	cmd := exec.Command(filepath.Join(dir, "monolith"))
	cmd.Env = append(os.Environ(), "SHOP_ADDR=127.0.0.1:0", "SHOP_DATA_DIR="+t.TempDir(),
		"SHOP_ADMIN_TOKEN="+testToken, "SHOP_NATS_URL=")
	addrs := make(chan string, 1)
	cmd.Stdout = &addrSink{addrs: addrs}
	cmd.Stderr = &logWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start monolith: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a
	case <-exited:
		t.Fatal("monolith exited before listening")
	case <-time.After(60 * time.Second):
		t.Fatal("monolith not listening after 60s")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := apitest.NewClient(apitest.Target{BaseURL: base})
	for {
		r, err := c.Do(ctx, "GET", "/readyz", nil, nil)
		if err == nil && r.Status == http.StatusOK {
			return base
		}
		if ctx.Err() != nil {
			t.Fatalf("monolith not ready: %v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addrSink reads the monolith's JSON log and reports the address of its listening line.
type addrSink struct {
	addrs    chan<- string
	partial  []byte
	reported bool
}

func (s *addrSink) Write(b []byte) (int, error) {
	if s.reported {
		return len(b), nil
	}
	s.partial = append(s.partial, b...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(s.partial[:i], &entry) == nil && strings.Contains(entry.Msg, "listening") && entry.Addr != "" {
			s.addrs <- entry.Addr
			s.reported, s.partial = true, nil
			return len(b), nil
		}
		s.partial = s.partial[i+1:]
	}
}
