//go:build mitosis_group && !mitosis_cart

package bounded

import "github.com/mitosis-dev/mitosis/shop/cart"

// cartServer is nil in a group's binary that does not hold the cart context: its
// implementation is not linked, so a change to it does not change this binary.
func cartServer() *server[cart.Service] { return nil }
