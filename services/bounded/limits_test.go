package bounded_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// natsjs's byte limits name every bucket of the table, the event and dead-letter streams, and
// what they add up to fits the JetStream store of the servers they run on.
func TestDefaultLimitsCoverTheShopAndFitTheBudget(t *testing.T) {
	var opened []string
	for _, c := range bounded.Table() {
		opened = append(opened, c.Buckets...)
	}
	limits := natsjs.DefaultLimits()
	named := slices.Sorted(maps.Keys(limits))
	want := slices.Sorted(slices.Values(append(opened, natsjs.StreamName, natsjs.DeadLetterStream)))
	if !slices.Equal(named, want) {
		t.Errorf("DefaultLimits names %v; the shop opens %v and the streams %s and %s", named, opened, natsjs.StreamName, natsjs.DeadLetterStream)
	}
	var sum int64
	for name, n := range limits {
		if n <= 0 {
			t.Errorf("%s: limit %d", name, n)
		}
		if got := (natsjs.StoreConfig{}).Limit(name); got != n {
			t.Errorf("Limit(%s) = %d, want the default %d", name, got, n)
		}
		sum += n
	}
	if sum > natsjs.StoreBudget {
		t.Errorf("the default limits add up to %d bytes, over the budget of %d", sum, natsjs.StoreBudget)
	}
	cfg := natsjs.StoreConfig{MaxBytes: map[string]int64{natsjs.StreamName: 1 << 20}}
	if cfg.Limit(natsjs.StreamName) != 1<<20 || cfg.Limit("unnamed") != natsjs.DefaultMaxBytes {
		t.Errorf("overrides: stream %d, unnamed bucket %d", cfg.Limit(natsjs.StreamName), cfg.Limit("unnamed"))
	}
}
