// Package bounded is the table of the shop's bounded contexts: the only place that lists
// them. For each context it says what it needs and what it offers: its name, its gRPC
// service and port, the buckets it owns, the contexts it calls, its event consumers, its
// background loops, its share of a budget, and how to build it, trace it, serve it over gRPC
// and call it over gRPC. The edge (the public HTTP API) is described beside them.
//
// Everything that needs to know the contexts reads this table: the host that runs any group
// of them (services/host), the topologies and their runtimes (platform/topology), the tests.
// Adding a context is a package of its own under shop/, its gRPC adapter under services/,
// and one row here (README "Adding a context").
//
// It runs nothing: services/host does.
package bounded

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// Context is one row of the table. Build it with define, so that its code columns are typed.
type Context struct {
	Name      string     // as topologies and --split name it, and SHOP_<NAME>_ADDR
	Service   string     // its gRPC service: spans are named after its methods, health asks for it
	Port      int        // its gRPC port (DESIGN.md: 9101 and up, in table order)
	Buckets   []string   // the key-value buckets it owns; no other context opens them
	Calls     []string   // the contexts it calls synchronously
	Publishes []string   // the event subjects it publishes (shop/events)
	Consumers []Consumer // its durable event consumers, shared by its replicas
	Loops     []Loop     // its background loops (when Linked)
	Weight    Weight     // its share of an architecture's budget
	Secrets   []string   // the secrets it reads from the environment, which its process is given

	build        func(ctx context.Context, d Deps) (any, error)
	trace        func(t *traced.Tracing, service string, impl any) any
	register     func(s grpc.ServiceRegistrar, impl any)
	client       func(cc grpc.ClientConnInterface) any
	clientConfig string
}

// Consumer is a durable consumer of events. Its name and subjects are in every binary's
// table, linked or not: a process creates the consumers of the events it publishes before it
// publishes one (Group.EventConsumers); its handler is in the binaries that link its context.
type Consumer struct {
	Name     string   // the durable consumer's name, shared by every replica of the context
	Subjects []string // the events it takes
	handler  func(impl any) events.Handler
}

// Handler returns the consumer's handler over the context's implementation. Only a linked
// context's consumers have one (see Context.Linked).
func (c Consumer) Handler(impl any) events.Handler { return c.handler(impl) }

// EventConsumers are the durable event consumers of every context of the table, in table
// order: those the monolith, which runs them all, creates.
func EventConsumers() []natsjs.Consumer { return Everything().EventConsumers() }

// UsesEvents says whether a process of g publishes or consumes events: only then does it open
// the event stream (services/host), and only then may its NATS user (platform/natsauth).
func (g Group) UsesEvents() bool {
	return slices.ContainsFunc(g.Contexts, func(name string) bool {
		c, ok := Lookup(name)
		return ok && (len(c.Publishes) > 0 || len(c.Consumers) > 0)
	})
}

// EventConsumers are the durable event consumers a process of g creates when it opens the
// event stream (natsjs.OpenBus), in table order: its contexts' own, and every consumer of an
// event its contexts publish. The stream keeps an event only for the consumers that exist
// when it is published, so a publisher makes its events' consumers before it publishes one,
// whether or not their processes ever ran; a process that neither publishes nor consumes
// makes none, and its NATS user may make none (platform/natsauth).
func (g Group) EventConsumers() []natsjs.Consumer {
	var publishes []string
	for _, name := range g.Contexts {
		if c, ok := Lookup(name); ok {
			publishes = append(publishes, c.Publishes...)
		}
	}
	var out []natsjs.Consumer
	for _, c := range table() {
		own := slices.Contains(g.Contexts, c.Name)
		for _, k := range c.Consumers {
			if own || slices.ContainsFunc(k.Subjects, func(s string) bool { return slices.Contains(publishes, s) }) {
				out = append(out, natsjs.Consumer{Name: k.Name, Subjects: slices.Clone(k.Subjects)})
			}
		}
	}
	return out
}

// Loop is a background loop of a context (a sweep, a recovery), run until its process stops.
type Loop struct {
	Name string
	Run  func(ctx context.Context, impl any, d Deps)
}

// Weight is a part of an architecture's CPU and memory budget, relative to the others'.
type Weight struct{ CPU, Memory float64 }

// Add sums two weights: a group of contexts weighs what its contexts weigh together.
func (w Weight) Add(o Weight) Weight { return Weight{w.CPU + o.CPU, w.Memory + o.Memory} }

// Deps are what a context is built from in one process.
type Deps struct {
	Buckets map[string]kv.Bucket // its own buckets, opened (and traced) by the host
	Bus     events.Publisher     // the event stream
	Logger  *slog.Logger
	Now     func() time.Time
	Getenv  func(string) string // the process's environment: a context's own settings
	// SoleReplica says this process is the only one running its group: a context may then
	// take over at once what an earlier process left unfinished (orders' checkouts).
	SoleReplica bool
	Started     time.Time // when this process started
	// Call returns the port of a context this one calls: its implementation in this process
	// (traced) or its gRPC client. The host provides it.
	Call func(name string) any
}

