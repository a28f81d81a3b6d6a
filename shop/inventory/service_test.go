package inventory_test

import (
	"context"
	"fmt"
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
