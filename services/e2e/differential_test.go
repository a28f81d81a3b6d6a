package e2e

import (
	"testing"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestDifferential drives one scripted session (browse, search, admin, cart, declines,
// checkout, idempotent retry, conflict, out of stock, order history, notifications) against
// the monolith, the microservices and the hybrid, each on fresh stores, and requires the
// responses to be identical, status, content type and body, except IDs and timestamps.
func TestDifferential(t *testing.T) {
	s := up(t, "monolith,services,hybrid", "", nil)
	got := map[string][]apitest.Exchange{}
	for name, base := range s.edges {
		c := apitest.NewClient(apitest.Target{BaseURL: base, AdminToken: testToken})
		got[name] = apitest.Session(t, c)
	}
	m := got["monolith"]
	for _, other := range []string{"services", "hybrid"} {
		apitest.CompareSessions(t, "monolith", m, other, got[other])
	}
	t.Logf("%d responses compared, three times", len(m))
}
