package bounded

import (
	"context"
	"net/http"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// EdgeName names the edge in topologies and --split: a group that holds it serves the
// public HTTP API.
const EdgeName = "edge"

// Edge is the shop's public HTTP API (shop/httpapi, API.md). It holds no state; its zero
// value is ready to use.
type Edge struct{}

// Calls are the contexts the edge calls.
func (Edge) Calls() []string { return []string{"catalog", "cart", "inventory", "orders", "notify"} }

// Weight is the edge's share of a budget: the gateway spent about 30% of the services' CPU
// (see Table), serialising every response.
func (Edge) Weight() Weight { return Weight{24, 2} }

// Handler returns the API over the contexts d reaches. ready is its /readyz check.
func (Edge) Handler(d Deps, adminToken string, ready func(context.Context) error) (http.Handler, error) {
	cfg := httpapi.Config{AdminToken: adminToken, Ready: ready, Logger: d.Logger}
	var err error
	if cfg.Catalog, err = Call[catalog.Service](d, "catalog"); err != nil {
		return nil, err
	}
	if cfg.Carts, err = Call[cart.Service](d, "cart"); err != nil {
		return nil, err
	}
	if cfg.Inventory, err = Call[inventory.Service](d, "inventory"); err != nil {
		return nil, err
	}
	if cfg.Orders, err = Call[orders.Service](d, "orders"); err != nil {
		return nil, err
	}
	if cfg.Notifications, err = Call[notify.Service](d, "notify"); err != nil {
		return nil, err
	}
	return httpapi.New(cfg), nil
}
