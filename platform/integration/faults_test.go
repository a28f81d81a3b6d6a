package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/integration"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// checkoutResult is one checkout's answer.
type checkoutResult struct {
	user    string
	status  int // 0: transport error
	order   apitest.Order
	body    string
	start   time.Time
	err     error
	problem string // the problem code of a non-2xx answer
}

// checkoutOnce posts one checkout for user under a new key.
func checkoutOnce(c *apitest.Client, user string) checkoutResult {
	r := checkoutResult{user: user, start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := c.CheckoutResponse(ctx, apitest.NewID("key"), apitest.NewCheckout(user, apitest.CardApproved))
	if err != nil {
		r.err = err
		return r
	}
	r.status, r.body = resp.Status, string(resp.Body)
	if resp.Status == http.StatusCreated {
		r.err = json.Unmarshal(resp.Body, &r.order)
		return r
	}
	var p apitest.Problem
	if json.Unmarshal(resp.Body, &p) == nil && len(p.Type) > len(apitest.ProblemTypePrefix) {
		r.problem = p.Type[len(apitest.ProblemTypePrefix):]
	}
	return r
}

// customers makes n users, each with one unit of p in the cart.
func customers(t *testing.T, c *apitest.Client, prefix string, p apitest.Product, n int) []string {
	t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = apitest.NewID(prefix)
		c.AddToCart(t, users[i], p.ID, 1)
	}
	return users
}

// testPaymentsStopped stops the payments container while a stream of checkouts runs: the
// checkouts sent while it is down answer 503 unavailable, reserve nothing, make no order and
// charge nothing; once it is started again, checkouts succeed within 10 s.
func testPaymentsStopped(t *testing.T, s *integration.Stack, c *apitest.Client, natsURL string) {
	since := time.Now()
	p := c.NewProduct(t, 1250, 300)
	c.AddStock(t, p.ID, 500)
	const streamUsers, recoveryUsers = 120, 60
	users := customers(t, c, "pay", p, streamUsers+recoveryUsers)
	queue := make(chan string, streamUsers)
	for _, u := range users[:streamUsers] {
		queue <- u
	}
	close(queue)

	// The stream: two clients checking out one customer after another until told to stop
	// or out of customers.
	var (
		mu       sync.Mutex
		results  []checkoutResult
		accepted atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			for u := range queue {
				select {
				case <-stop:
					return
				default:
				}
				r := checkoutOnce(c, u)
				if r.status == http.StatusCreated {
					accepted.Add(1)
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // pacing of the stream, not a wait for an effect
			}
		})
	}
	stopStream := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopStream()

	waitFor(t, "3 checkouts accepted before the fault", 30*time.Second, func() bool { return accepted.Load() >= 3 })
	stopStart := time.Now()
	if err := s.Stop(t.Context(), s.Holder("payments"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted { // a failure on the way: leave the stack whole for the next subtest
			if err := s.StartAgain(context.Background(), s.Holder("payments")); err != nil {
				t.Errorf("start payments again after the failure: %v", err)
			}
		}
	}()
	stopped := time.Now()
	t.Logf("payments stopped in %s after %d accepted checkouts", stopped.Sub(stopStart).Round(time.Millisecond), accepted.Load())
	countDown := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.start.After(stopped) {
				n++
			}
		}
		return n
	}
	waitFor(t, "6 checkouts sent while payments is down", 60*time.Second, func() bool { return countDown() >= 6 })
	stopStream()

	restart := time.Now()
	restarted = true
	if err := s.StartAgain(t.Context(), s.Holder("payments")); err != nil {
		t.Fatal(err)
	}
	t.Logf("payments started again and ready in %s", time.Since(restart).Round(time.Millisecond))
	// Checkouts succeed again within 10 s of the start: one attempt at a time, each for a
	// customer of its own, so that the refused attempts are accounted like the stream's.
	var recovered []checkoutResult
	for _, u := range users[streamUsers:] {
		r := checkoutOnce(c, u)
		recovered = append(recovered, r)
		if r.status == http.StatusCreated {
			break
		}
		if time.Since(restart) > 10*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond) // a client's back-off between attempts
	}
	last := recovered[len(recovered)-1]
	if last.status != http.StatusCreated {
		t.Fatalf("no checkout succeeded within 10 s of starting payments again; last answer: %d %s %v", last.status, last.body, last.err)
	}
	t.Logf("a checkout succeeded %s after payments was started again (%d attempts)", time.Since(restart).Round(time.Millisecond), len(recovered))

	all := append(slices.Clone(results), recovered...)
	var acceptedOrders []apitest.Order
	var refused []string
	for _, r := range all {
		switch {
		case r.err != nil:
			t.Errorf("checkout of %s: %v", r.user, r.err)
		case r.status == http.StatusCreated:
			if r.start.After(stopped) && r.start.Before(restart) {
				t.Errorf("checkout of %s sent while payments was down answered 201", r.user)
			}
			acceptedOrders = append(acceptedOrders, r.order)
		case r.status == http.StatusServiceUnavailable && r.problem == "unavailable":
			refused = append(refused, r.user)
		default:
			t.Errorf("checkout of %s: got %d %s, want 201 or 503 unavailable", r.user, r.status, r.body)
		}
	}
	downRefused := 0
	for _, r := range results {
		if r.start.After(stopped) && r.status == http.StatusServiceUnavailable {
			downRefused++
		}
	}
	t.Logf("%d checkouts: %d accepted, %d refused with 503 (%d of them sent while payments was down)", len(all), len(acceptedOrders), len(refused), downRefused)
	if downRefused < 6 {
		t.Errorf("only %d checkouts sent while payments was down answered 503, want at least 6", downRefused)
	}

	// A refused checkout leaves no order and no reservation.
	for _, u := range refused {
		if list := c.Orders(t, u); len(list) != 0 {
			t.Errorf("customer %s was refused with 503 but has orders %+v", u, list)
		}
	}
	c.Eventually(t, "nothing reserved", func() (bool, string) {
		st := c.Inventory(t, p.ID)
		return st.Reserved == 0, fmt.Sprintf("%+v", st)
	})
	if st := c.Inventory(t, p.ID); st.Sold != int64(len(acceptedOrders)) {
		t.Errorf("sold %d units, but %d checkouts (one unit each) were accepted", st.Sold, len(acceptedOrders))
	}
	c.CheckConservation(t)
	checkCharges(t, s, natsURL, since, acceptedOrders)
}

