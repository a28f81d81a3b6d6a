//go:build !mitosis_group || mitosis_shipping

package bounded

import (
	"context"

	"github.com/mitosis-dev/mitosis/services/shippingrpc"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/shipping"
)

// shippingServer is how this binary runs the shipping context: linked in a binary of every
// context (no tags) and in a group's that holds it (mitosis_group, mitosis_shipping); see
// shipping_elsewhere.go for the others.
func shippingServer() *server[shipping.Service] {
	return &server[shipping.Service]{
		build: func(_ context.Context, d Deps) (shipping.Service, error) {
			return shipping.New(d.Buckets[shipping.ShipmentsBucket], d.Bus, d.Now), nil
		},
		register: shippingrpc.Register,
		handlers: map[string]func(shipping.Service) events.Handler{"shipping": shipping.HandleOrderPaid},
	}
}
