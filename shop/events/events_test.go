package events_test

import (
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
)

// TestRetriesOutlastAnOutage: a message whose handler fails all through an outage of 90 s
// (issue 13's figure), its store or broker away, is not given up: the delays between its
// deliveries add up to far more, and the outage uses up a third of its deliveries at most.
// Once the outage is over it is tried again within MaxRetryDelay.
func TestRetriesOutlastAnOutage(t *testing.T) {
	const outage = 90 * time.Second
	if b := events.RetryBudget(); b < 10*time.Minute {
		t.Errorf("retry budget %s, want at least 10 min", b)
	}
	// Deliveries made while the outage lasts, failing at once (the worst case: JetStream
	// answering "no responders" takes no time).
	used, elapsed := 1, time.Duration(0)
	for elapsed+events.RetryDelay(used) <= outage {
		elapsed += events.RetryDelay(used)
		used++
	}
	if used > events.MaxDeliveries/3 {
		t.Errorf("a %s outage uses %d of %d deliveries, want a third at most", outage, used, events.MaxDeliveries)
	}
	for n := 1; n <= events.MaxDeliveries; n++ {
		d := events.RetryDelay(n)
		if d <= 0 || d > events.MaxRetryDelay || (n > 1 && d < events.RetryDelay(n-1)) {
			t.Fatalf("RetryDelay(%d) = %s: want positive, growing, at most %s", n, d, events.MaxRetryDelay)
		}
	}
}
