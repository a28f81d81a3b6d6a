package e2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestKilledMidCheckout kills one process of the checkout's path (SIGKILL, as a crash) in
// the middle of a burst of checkouts and starts it again: in the microservices orders, which
// runs the saga, and inventory and payments, which it calls; in the hybrid the process that
// runs orders with cart and payments; and the monolith, which runs orders and every step
// of the checkout, its NATS left running. Each customer retries with the same Idempotency-Key until
// the answer is final, as API.md tells clients to do on 503 (and on a refused connection,
// while the monolith is down). Then:
// every customer has exactly one order, every accepted checkout's order exists, the
// checkouts the crash interrupted were finished or compensated (nothing stays reserved),
// units sold equal units in orders, and stock is conserved.
func TestKilledMidCheckout(t *testing.T) {
	for _, tc := range []struct{ arch, victim string }{
		{"services", "orders"}, {"services", "inventory"}, {"services", "payments"}, {"hybrid", "orders"}, {"monolith", "orders"},
	} {
		t.Run(tc.arch+"/"+tc.victim, func(t *testing.T) { killMidCheckout(t, tc.arch, tc.victim) })
	}
}

func killMidCheckout(t *testing.T, arch, victim string) {
	// The edge logs every 503 while a process is down: expected here.
	s := up(t, arch, "", nil, `"msg":"request failed"`, "not serving", "could not build the group")
	c := apitest.NewClient(apitest.Target{BaseURL: s.edges[arch], AdminToken: testToken})
	const customers = 40
	const stock = 100
	a := c.NewProduct(t, 1500, 200)
	b := c.NewProduct(t, 700, 50)
	c.AddStock(t, a.ID, stock)
	c.AddStock(t, b.ID, stock)
	users := c.CrashCarts(t, customers, a, b)

	kill := s.killer(arch, victim)
	var accepted atomic.Int64
	killed := make(chan struct{})
	// back is when the victim was ready again (Unix nanoseconds; 0 while it is not).
	var back atomic.Int64
	sinceBack := func() time.Duration {
		if at := back.Load(); at != 0 {
			return time.Since(time.Unix(0, at))
		}
		return 0
	}
	outcomes := make([]apitest.Retried, customers)
	var wg sync.WaitGroup
	for i, user := range users {
		wg.Go(func() {
			if i >= customers/2 {
				// The second half starts once the victim is down, so that some requests
				// meet a dead peer and some a restarted one.
				<-killed
			}
			// 30 s once the victim is back (however long its restart takes on a busy
			// machine), well under the minute after which orders' recovery takes over a
			// stalled checkout: a checkout interrupted by the crash is finished or undone as
			// soon as its peers are back, by the retry itself or the next recovery run.
			// Bounded in any case: a victim that never comes back fails the test in 3 minutes.
			start := time.Now()
			outcomes[i] = c.CheckoutRetrying(user, func() error {
				if sinceBack() > 30*time.Second || time.Since(start) > 3*time.Minute {
					return fmt.Errorf("%s after the victim was back, %s after the first attempt",
						sinceBack().Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				}
				return nil
			})
			if outcomes[i].Err == nil {
				accepted.Add(1)
			}
		})
	}

	// Kill the victim once a few checkouts went through: others are in flight then.
	deadline := time.Now().Add(60 * time.Second)
	for accepted.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	kill()
	t.Logf("killed the process of %s after %d accepted checkouts", victim, accepted.Load())
	close(killed)
	restart := time.Now()
	s.up()
	back.Store(time.Now().UnixNano())
	t.Logf("%s ready again after %s", victim, time.Since(restart).Round(time.Millisecond))
	wg.Wait()
	t.Logf("every customer has a final answer %s after the restart", time.Since(restart).Round(time.Millisecond))

	c.CheckAfterCrash(t, users, outcomes, a, b)
}
