//go:build mitosis_group && !mitosis_catalog

package bounded

import "github.com/mitosis-dev/mitosis/shop/catalog"

// catalogServer is nil in a group's binary that does not hold the catalog context: its
// implementation is not linked, so a change to it does not change this binary.
func catalogServer() *server[catalog.Service] { return nil }
