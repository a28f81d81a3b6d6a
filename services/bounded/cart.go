//go:build !mitosis_group || mitosis_cart

package bounded

import (
	"context"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/shop/cart"
)

// cartServer is how this binary runs the cart context: linked in a binary of every
// context (no tags) and in a group's that holds it (mitosis_group, mitosis_cart); see
// cart_elsewhere.go for the others.
func cartServer() *server[cart.Service] {
	return &server[cart.Service]{
		build: func(_ context.Context, d Deps) (cart.Service, error) {
			return cart.New(d.Buckets[cart.CartsBucket]), nil
		},
		register: cartrpc.Register,
	}
}
