//go:build !mitosis_group || mitosis_edge

package bounded

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// Handler returns the API over the contexts d reaches. ready is its /readyz check.
func (Edge) Handler(d Deps, adminToken string, ready func(context.Context) error) (http.Handler, error) {
	cfg := httpapi.Config{AdminToken: adminToken, Ready: ready, Logger: d.Logger}
	if v := d.Getenv(MaxInFlightEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive number of requests", MaxInFlightEnv, v)
		}
		cfg.MaxInFlight = n
	}
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
