package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// saturate measures the closed-model throughput of one URL: c connections, each sending the
// next request as soon as the last answered, for d. It is the load test's generator doing
// what wrk does, so the two can be compared on the same endpoint.
func saturate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("saturate", flag.ContinueOnError)
	target := fs.String("url", "http://"+topology.MonolithEdge+"/v1/products", "the URL to GET")
	conns := fs.Int("c", 32, "connections (= workers, each one request at a time)")
	d := fs.Duration("d", 10*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*target); err != nil {
		return err
	}
	r, err := loadtest.Saturate(ctx, *target, *conns, *d)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d connections for %s: %d requests, %.1f req/s, errors %.2f%%, p50 %.2f ms, p99 %.2f ms, max %.1f ms; generator %.2f cores\n",
		*target, *conns, *d, r.Requests, r.Achieved, 100*r.ErrorRate, r.Latency.P50, r.Latency.P99, r.Latency.Max, r.GeneratorCores)
	return nil
}
