package loadtest

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// RoundTripKeeper reads the store round trips per request of every ladder step from the
// collector's metrics as the step ends, and keeps the figures for CollectRoundTrips. The
// collector keeps the metrics of its last minutes only (tracecollect.DefaultMetricWindow,
// within a byte bound): read at the end of a long run, the early steps' points are gone.
// What it keeps is a step's figures, a few numbers each, not its points.
type RoundTripKeeper struct {
	collector string
	settle    time.Duration // how long to wait, after a step's end, for every process's next push

	wg    sync.WaitGroup
	mu    sync.Mutex
	steps []RoundTripStep
}

// RoundTripStep is one ladder step's store round trips per request, read as it ended.
type RoundTripStep struct {
	Step    int     `json:"step"` // Step.Index
	Offered float64 `json:"offered_rps"`
	Repeat  int     `json:"repeat,omitempty"`
	RoundTripSide
	started time.Time // the step's window, to find it again as a side of the common rate
}

// NewRoundTripKeeper returns a keeper reading from collector's query API (nil when there is
// none, which keeps nothing).
func NewRoundTripKeeper(collector string) *RoundTripKeeper {
	if collector == "" {
		return nil
	}
	return &RoundTripKeeper{collector: collector, settle: metricsSettle}
}

// StepDone reads st's figures in the background, once every process of its architecture
// pushed its metrics past the step's end (or the settle time ran out). Only ladder steps are
// read: they are the ones compared.
func (k *RoundTripKeeper) StepDone(st Step) {
	if k == nil || st.Phase != "ladder" {
		return
	}
	from := st.Started
	to := from.Add(time.Duration(st.Seconds * float64(time.Second)))
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+k.settle)
		defer cancel()
		s, err := sideRoundTrips(ctx, tracecollect.Client{BaseURL: k.collector}, st.Arch, from, to, k.settle)
		if err != nil {
			s = RoundTripSide{Arch: st.Arch, Note: "not read: " + err.Error()}
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		k.steps = append(k.steps, RoundTripStep{Step: st.Index, Offered: st.Offered, Repeat: st.Repeat, RoundTripSide: s, started: from})
	}()
}

// Wait returns once every step's figures are read.
func (k *RoundTripKeeper) Wait() {
	if k != nil {
		k.wg.Wait()
	}
}

// Steps returns the figures of every ladder step so far, in run order.
func (k *RoundTripKeeper) Steps() []RoundTripStep {
	if k == nil {
		return nil
	}
	k.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	out := slices.Clone(k.steps)
	slices.SortFunc(out, func(a, b RoundTripStep) int { return cmp.Compare(a.Step, b.Step) })
	return out
}

// side returns the figures kept of arch's step that began at from (ok false: none).
func (k *RoundTripKeeper) side(arch string, from time.Time) (RoundTripSide, bool) {
	for _, s := range k.Steps() {
		if s.Arch == arch && s.started.Equal(from) {
			return s.RoundTripSide, true
		}
	}
	return RoundTripSide{}, false
}
