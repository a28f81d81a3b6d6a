package bounded

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
