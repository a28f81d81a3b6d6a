//go:build mitosis_group && !mitosis_orders

package bounded

import "github.com/mitosis-dev/mitosis/shop/orders"

// ordersServer is nil in a group's binary that does not hold the orders context: its
// implementation is not linked, so a change to it does not change this binary.
func ordersServer() *server[orders.Service] { return nil }