// testOrdersKilled kills the container that runs orders (SIGKILL: a crash) in the middle of a
// burst of checkouts and starts it again (it runs with SHOP_SOLE_REPLICA=true, so at start it
// takes over every checkout the crash interrupted). Each customer retries on 503 with the
// same Idempotency-Key, as API.md tells clients to. After the recovery: every customer has
// exactly one order, nothing stays reserved, stock is conserved and every accepted checkout
// has exactly one charge.
func testOrdersKilled(t *testing.T, s *integration.Stack, c *apitest.Client, natsURL string) {
	since := time.Now()
	const n = 30
	a := c.NewProduct(t, 1500, 200)
	b := c.NewProduct(t, 700, 50)
	c.AddStock(t, a.ID, 100)
	c.AddStock(t, b.ID, 100)
	users := c.CrashCarts(t, n, a, b)

	outcomes := make([]apitest.Retried, n)
	var accepted atomic.Int64
	killed := make(chan struct{})
	release := sync.OnceFunc(func() { close(killed) })
	var wg sync.WaitGroup
	for i, user := range users {
		wg.Go(func() {
			if i >= n/2 {
				<-killed // the second half meets a dead or a restarting orders
			}
			deadline := time.Now().Add(90 * time.Second)
			outcomes[i] = c.CheckoutRetrying(user, func() error {
				if time.Now().After(deadline) {
					return errors.New("for 90 s")
				}
				return nil
			})
			if outcomes[i].Err == nil {
				accepted.Add(1)
			}
		})
	}
	defer func() { release(); wg.Wait() }() // on a failure too: no customer left waiting

	waitFor(t, "3 checkouts accepted before the crash", 60*time.Second, func() bool { return accepted.Load() >= 3 })
	victim := s.Holder("orders")
	if err := s.Kill(t.Context(), victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s, which runs orders, after %d accepted checkouts", victim, accepted.Load())
	release()
	restart := time.Now()
	if err := s.StartAgain(t.Context(), victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s started again and ready in %s", victim, time.Since(restart).Round(time.Millisecond))
	wg.Wait()
	t.Logf("every customer has a final answer %s after the restart", time.Since(restart).Round(time.Millisecond))

	orders := c.CheckAfterCrash(t, users, outcomes, a, b)
	checkCharges(t, s, natsURL, since, orders)
}

// checkCharges fails t unless the charges captured since `since` are exactly one per order
// of accepted, each for the order's total. It polls for a while: an interrupted checkout's
// charge is refunded by the saga's recovery, which takes over checkouts untouched for a
// minute (services/README.md), so a captured charge without an order may last that long.
func checkCharges(t *testing.T, s *integration.Stack, natsURL string, since time.Time, accepted []apitest.Order) {
	t.Helper()
	want := map[string]apitest.Order{}
	for _, o := range accepted {
		want[o.ID] = o
	}
	var last string
	deadline := time.Now().Add(75 * time.Second)
	for {
		tlsOpt, err := s.NATSTLS()
		if err != nil {
			t.Fatal(err)
		}
		charges, err := integration.Charges(t.Context(), natsURL, tlsOpt)
		if err != nil {
			t.Fatal(err)
		}
		problems, statuses := compareCharges(charges, since, want)
		if len(problems) == 0 {
			t.Logf("charges since the subtest began, by status: %v", statuses)
			return
		}
		last = fmt.Sprintf("%v (charges by status: %v)", problems, statuses)
		if time.Now().After(deadline) {
			t.Fatalf("charges do not match the accepted checkouts after 75s: %s", last)
		}
		time.Sleep(500 * time.Millisecond) // the poll interval
	}
}

func compareCharges(charges []payments.Charge, since time.Time, want map[string]apitest.Order) (problems []string, statuses map[string]int) {
	statuses = map[string]int{}
	captured := map[string]payments.Charge{}
	for _, ch := range charges {
		if ch.CreatedAt.Before(since) {
			continue
		}
		statuses[ch.Status]++
		if ch.Status == payments.StatusCaptured {
			captured[ch.IdempotencyKey] = ch
		}
	}
	for id, o := range want {
		ch, ok := captured[id]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("order %s has no captured charge", id))
		case ch.Amount.Currency != o.Total.Currency || ch.Amount.Units != o.Total.Units:
			problems = append(problems, fmt.Sprintf("order %s: charged %+v, total %+v", id, ch.Amount, o.Total))
		}
	}
	for key := range captured {
		if _, ok := want[key]; !ok {
			problems = append(problems, fmt.Sprintf("charge %s captured without an accepted checkout", key))
		}
	}
	slices.Sort(problems)
	return problems, statuses
}

// waitFor polls cond every 5 ms until it holds, failing t after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond) // the poll interval
	}
}
