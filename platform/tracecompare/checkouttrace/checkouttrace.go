// Package checkouttrace checks that a trace is the whole trace of a successful checkout.
// What a checkout does is not listed here: the calls between contexts are the saga's steps
// (shop/orders.Steps) and the spans are named by the table of contexts (services/bounded),
// as are who publishes each event and who consumes it. It is a package of its own, apart
// from tracecompare, because the trace collector links tracecompare: through this one it
// would link every context's implementation, and its image would be remade whenever one of
// them changed.
package checkouttrace

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// sagaContext is the context that runs checkout: the edge calls its Checkout, and the
// saga's steps that name it are its own work, no call to another context.
const sagaContext = "orders"

// call is a call a checkout makes from one context (or the edge) to another: its span's name,
// the gRPC method that carries it between processes, the caller, and the context that serves it.
type call struct{ method, caller, context string }

// calls are a checkout's calls, in order: the edge's Checkout, then each step of the saga
// that calls another context.
func calls() ([]call, error) {
	var out []call
	for i, c := range append([]orders.Call{{Context: sagaContext, Method: "Checkout"}}, callsOut()...) {
		ctx, ok := bounded.Lookup(c.Context)
		if !ok {
			return nil, fmt.Errorf("the saga calls %s, which is no context of the table", c)
		}
		caller := sagaContext
		if i == 0 {
			caller = bounded.EdgeName
		}
		out = append(out, call{method: ctx.Service + "/" + c.Method, caller: caller, context: c.Context})
	}
	return out, nil
}

// callsOut are the calls of the saga's steps to other contexts.
func callsOut() []orders.Call {
	var out []orders.Call
	for _, s := range orders.Steps() {
		if s.Call.Context != sagaContext {
			out = append(out, s.Call)
		}
	}
	return out
}

// Check reports what t lacks to be the one connected trace of a successful checkout: the
// HTTP edge, every call between contexts, the publish of each event the table says a context
// publishes and the processing by each of its consumers, every one a descendant of the root,
// no orphan, each in the process placement says. placement is "monolith", "services", or a
// split as --split writes it (a topology's Arch.Split). A call between contexts of one
// process is an INTERNAL span there; between processes, a CLIENT span in the caller's and
// the SERVER span, its child, in the callee's. A process's spans carry its group's name as
// their service (bounded.Group.Name: "monolith", "gateway", "orders", "cart-orders-payments").
func Check(t *tracecompare.Trace, placement string) error {
	split, err := splitOf(placement)
	if err != nil {
		return err
	}
	var errs []error
	if t.Root.Name != tracecompare.CheckoutRoot || t.Root.Kind != "server" {
		errs = append(errs, fmt.Errorf("root is %s %q, want the SERVER span %q", t.Root.Kind, t.Root.Name, tracecompare.CheckoutRoot))
	}
	if t.Orphans > 0 {
		errs = append(errs, fmt.Errorf("%d spans are not connected to the root", t.Orphans))
	}
	// The service whose spans name is in: the name of the group that runs it.
	service := func(name string) string {
		g, _ := split.Holder(name) // splitOf's split holds every context and the edge
		return g.Name()
	}
	if want := service(bounded.EdgeName); t.Root.Service != want {
		errs = append(errs, fmt.Errorf("the root is in service %s, want the edge's %s", t.Root.Service, want))
	}
	has := func(name, kind, service, group string) *tracecompare.Span {
		for _, s := range t.Spans {
			if s.Name == name && s.Kind == kind && s.Service == service && (group == "" || s.Attrs[tracecompare.AttrConsumerGroup] == group) {
				return s
			}
		}
		what := kind + " " + name + " in " + service
		if group != "" {
			what += " by consumer " + group
		}
		errs = append(errs, fmt.Errorf("no %s", what))
		return nil
	}
	cs, err := calls()
	if err != nil {
		return err
	}
	for _, c := range cs {
		from, to := service(c.caller), service(c.context)
		if from == to {
			has(c.method, "internal", to, "")
			continue
		}
		client := has(c.method, "client", from, "")
		server := has(c.method, "server", to, "")
		if client != nil && server != nil && server.Parent != client {
			errs = append(errs, fmt.Errorf("the SERVER span of %s is not the child of its CLIENT span", c.method))
		}
	}
	for _, pub := range bounded.Table() {
		for _, subject := range pub.Publishes {
			published := has("publish "+subject, "producer", service(pub.Name), "")
			for _, sub := range bounded.Table() {
				if !sub.Linked() {
					// Unlinked, its consumers are unknown here: say so rather than check less.
					errs = append(errs, fmt.Errorf("this binary does not link %s: its consumers of %s cannot be checked", sub.Name, subject))
					continue
				}
				for _, k := range sub.Consumers {
					if !slices.Contains(k.Subjects, subject) {
						continue
					}
					if s := has("process "+subject, "consumer", service(sub.Name), k.Name); s != nil && published != nil && s.Parent != published {
						errs = append(errs, fmt.Errorf("the %s consumer of %s is not the child of its publish", k.Name, subject))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// splitOf reads a placement as Check takes it.
func splitOf(placement string) (bounded.Split, error) {
	switch placement {
	case "monolith":
		return bounded.Split{bounded.Everything()}, nil
	case "services":
		var groups []bounded.Group
		for _, name := range bounded.Names() {
			groups = append(groups, bounded.Group{Contexts: []string{name}})
		}
		return bounded.NewSplit(groups)
	}
	split, err := bounded.ParseSplit(placement)
	if err != nil {
		return nil, fmt.Errorf("placement %q: %w", placement, err)
	}
	return split, nil
}
