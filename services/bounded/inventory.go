//go:build !mitosis_group || mitosis_inventory

package bounded

import (
	"context"
	"fmt"
	"time"

	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/shop/inventory"
)

// inventoryServer is how this binary runs the inventory context: linked in a binary of every
// context (no tags) and in a group's that holds it (mitosis_group, mitosis_inventory); see
// inventory_elsewhere.go for the others.
func inventoryServer() *server[inventory.Service] {
	return &server[inventory.Service]{
		build: func(_ context.Context, d Deps) (inventory.Service, error) {
			ttl, err := duration(d.Getenv, "SHOP_RESERVATION_TTL", inventory.DefaultReservationTTL)
			if err != nil {
				return nil, err
			}
			return inventory.New(d.Buckets[inventory.StockBucket], d.Buckets[inventory.ReservationsBucket], d.Now, ttl), nil
		},
		register: inventoryrpc.Register,
		loops: []loop[inventory.Service]{{"sweep expired reservations", func(ctx context.Context, s inventory.Service, d Deps) {
			inventory.RunSweeper(ctx, s, inventory.SweepEvery, d.Logger)
		}}},
	}
}

// duration reads a positive duration setting, def when unset.
func duration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 5m", name, v)
	}
	return d, nil
}
