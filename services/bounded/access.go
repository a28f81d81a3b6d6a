package bounded

import (
	"fmt"
	"slices"
	"strings"
)

// access is who may call what: for each call between contexts (the pairs of a row's Calls,
// and of the edge's), the methods of the callee the caller uses. A process may call a
// method when one of the contexts it runs (or its edge) is listed for it here; any other
// call is refused (services/host). Nothing else lists them: the pairs must be exactly the
// table's calls (a test checks it), so a new call is a line in Calls and a line here.
//
// Some methods are called by no other context at all and so by nobody over the network: a
// context calls them on itself (inventory's ReleaseExpired by its sweeper, orders'
// MarkShipped from shipping's event, notify's Notify from its consumer).
var access = map[[2]string][]string{
	{EdgeName, "catalog"}:   {"Get", "List", "Upsert"},
	{EdgeName, "cart"}:      {"Get", "Add", "Clear"},
	{EdgeName, "inventory"}: {"Get", "Add"},
	{EdgeName, "orders"}:    {"Checkout", "Get", "ListByUser"},
	{EdgeName, "notify"}:    {"List"},
	{"orders", "catalog"}:   {"Get"},
	{"orders", "cart"}:      {"Get", "RemoveBought"},
	{"orders", "inventory"}: {"Reserve", "Commit", "Release"},
	{"orders", "payments"}:  {"Charge", "Refund"},
}

// Access returns the access table: for each pair caller → callee of the table's calls, the
// callee's methods the caller uses (method names as the callee's gRPC service has them).
func Access() map[[2]string][]string {
	out := make(map[[2]string][]string, len(access))
	for k, v := range access {
		out[k] = slices.Clone(v)
	}
	return out
}

// Allowed reports whether a process running caller may call fullMethod
// ("/<service>/<method>", as gRPC names it).
func Allowed(caller Group, fullMethod string) bool {
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return false
	}
	i := slices.IndexFunc(table(), func(c Context) bool { return c.Service == service })
	if i < 0 {
		return false
	}
	callee := table()[i].Name
	callers := slices.Clone(caller.Contexts)
	if caller.Edge {
		callers = append(callers, EdgeName)
	}
	for _, c := range callers {
		if slices.Contains(access[[2]string{c, callee}], method) {
			return true
		}
	}
	return false
}

// ParseName reads a group from its process name (Group.Name): "monolith", "gateway", or its
// contexts (and edge) joined by "-".
func ParseName(name string) (Group, error) {
	switch name {
	case "monolith":
		return Everything(), nil
	case "gateway":
		return Group{Edge: true}, nil
	}
	g, err := ParseGroup(strings.ReplaceAll(name, "-", "+"))
	if err != nil {
		return Group{}, fmt.Errorf("process name %q: %w", name, err)
	}
	return g, nil
}
