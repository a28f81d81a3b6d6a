//go:build mitosis_group && !mitosis_inventory

package bounded

import "github.com/mitosis-dev/mitosis/shop/inventory"

// inventoryServer is nil in a group's binary that does not hold the inventory context: its
// implementation is not linked, so a change to it does not change this binary.
func inventoryServer() *server[inventory.Service] { return nil }
