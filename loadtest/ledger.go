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
	"strings"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// attempt is one checkout the generator sent and what came of it, as the client saw it: what
// the invariants hold the shop to.
type attempt struct {
	Key     string // the Idempotency-Key
	User    string
	Body    []byte // the request body, to retry it as it was
	Status  int    // 0: no response (timeout, connection refused...)
	Err     string // the transport error, when Status is 0
	Order   *apitest.Order
	Problem string // the problem code of an error answer (out-of-stock, unavailable...)
	Sent    time.Time
}

// ledger records every checkout of the faults phase: it sits under the scenario's transport
// (which has removed its bookkeeping headers), reads each checkout's key and body, and each
// answer's order. A response body it reads is given on unchanged.
type ledger struct {
	mu       sync.Mutex
	attempts []attempt
}

// maxOrderBody bounds what the ledger reads of a checkout's answer: an order is a few hundred
// bytes.
const maxOrderBody = 1 << 20

func (l *ledger) transport(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/checkout" {
			return next.RoundTrip(req)
		}
		a := attempt{Key: req.Header.Get("Idempotency-Key"), Sent: time.Now()}
		if req.Body != nil {
			b, err := io.ReadAll(req.Body)
			_ = req.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("read the checkout body: %w", err)
			}
			a.Body = b
			req.Body = io.NopCloser(bytes.NewReader(b))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		}
		var body struct {
			UserID string `json:"user_id"`
		}
		_ = json.Unmarshal(a.Body, &body) // the scenario wrote it: it is JSON
		a.User = body.UserID
		res, err := next.RoundTrip(req)
		if err != nil {
			a.Err = err.Error()
			l.add(a)
			return res, err
		}
		a.Status = res.StatusCode
		b, rerr := io.ReadAll(io.LimitReader(res.Body, maxOrderBody))
		_ = res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(b))
		a.Order, a.Problem, err = readAnswer(res.StatusCode, b)
		if rerr != nil || err != nil {
			a.Err = errors.Join(rerr, err).Error()
		}
		l.add(a)
		return res, nil
	})
}

func (l *ledger) add(a attempt) {
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	l.mu.Unlock()
}

func (l *ledger) snapshot() []attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]attempt(nil), l.attempts...)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// What the invariant checks read and send, over the public API only (API.md).

// get GETs path into out (nil: discarded) and returns the status; an error only when no
// answer came or a 2xx did not decode.
func (s Shop) get(ctx context.Context, path string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+path, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	res, err := s.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return res.StatusCode, fmt.Errorf("GET %s: read: %w", path, err)
	}
	if res.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, fmt.Errorf("GET %s: decode: %w", path, err)
		}
	}
	return res.StatusCode, nil
}

// Order reads an order: its status is 404 when the shop has none of that ID.
func (s Shop) Order(ctx context.Context, id string) (apitest.Order, int, error) {
	var o apitest.Order
	status, err := s.get(ctx, "/v1/orders/"+url.PathEscape(id), &o)
	return o, status, err
}

// maxListPages bounds a walk of one user's orders or notifications (100 per page).
const maxListPages = 1000

// Orders lists every order of a user, newest first, all pages.
func (s Shop) Orders(ctx context.Context, user string) ([]apitest.Order, error) {
	var all []apitest.Order
	token := ""
	for range maxListPages {
		q := url.Values{"page_size": {"100"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var page apitest.OrderPage
		path := "/v1/users/" + url.PathEscape(user) + "/orders?" + q.Encode()
		if status, err := s.get(ctx, path, &page); err != nil || status != http.StatusOK {
			return nil, errors.Join(err, fmt.Errorf("GET %s: %d", path, status))
		}
		all = append(all, page.Orders...)
		if token = page.NextPageToken; token == "" {
			return all, nil
		}
	}
	return nil, fmt.Errorf("orders of %s: more than %d pages", user, maxListPages)
}

// Notifications lists every notification of a user, oldest first, all pages.
func (s Shop) Notifications(ctx context.Context, user string) ([]apitest.Notification, error) {
	var all []apitest.Notification
	token := ""
	for range maxListPages {
		q := url.Values{"page_size": {"100"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var page apitest.NotificationPage
		path := "/v1/users/" + url.PathEscape(user) + "/notifications?" + q.Encode()
		if status, err := s.get(ctx, path, &page); err != nil || status != http.StatusOK {
			return nil, errors.Join(err, fmt.Errorf("GET %s: %d", path, status))
		}
		all = append(all, page.Notifications...)
		if token = page.NextPageToken; token == "" {
			return all, nil
		}
	}
	return nil, fmt.Errorf("notifications of %s: more than %d pages", user, maxListPages)
}

// Stocks reads the inventory of every product.
func (s Shop) Stocks(ctx context.Context, ids []string) (map[string]apitest.Stock, error) {
	out := make(map[string]apitest.Stock, len(ids))
	for _, id := range ids {
		st, err := s.Stock(ctx, id)
		if err != nil {
			return out, err
		}
		out[id] = st
	}
	return out, nil
}

// TopUp tops every product's available stock up to level through the admin API and returns
// the units it added to each.
func (s Shop) TopUp(ctx context.Context, productIDs []string, level int64) (map[string]int64, error) {
	added := map[string]int64{}
	if s.AdminToken == "" {
		return added, errors.New("replenish: no admin token (set SHOP_ADMIN_TOKEN or write .mitosis/admin-token)")
	}
	for _, id := range productIDs {
		st, err := s.Stock(ctx, id)
		if err != nil {
			return added, fmt.Errorf("replenish: %w", err)
		}
		for need := level - st.Available; need > 0; {
			n := min(need, maxAdd)
			if err := s.do(ctx, http.MethodPost, "/v1/admin/inventory/"+url.PathEscape(id), true, map[string]int64{"add": n}, nil); err != nil {
				return added, fmt.Errorf("replenish: %w", err)
			}
			need -= n
			added[id] += n
		}
	}
	return added, nil
}

// retryCheckout sends a checkout again with the same key and body: the status, and the order
// of a 201 or the problem code of an error.
func (s Shop) retryCheckout(ctx context.Context, key string, body []byte) (int, *apitest.Order, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.BaseURL+"/v1/checkout", bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := s.client().Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxOrderBody))
	if err != nil {
		return res.StatusCode, nil, "", err
	}
	o, problem, err := readAnswer(res.StatusCode, data)
	return res.StatusCode, o, problem, err
}

// readAnswer reads a checkout's answer: the order of a 201, else the problem's code.
func readAnswer(status int, body []byte) (*apitest.Order, string, error) {
	if status == http.StatusCreated {
		var o apitest.Order
		if err := json.Unmarshal(body, &o); err != nil || o.ID == "" {
			return nil, "", fmt.Errorf("201 without a readable order: %v %q", err, body)
		}
		return &o, "", nil
	}
	var p apitest.Problem
	if json.Unmarshal(body, &p) == nil {
		return nil, strings.TrimPrefix(p.Type, apitest.ProblemTypePrefix), nil
	}
	return nil, "", nil
}
