package advise

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// EdgeNode is the HTTP edge as a node of the graph: the caller of every request's first call.
const EdgeNode = bounded.EdgeName

// Span attributes the graph reads: the message sizes services/host sets on gRPC spans, the
// RPC system of a call, the consumer group of an event's consumer (the context's name).
const (
	attrRequestBytes  = "mitosis.rpc.request.bytes"
	attrResponseBytes = "mitosis.rpc.response.bytes"
	attrRPCSystem     = "rpc.system.name"
	attrConsumerGroup = "messaging.consumer.group.name"
	rpcGRPC           = "grpc"
	rpcInProcess      = "inprocess"
)

// Graph is the call graph of one architecture's traces.
type Graph struct {
	Arch       string   `json:"arch"`
	Traces     int      `json:"traces"`
	Incomplete int      `json:"incomplete_traces"` // with gaps (tracecompare's): spans missing
	Classes    []*Class `json:"classes"`           // by traces, most first
}

// Class is one endpoint class: the requests whose root span has one name.
type Class struct {
	Name   string  `json:"name"` // the root span's name: "POST /v1/checkout"
	Traces int     `json:"traces"`
	Share  float64 `json:"share"` // of the graph's traces
	// BusyMS is the mean time of the class's request spent in the shop's code and stores on
	// its critical path (tracecompare's domain and store): what the monolith's CPU is split by.
	BusyMS float64 `json:"busy_ms"`
	Calls  []*Edge `json:"calls"`  // synchronous, by From then To
	Events []*Edge `json:"events"` // a publish to one consumer
}

// Edge is what one context asks of another within one class, per request of the class.
type Edge struct {
	From    string   `json:"from"`
	To      string   `json:"to"`
	Methods []string `json:"methods"` // the span names: gRPC methods, or event subjects
	Calls   float64  `json:"calls"`   // per request
	// Critical is the calls per request whose span lies on the request's critical path.
	Critical float64 `json:"critical"`
	// Remote is the calls per request that crossed a process (a gRPC client span).
	Remote float64 `json:"remote"`
	// RequestBytes and ResponseBytes are the mean message sizes of a remote call (0 where no
	// span carried them); HopMS the mean of client span minus server span.
	RequestBytes  float64 `json:"request_bytes"`
	ResponseBytes float64 `json:"response_bytes"`
	HopMS         float64 `json:"hop_ms"`

	sized, hops int // remote calls that carried sizes, and that had their server span
}

// Key names an edge's two ends.
func (e *Edge) Key() string { return e.From + "→" + e.To }

// contextOfService maps each gRPC service name to its context (the table's Service column).
func contextOfService() map[string]string {
	m := map[string]string{}
	for _, c := range bounded.Table() {
		m[c.Service] = c.Name
	}
	return m
}

// BuildGraph builds the call graph of traces, all of one architecture.
func BuildGraph(arch string, traces []*tracecompare.Trace) (*Graph, error) {
	if len(traces) == 0 {
		return nil, fmt.Errorf("%s: no traces to build a call graph from", arch)
	}
	services := contextOfService()
	g := &Graph{Arch: arch}
	classes := map[string]*Class{}
	calls := map[string]map[string]*Edge{} // class → key → edge
	events := map[string]map[string]*Edge{}
	for _, t := range traces {
		a := tracecompare.Analyze(t)
		g.Traces++
		if len(a.Gaps) > 0 {
			g.Incomplete++
		}
		c := classes[t.Root.Name]
		if c == nil {
			c = &Class{Name: t.Root.Name}
			classes[c.Name] = c
			calls[c.Name], events[c.Name] = map[string]*Edge{}, map[string]*Edge{}
		}
		c.Traces++
		c.BusyMS += ms(a.Request.Breakdown[tracecompare.Domain] + a.Request.Breakdown[tracecompare.Store])
		critical := onPath(a.Request)
		for _, s := range t.Spans {
			switch {
			case isCall(s):
				to := calleeOf(s, services)
				if to == "" {
					continue
				}
				e := edgeOf(calls[c.Name], callerOf(s, services), to)
				addMethod(e, s.Name)
				e.Calls++
				if critical[s] {
					e.Critical++
				}
				if s.Kind == "client" {
					e.Remote++
					req, okq := intAttr(s, attrRequestBytes)
					resp, okr := intAttr(s, attrResponseBytes)
					if okq || okr {
						e.RequestBytes += req
						e.ResponseBytes += resp
						e.sized++
					}
					if srv := serverOf(s); srv != nil {
						e.HopMS += ms(s.Duration() - srv.Duration())
						e.hops++
					}
				}
			case s.Kind == "consumer":
				to := s.Attrs[attrConsumerGroup]
				if !slices.Contains(bounded.Names(), to) || s.Parent == nil || s.Parent.Kind != "producer" {
					continue
				}
				e := edgeOf(events[c.Name], callerOf(s.Parent, services), to)
				addMethod(e, strings.TrimPrefix(s.Name, "process "))
				e.Calls++
			}
		}
	}
	for name, c := range classes {
		n := float64(c.Traces)
		c.Share = n / float64(g.Traces)
		c.BusyMS /= n
		c.Calls = finish(calls[name], n)
		c.Events = finish(events[name], n)
		g.Classes = append(g.Classes, c)
	}
	slices.SortFunc(g.Classes, func(a, b *Class) int {
		return cmp.Or(cmp.Compare(b.Traces, a.Traces), strings.Compare(a.Name, b.Name))
	})
	return g, nil
}

