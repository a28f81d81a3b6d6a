package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/inventory/inventorytest"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

const ttl = 15 * time.Minute

func TestMemory(t *testing.T) {
	inventorytest.Run(t, func(t *testing.T, now func() time.Time) inventory.Service {
		return inventory.New(kv.NewMemory(), kv.NewMemory(), now, ttl)
	})
}

func TestJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	inventorytest.Run(t, func(t *testing.T, now func() time.Time) inventory.Service {
		return inventory.New(srv.Bucket(t, "stock"), srv.Bucket(t, "reservations"), now, ttl)
	})
}

// BenchmarkReserveCommitJetStream measures one checkout's worth of inventory work (a
// reservation of two products, then its commit) against a real embedded JetStream.
func BenchmarkReserveCommitJetStream(b *testing.B) {
	srv := natsjstest.New(b)
	svc := inventory.New(srv.Bucket(b, "stock"), srv.Bucket(b, "reservations"), time.Now, ttl)
	ctx := context.Background()
	for _, p := range []string{"sku-0001", "sku-0002"} {
		for range 5 {
			if _, err := svc.Add(ctx, p, inventory.MaxAdd); err != nil {
				b.Fatal(err)
			}
		}
	}
	lines := []inventory.Line{{ProductID: "sku-0001", Quantity: 1}, {ProductID: "sku-0002", Quantity: 2}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench-%d", i)
		i++
		if _, err := svc.Reserve(ctx, id, lines); err != nil {
			b.Fatal(err)
		}
		if err := svc.Commit(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProcessesShareTheStore: replicas of the inventory, each remembering its own revisions
// (kv.Cached), over one JetStream store. Reservations made in one are committed or released
// in the other, whose memory of the records and stock documents is stale or empty; none
// oversells, and stock is conserved.
func TestProcessesShareTheStore(t *testing.T) {
	srv := natsjstest.New(t)
	stock, resvs := srv.Bucket(t, "stock"), srv.Bucket(t, "reservations")
	procs := []inventory.Service{inventory.New(stock, resvs, time.Now, ttl), inventory.New(stock, resvs, time.Now, ttl)}
	ctx := t.Context()
	const units, callers = 10, 30
	if _, err := procs[0].Add(ctx, "sku-hot", units); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			id := fmt.Sprintf("r%02d", i)
			if _, errs[i] = procs[i%2].Reserve(ctx, id, []inventory.Line{{ProductID: "sku-hot", Quantity: 1}}); errs[i] != nil {
				return
			}
			other := procs[(i+1)%2]
			if i%3 == 0 {
				errs[i] = other.Release(ctx, id)
				return
			}
			errs[i] = other.Commit(ctx, id)
		})
	}
	wg.Wait()
	var reserved, sold int64
	for i, err := range errs {
		switch {
		case err == nil:
			reserved++
			if i%3 != 0 {
				sold++
			}
		case !errors.Is(err, inventory.ErrOutOfStock):
			t.Errorf("r%02d: %v", i, err)
		}
	}
	// A released unit may be reserved again, so only what is sold is bounded by the stock.
	if sold > units || reserved < units {
		t.Fatalf("%d reservations, %d sold, of %d units", reserved, sold, units)
	}
	for _, p := range procs {
		got, err := p.Get(ctx, "sku-hot")
		if err != nil {
			t.Fatal(err)
		}
		if got.Reserved != 0 || got.Sold != sold || got.Available < 0 || got.Available+got.Sold != units {
			t.Fatalf("stock %+v: want nothing reserved, %d sold of %d", got, sold, units)
		}
	}
}
