package e2e

import (
	"testing"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestBehaviour runs the shop's whole behaviour suite, the same code the monolith runs,
// against the gateway of the microservices: eight real processes on loopback and NATS.
func TestBehaviour(t *testing.T) {
	stack := startStack(t)
	apitest.Run(t, apitest.Target{BaseURL: stack.GatewayURL, AdminToken: testToken})
}