// onPath is every span the path passes through: those with a stretch on it, and their
// ancestors (a call whose own time is all its children's is on the path through them).
func onPath(p tracecompare.Path) map[*tracecompare.Span]bool {
	on := map[*tracecompare.Span]bool{}
	for _, sg := range p.Segments {
		for s := sg.Span; s != nil && !on[s]; s = s.Parent {
			on[s] = true
		}
	}
	return on
}

// finish turns the sums of one class's edges into means, sorted.
func finish(m map[string]*Edge, traces float64) []*Edge {
	out := slices.Collect(maps.Values(m))
	for _, e := range out {
		if e.sized > 0 {
			e.RequestBytes /= float64(e.sized)
			e.ResponseBytes /= float64(e.sized)
		}
		if e.hops > 0 {
			e.HopMS /= float64(e.hops)
		}
		e.Calls /= traces
		e.Critical /= traces
		e.Remote /= traces
		slices.Sort(e.Methods)
	}
	slices.SortFunc(out, func(a, b *Edge) int { return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To)) })
	return out
}

func edgeOf(m map[string]*Edge, from, to string) *Edge {
	k := from + "→" + to
	e := m[k]
	if e == nil {
		e = &Edge{From: from, To: to}
		m[k] = e
	}
	return e
}

func addMethod(e *Edge, name string) {
	if !slices.Contains(e.Methods, name) {
		e.Methods = append(e.Methods, name)
	}
}

// isCall reports whether s is a call from one context (or the edge) to another: a gRPC
// client span, or shop/traced's in-process span. The server span under a client span is the
// same call.
func isCall(s *tracecompare.Span) bool {
	switch s.Kind {
	case "client":
		return s.Attrs[attrRPCSystem] == rpcGRPC
	case "internal":
		return s.Attrs[attrRPCSystem] == rpcInProcess
	}
	return false
}

// calleeOf is the context a call span calls, from its name: "<gRPC service>/<method>".
func calleeOf(s *tracecompare.Span, services map[string]string) string {
	svc, _, ok := strings.Cut(s.Name, "/")
	if !ok {
		return ""
	}
	return services[svc]
}

// callerOf is the context s runs in: that of the nearest call (client, in-process or server
// span) or event consumer above it, else the edge.
func callerOf(s *tracecompare.Span, services map[string]string) string {
	for p := s.Parent; p != nil; p = p.Parent {
		switch {
		case isCall(p) || (p.Kind == "server" && p.Attrs[attrRPCSystem] == rpcGRPC):
			if c := calleeOf(p, services); c != "" {
				return c
			}
		case p.Kind == "consumer" && slices.Contains(bounded.Names(), p.Attrs[attrConsumerGroup]):
			return p.Attrs[attrConsumerGroup]
		}
	}
	return EdgeNode
}

// serverOf is the server span of a gRPC client span.
func serverOf(s *tracecompare.Span) *tracecompare.Span {
	for _, c := range s.Children {
		if c.Kind == "server" {
			return c
		}
	}
	return nil
}

func intAttr(s *tracecompare.Span, key string) (float64, bool) {
	v, ok := s.Attrs[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseFloat(v, 64)
	return n, err == nil
}

// Class returns the class named name, or nil.
func (g *Graph) Class(name string) *Class {
	for _, c := range g.Classes {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Mix is the graph's synchronous edges per request of the whole mix: each class's edges
// weighted by its share, summed over the classes.
func (g *Graph) Mix() []*Edge { return g.mix(func(c *Class) []*Edge { return c.Calls }) }

// MixEvents is Mix for the event edges.
func (g *Graph) MixEvents() []*Edge { return g.mix(func(c *Class) []*Edge { return c.Events }) }

func (g *Graph) mix(edges func(*Class) []*Edge) []*Edge {
	m := map[string]*Edge{}
	for _, c := range g.Classes {
		for _, e := range edges(c) {
			s := edgeOf(m, e.From, e.To)
			for _, name := range e.Methods {
				addMethod(s, name)
			}
			w := c.Share
			s.Calls += w * e.Calls
			s.Critical += w * e.Critical
			s.Remote += w * e.Remote
			// Sizes and hops are per call: weighted by the calls that carried them.
			s.RequestBytes += w * e.Calls * e.RequestBytes
			s.ResponseBytes += w * e.Calls * e.ResponseBytes
			s.HopMS += w * e.Calls * e.HopMS
		}
	}
	out := slices.Collect(maps.Values(m))
	for _, e := range out {
		if e.Calls > 0 {
			e.RequestBytes /= e.Calls
			e.ResponseBytes /= e.Calls
			e.HopMS /= e.Calls
		}
		slices.Sort(e.Methods)
	}
	slices.SortFunc(out, func(a, b *Edge) int { return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To)) })
	return out
}
