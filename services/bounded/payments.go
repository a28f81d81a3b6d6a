//go:build !mitosis_group || mitosis_payments

package bounded

import (
	"context"

	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// paymentsServer is how this binary runs the payments context: linked in a binary of every
// context (no tags) and in a group's that holds it (mitosis_group, mitosis_payments); see
// payments_elsewhere.go for the others.
func paymentsServer() *server[payments.Service] {
	return &server[payments.Service]{
		build: func(_ context.Context, d Deps) (payments.Service, error) {
			return payments.New(d.Buckets[payments.ChargesBucket], d.Now), nil
		},
		register: paymentsrpc.Register,
	}
}
