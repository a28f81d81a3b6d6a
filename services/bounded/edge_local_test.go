//go:build !mitosis_group || mitosis_edge

package bounded_test

import (
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// SHOP_MAX_IN_FLIGHT is a positive number of requests; anything else stops the edge from
// starting with the variable named, rather than serving without the bound.
func TestMaxInFlightMustBePositive(t *testing.T) {
	for _, v := range []string{"0", "-3", "many", "1.5"} {
		d := bounded.Deps{Getenv: func(k string) string {
			if k == bounded.MaxInFlightEnv {
				return v
			}
			return ""
		}}
		if _, err := (bounded.Edge{}).Handler(d, "", nil); err == nil || !strings.Contains(err.Error(), bounded.MaxInFlightEnv) {
			t.Errorf("%s=%q: %v, want an error naming it", bounded.MaxInFlightEnv, v, err)
		}
	}
}
