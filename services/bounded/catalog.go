//go:build !mitosis_group || mitosis_catalog

package bounded

import (
	"context"

	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/shop/catalog"
)

// catalogServer is how this binary runs the catalog context: linked in a binary of every
// context (no tags) and in a group's that holds it (mitosis_group, mitosis_catalog); see
// catalog_elsewhere.go for the others.
func catalogServer() *server[catalog.Service] {
	return &server[catalog.Service]{
		// The catalog's view follows its bucket for as long as ctx lives: the host
		// passes a context that lives as long as the process.
		build: func(ctx context.Context, d Deps) (catalog.Service, error) {
			return catalog.New(ctx, d.Buckets[catalog.ProductsBucket], d.Logger)
		},
		register: catalogrpc.Register,
	}
}
