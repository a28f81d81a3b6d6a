//go:build mitosis_group && !mitosis_shipping

package bounded

import "github.com/mitosis-dev/mitosis/shop/shipping"

// shippingServer is nil in a group's binary that does not hold the shipping context: its
// implementation is not linked, so a change to it does not change this binary.
func shippingServer() *server[shipping.Service] { return nil }
