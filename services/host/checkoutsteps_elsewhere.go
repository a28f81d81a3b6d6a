//go:build mitosis_group && !mitosis_orders

package host

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// errNoCheckoutSteps: a checkout step function runs orders' own step code, which this
// group's binary does not link (it holds no orders: bounded.Group.BuildTags). The rendered
// functions run the monolith's image (deploy/lambda/checkout-<context>.json).
var errNoCheckoutSteps = errors.New("this binary does not link orders' saga, which a checkout step function runs: use the monolith's image")

func checkoutStepsGroup(bounded.Group) error { return errNoCheckoutSteps }

func serveCheckoutSteps(context.Context, Config, *slog.Logger, Hooks) error {
	return errNoCheckoutSteps
}
