// Package advise answers "where should we split?" from what the architectures did: it reads
// the traces of a load-test run (its folder, loadtest/out/<run>/, or a collector's /api/v3),
// builds the call graph between the bounded contexts, calibrates a cost model on the monolith
// and the microservices measured in the same run, predicts what any grouping of the contexts
// would cost, searches every grouping, and says which are worth having.
//
// # The call graph
//
// Per endpoint class (the root span: "POST /v1/checkout", "GET /v1/products"...) and per pair
// of contexts (the HTTP edge, "edge", is a node too): synchronous calls per request, the bytes
// of a call each way (the gRPC spans' mitosis.rpc.request.bytes and .response.bytes), the cost
// of one hop (a gRPC client span minus its server span: the wire, serialization and both
// sides' scheduling), and how many of the calls lie on the request's critical path. Events
// (NATS: a publish and its consumers) are edges of their own kind: they cost CPU, not the
// request's latency, and a split does not add a hop to them (the broker is a hop already).
//
// # The cost model
//
// Calibrated from the two extremes of one run, at the same offered rate R:
//
//	CPU/req(G) = CPU/req(monolith) + Σ_{cut edges e} calls_e × h + (P(G) − 1) × i / R
//
//	h = (CPU/req(services) − CPU/req(monolith) − (P(services) − 1) × i / R) / Σ_{all edges} calls_e
//
// where calls_e is edge e's calls per request of the load's mix (every edge is cut in the
// microservices), P(G) the processes of placement G (its groups, and the edge when it runs
// alone: the HTTP edge is a node, in one of the groups or a gateway of its own) and i the
// idle CPU of one more process (the run's idle figures: the
// services' idle cores minus the monolith's, shared by their extra processes). A cut edge is
// one whose two ends are in different groups. CPU per request of one endpoint class is the
// monolith's share for that class (the monolith's CPU split by its traces' busy time per
// class) plus the same sum over that class's cut edges.
//
// Latency of an endpoint class at quantile q (p50, p99):
//
//	lat_q(G) = lat_q(monolith) + f(G) × (lat_q(services) − lat_q(monolith))
//
//	f(G) = Σ_{cut edges} critical_e × hop_e / Σ_{all edges} critical_e × hop_e
//
// with critical_e the class's calls of e on its critical path per request and hop_e the hop
// cost measured on e: a split adds the hop cost of the cut edges on each endpoint's critical
// path, scaled so that cutting every edge gives what the microservices measured.
//
// What it lacks: bytes do not enter the CPU cost (one cost per call, whatever it carries;
// the graph reports them); queueing does not grow with the CPU a split adds (the latencies
// are those at R); a process's idle cost is one figure for every process.
//
// # The search
//
// Every partition of the n contexts (the Bell number: 877 for the shop's seven, 4140 for 8,
// 115975 for 10, 4213597 for 12), each with the edge in any of its groups or alone (as many
// placements as partitions of n+1 items: 4140 for seven contexts), is scored exactly up to
// MaxExact (twelve) contexts, keeping only the Pareto front as it goes, about 1 µs a
// placement here; Bell numbers grow faster than exponentially (Bell(15) is 1.4 billion),
// so above it a greedy merge starts from one group per context and merges, step by step,
// the pair of groups that saves the most CPU per request (O(n³) scorings). Candidates are
// filtered by the constraints (a context isolated, contexts kept together, at most N groups)
// and reduced to the Pareto front of (more groups, less CPU per request, lower checkout
// p99). The objective (cpu; latency: the mean of the checkout's p99 and the mix's p50; or
// balanced: the mean of both) gives each candidate a cost relative to the two extremes, 0 at
// the monolith and 1 at the services; the
// recommendation is the candidate whose independence gained, (groups − 1) / (n − 1), most
// exceeds its cost (both extremes score 0). Each candidate carries the usual decomposition
// metrics: the share of calls crossing a group boundary and each group's interface (the
// distinct methods other groups call on it and the event subjects it takes from them).
package advise
