// Package loadtest drives any number of the shop's architectures (the monolith, the
// microservices, a hybrid, any split: one edge each) with the same open-model traffic on the
// same machine, and reports the difference, each against the first.
//
// The pieces, in the order a run uses them:
//
//   - Scenario: the traffic mix of API.md's public API (browse, search, product page, add to
//     cart, checkout with a small share of declined cards), generated per request by a
//     stateful vegeta Targeter over a pool of virtual users, each with its own user ID: a
//     user checks out only once its cart add has come back, and a checkout carries an
//     Idempotency-Key. Replenish tops stock up through the admin API before a run.
//   - Runner: a warm-up, then steps of fixed arrival rate (vegeta's constant pacer, so a slow
//     server meets the same arrivals and queueing is measured, not hidden), the
//     architectures interleaved (A, B, C at each rate) and repeated, even repeats in
//     reverse. Latencies go into HDR histograms measured from each request's scheduled
//     time, so a request the generator sent late still counts its wait (no coordinated
//     omission). A ResourceSampler measures the CPU
//     seconds and peak memory of every process or pod of the architecture under load.
//   - Search: the highest rate within the SLO (default p99 < 50 ms and errors < 0.1%), from
//     the ladder of steps and an optional bisection.
//   - Report: report.json (schema in README.md), report.md and a self-contained report.html
//     with inline SVG charts, one column and one series per architecture, ratios against the
//     first, and the trace breakdown of platform/tracecompare per architecture.
//   - Edges: which architectures to drive, as -edges names them or as the runtimes report
//     them up (EdgesFromStatus).
//
// It is not a general load tool: it speaks the shop's API only, and sends traffic to
// loopback addresses only.
package loadtest
