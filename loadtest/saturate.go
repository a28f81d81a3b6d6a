package loadtest

import (
	"context"
	"errors"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// SaturateResult is a closed-model measurement of one URL.
type SaturateResult struct {
	Requests       int64
	Achieved       float64 // successful responses per second
	ErrorRate      float64
	Latency        Latency
	GeneratorCores float64
}

// Saturate GETs url over conns connections for d, each connection sending its next request
// when the last has answered (vegeta at unbounded rate with exactly conns workers): the
// closed model wrk uses, to cross-check the generator's throughput against wrk's. It is not
// the load test's model (that is open: a constant arrival rate).
func Saturate(ctx context.Context, url string, conns int, d time.Duration) (SaturateResult, error) {
	if conns <= 0 || d <= 0 {
		return SaturateResult{}, errors.New("saturate: connections and duration must be positive")
	}
	client := newClient(nil, 10*time.Second)
	defer client.CloseIdleConnections()
	atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(uint64(conns)), vegeta.MaxWorkers(uint64(conns)), vegeta.MaxBody(0))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url})
	cpu0 := SelfCPU()
	start := time.Now()
	rec := NewRecorder()
	for res := range atk.Attack(tr, vegeta.ConstantPacer{}, d, "saturate") {
		rec.Add(res, res.Timestamp)
	}
	elapsed := time.Since(start).Seconds()
	t := rec.Traffic(elapsed)
	return SaturateResult{Requests: t.Requests, Achieved: t.Achieved, ErrorRate: t.ErrorRate, Latency: t.Latency,
		GeneratorCores: (SelfCPU() - cpu0) / elapsed}, ctx.Err()
}
