package e2e

import (
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestBehaviour runs the behaviour suite of API.md against the microservices, the shipped
// hybrid, and one placement drawn at random, each as processes.
func TestBehaviour(t *testing.T) {
	for _, tc := range []struct{ name, names, split string }{
		{"services", "services", ""},
		{"hybrid", "hybrid", ""},
		{"random", "", stacktest.RandomSplit(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := up(t, tc.names, tc.split, nil)
			for _, base := range s.edges {
				apitest.Run(t, apitest.Target{BaseURL: base, AdminToken: testToken})
			}
		})
	}
}
