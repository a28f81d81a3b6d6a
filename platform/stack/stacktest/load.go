package stacktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"time"
)

// Load is a small, bounded load on a stack's edge while a test changes the stack under it (a
// rolling re-up, a killed replica): a few workers, each sending product pages and cart adds
// in turn, one request after the other, at most a given count each and until Stop.
type Load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	sent   int
	failed map[string]int // "<kind>: <status or error>" -> count
}

// StartLoad starts workers against base, each sending at most perWorker requests.
func StartLoad(base string, workers, perWorker int) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, failed: map[string]int{}}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		l.wg.Go(func() {
			user := fmt.Sprintf("load-%d-%d", w, time.Now().UnixNano())
			for i := 0; i < perWorker && ctx.Err() == nil; i++ {
				kind, method, url, body := "product", http.MethodGet, fmt.Sprintf("%s/v1/products/sku-%04d", base, 1+i%20), ""
				if i%2 == 1 {
					kind, method, url = "cart-add", http.MethodPost, base+"/v1/carts/"+user+"/items"
					body = fmt.Sprintf(`{"product_id":"sku-%04d","quantity":1}`, 1+i%20)
					if i%40 == 39 { // keep the cart's lines far from API.md's 99
						user = fmt.Sprintf("load-%d-%d", w, time.Now().UnixNano())
					}
				}
				var resp *http.Response
				req, err := http.NewRequest(method, url, strings.NewReader(body))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
					resp, err = client.Do(req)
				}
				what := ""
				var uerr *neturl.Error
				switch {
				case errors.As(err, &uerr):
					what = uerr.Err.Error() // without the URL, which names a user of its own
				case err != nil:
					what = err.Error()
				case resp.StatusCode != http.StatusOK:
					what = resp.Status
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				l.mu.Lock()
				l.sent++
				if what != "" {
					l.failed[kind+": "+what]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// Sent is how many requests have answered (or failed) so far.
func (l *Load) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

// Stop stops the workers and returns how many requests were sent and the failures by kind
// and reason.
func (l *Load) Stop() (sent int, failed map[string]int) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent, l.failed
}

// Failures sums failed.
func Failures(failed map[string]int) int {
	n := 0
	for _, c := range failed {
		n += c
	}
	return n
}
