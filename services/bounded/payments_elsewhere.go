//go:build mitosis_group && !mitosis_payments

package bounded

import "github.com/mitosis-dev/mitosis/shop/payments"

// paymentsServer is nil in a group's binary that does not hold the payments context: its
// implementation is not linked, so a change to it does not change this binary.
func paymentsServer() *server[payments.Service] { return nil }