// Call returns the port S of the context name from d: what a context's build function uses
// to reach the contexts it lists in Calls.
func Call[S any](d Deps, name string) (S, error) {
	var zero S
	if d.Call == nil {
		return zero, fmt.Errorf("no way to call %s", name)
	}
	s, ok := d.Call(name).(S)
	if !ok {
		return zero, fmt.Errorf("%s is not a %T here", name, zero)
	}
	return s, nil
}

// Build makes the context's implementation.
func (c Context) Build(ctx context.Context, d Deps) (any, error) {
	if !c.Linked() {
		return nil, fmt.Errorf("build %s: this binary was built for a group without it (build tag mitosis_%s)", c.Name, c.Name)
	}
	impl, err := c.build(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", c.Name, err)
	}
	return impl, nil
}

// Trace returns impl with every call an INTERNAL span named like the gRPC method that would
// carry it between processes (shop/traced).
func (c Context) Trace(t *traced.Tracing, impl any) any { return c.trace(t, c.Service, impl) }

// Register serves impl on s.
func (c Context) Register(s grpc.ServiceRegistrar, impl any) { c.register(s, impl) }

// Client returns the context's port implemented by calls over cc.
func (c Context) Client(cc grpc.ClientConnInterface) any { return c.client(cc) }

// ClientConfig is the gRPC service config of the context's clients: load balancing over its
// replicas, and retries of its idempotent reads.
func (c Context) ClientConfig() string { return c.clientConfig }

// port is how a context of port type S is traced and called over gRPC: what every binary
// links, for every context.
type port[S any] struct {
	trace        func(t *traced.Tracing, service string, s S) S
	client       func(cc grpc.ClientConnInterface) S
	clientConfig string
}

// server is how a context of port type S runs in a process: built over its buckets, served
// over gRPC, its consumers and loops. A binary built for a group (build tags mitosis_group
// and mitosis_<context>, see services/shop) links the server part of its group's contexts
// only, so that a change to another context's implementation leaves it as it is; the table
// then holds nil for the others.
type server[S any] struct {
	build    func(ctx context.Context, d Deps) (S, error)
	register func(s grpc.ServiceRegistrar, impl S)
	handlers map[string]func(S) events.Handler // by consumer name: one for each of the row's Consumers
	loops    []loop[S]
}

type loop[S any] struct {
	name string
	run  func(ctx context.Context, impl S, d Deps)
}

// define completes a row with its typed code: the server part srv (nil when this binary does
// not link it) and the port part p.
func define[S any](c Context, srv *server[S], p port[S]) Context {
	c.trace = func(t *traced.Tracing, service string, impl any) any { return p.trace(t, service, impl.(S)) }
	c.client = func(cc grpc.ClientConnInterface) any { return p.client(cc) }
	c.clientConfig = p.clientConfig
	if srv == nil {
		return c
	}
	c.build = func(ctx context.Context, d Deps) (any, error) { return srv.build(ctx, d) }
	c.register = func(s grpc.ServiceRegistrar, impl any) { srv.register(s, impl.(S)) }
	if len(srv.handlers) != len(c.Consumers) {
		panic(fmt.Sprintf("bounded: %s has %d consumers and %d handlers", c.Name, len(c.Consumers), len(srv.handlers)))
	}
	c.Consumers = slices.Clone(c.Consumers)
	for i, k := range c.Consumers {
		h, ok := srv.handlers[k.Name]
		if !ok {
			panic(fmt.Sprintf("bounded: %s has no handler for its consumer %s", c.Name, k.Name))
		}
		c.Consumers[i].handler = func(impl any) events.Handler { return h(impl.(S)) }
	}
	for _, l := range srv.loops {
		c.Loops = append(c.Loops, Loop{Name: l.name, Run: func(ctx context.Context, impl any, d Deps) { l.run(ctx, impl.(S), d) }})
	}
	return c
}

// Linked reports whether this binary holds the context's implementation (see server).
func (c Context) Linked() bool { return c.build != nil }

// Names are the contexts' names, in table order.
func Names() []string {
	var out []string
	for _, c := range table() {
		out = append(out, c.Name)
	}
	return out
}

// Lookup returns the named context.
func Lookup(name string) (Context, bool) {
	rows := table()
	i := slices.IndexFunc(rows, func(c Context) bool { return c.Name == name })
	if i < 0 {
		return Context{}, false
	}
	return rows[i], true
}

// Order returns names sorted so that every context comes after the contexts it calls among
// them: the order a process builds its colocated contexts in. The calls among the contexts
// have no cycle (a test checks it).
func Order(names []string) []string {
	var out []string
	done := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if done[n] {
			return
		}
		done[n] = true
		if c, ok := Lookup(n); ok {
			for _, callee := range c.Calls {
				if slices.Contains(names, callee) {
					visit(callee)
				}
			}
		}
		out = append(out, n)
	}
	for _, n := range names {
		visit(n)
	}
	return out
}
