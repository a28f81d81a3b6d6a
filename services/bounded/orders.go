//go:build !mitosis_group || mitosis_orders

package bounded

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// ordersServer is how this binary runs the orders context: linked in a binary of every
// context (no tags) and in a group's that holds it (mitosis_group, mitosis_orders); see
// orders_elsewhere.go for the others.
func ordersServer() *server[orders.Service] {
	return &server[orders.Service]{
		build:    buildOrders,
		register: ordersrpc.Register,
		handlers: map[string]func(orders.Service) events.Handler{"orders": orders.HandleOrderShipped},
		loops: []loop[orders.Service]{
			{"recover interrupted checkouts at start", recoverAtStart},
			{"recover abandoned checkouts", func(ctx context.Context, o orders.Service, _ Deps) {
				o.(*orders.Orders).RunRecovery(ctx, orders.RecoverEvery, o.(*orders.Orders).StaleAfter())
			}},
		},
	}
}

func buildOrders(_ context.Context, d Deps) (orders.Service, error) {
	key := d.Getenv(RequestKeyEnv)
	if key == "" {
		return nil, fmt.Errorf("%s is required: the secret that keys the hash of checkout requests", RequestKeyEnv)
	}
	deps := orders.Deps{Events: d.Bus, Now: d.Now, Logger: d.Logger, RequestKey: []byte(key)}
	if v := d.Getenv(StaleAfterEnv); v != "" {
		stale, err := time.ParseDuration(v)
		if err != nil || stale < time.Second {
			return nil, fmt.Errorf("%s=%q: want a duration of a second or more, far beyond a checkout's longest step (default %s)", StaleAfterEnv, v, orders.StaleSaga)
		}
		deps.StaleAfter = stale
	}
	var err error
	if deps.Catalog, err = Call[catalog.Service](d, "catalog"); err != nil {
		return nil, err
	}
	if deps.Carts, err = Call[cart.Service](d, "cart"); err != nil {
		return nil, err
	}
	if deps.Inventory, err = Call[inventory.Service](d, "inventory"); err != nil {
		return nil, err
	}
	if deps.Payments, err = Call[payments.Service](d, "payments"); err != nil {
		return nil, err
	}
	stores := orders.Stores{Orders: d.Buckets[orders.OrdersBucket], Sagas: d.Buckets[orders.SagasBucket], UserOrders: d.Buckets[orders.UserOrdersBucket]}
	return orders.New(stores, deps), nil
}

// recoverAtStart finishes or compensates the checkouts a previous process left unfinished.
// Its peers may not answer yet, so it retries, in the background: serving meanwhile is safe.
// The sole replica of orders takes over at once every checkout last touched before it
// started, each of which belonged to a process that is gone; replicas leave that to the
// periodic recovery, once stale (orders.StaleSaga, or SHOP_ORDERS_STALE_AFTER), so as not to
// compensate each other's live checkouts. Either way each checkout is taken over before it
// is touched, so that two replicas never both handle one (shop/orders, Ownership).
func recoverAtStart(ctx context.Context, o orders.Service, d Deps) {
	for {
		olderThan := o.(*orders.Orders).StaleAfter()
		if d.SoleReplica {
			olderThan = time.Since(d.Started)
		}
		n, err := o.(*orders.Orders).Recover(ctx, olderThan)
		if n > 0 {
			d.Logger.Info("recovered interrupted checkouts", "count", n)
		}
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		d.Logger.Warn("recover checkouts at start; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
