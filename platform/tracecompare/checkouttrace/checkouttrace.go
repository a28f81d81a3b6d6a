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
// the gRPC method that carries it between processes, and the context that serves it.
type call struct{ method, context string }

// calls are a checkout's calls, in order: the edge's Checkout, then each step of the saga
// that calls another context.
func calls() ([]call, error) {
	var out []call
	for _, c := range append([]orders.Call{{Context: sagaContext, Method: "Checkout"}}, callsOut()...) {
		ctx, ok := bounded.Lookup(c.Context)
		if !ok {
			return nil, fmt.Errorf("the saga calls %s, which is no context of the table", c)
		}
		out = append(out, call{method: ctx.Service + "/" + c.Method, context: c.Context})
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
// HTTP edge, every call between contexts (an INTERNAL span in the monolith; a CLIENT span
// and the SERVER span of the right service in the microservices), the publish of each event
// the table says a context publishes and the processing by each of its consumers, every one
// a descendant of the root, no orphan. arch is "monolith" or "services".
func Check(t *tracecompare.Trace, arch string) error {
	var errs []error
	if t.Root.Name != tracecompare.CheckoutRoot || t.Root.Kind != "server" {
		errs = append(errs, fmt.Errorf("root is %s %q, want the SERVER span %q", t.Root.Kind, t.Root.Name, tracecompare.CheckoutRoot))
	}
	if t.Orphans > 0 {
		errs = append(errs, fmt.Errorf("%d spans are not connected to the root", t.Orphans))
	}
	has := func(name, kind, service, group string) *tracecompare.Span {
		for _, s := range t.Spans {
			if s.Name == name && s.Kind == kind && (service == "" || s.Service == service) && (group == "" || s.Attrs[tracecompare.AttrConsumerGroup] == group) {
				return s
			}
		}
		what := kind + " " + name
		if service != "" {
			what += " in " + service
		}
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
		if arch == "monolith" {
			if s := has(c.method, "internal", "", ""); s != nil && s.Service != t.Root.Service {
				errs = append(errs, fmt.Errorf("%s is in service %s, not the monolith's %s", c.method, s.Service, t.Root.Service))
			}
			continue
		}
		client := has(c.method, "client", "", "")
		server := has(c.method, "server", c.context, "")
		if client != nil && server != nil && server.Parent != client {
			errs = append(errs, fmt.Errorf("the SERVER span of %s is not the child of its CLIENT span", c.method))
		}
	}
	service := func(context string) string { // the service a context's spans are in: one in the monolith
		if arch == "monolith" {
			return ""
		}
		return context
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
