package loadtest

import (
	"context"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// TraceKeeper reads the traces of every ladder step from the collector soon after the step
// ends, and keeps them for CollectTraces. The collector's store is bounded (tracecollect
// drops the oldest traces first), and a long run's later steps, at higher rates, fill it
// many times over: read at the end of a run, the traces of the step at the common rate,
// often one of the first, are gone.
type TraceKeeper struct {
	src     TraceSource // Collector, Operation, Last and Settle; Sides name each architecture's edge
	service map[string]string

	wg   sync.WaitGroup
	mu   sync.Mutex
	kept map[stepKey]keptTraces
}

type stepKey struct {
	arch string
	rate float64
}

type keptTraces struct {
	traces []*tracecompare.Trace
	err    error
}

// NewTraceKeeper returns a keeper reading from src.Collector (nil when there is none): the
// Sides give each architecture's edge service, their windows are ignored.
func NewTraceKeeper(src TraceSource) *TraceKeeper {
	if src.Collector == "" {
		return nil
	}
	src = src.withDefaults()
	k := &TraceKeeper{src: src, service: map[string]string{}, kept: map[stepKey]keptTraces{}}
	for _, s := range src.Sides {
		k.service[s.Label] = s.Service
	}
	return k
}

// StepDone reads st's traces in the background, once their spans have had time to reach
// the collector; a later step of the same architecture and rate (a repeat) replaces them,
// as StepWindow takes the last. Only ladder steps are kept: they are the ones compared.
func (k *TraceKeeper) StepDone(st Step) {
	if k == nil || st.Phase != "ladder" {
		return
	}
	side := TraceSideSource{Label: st.Arch, Service: k.service[st.Arch], From: st.Started,
		To: st.Started.Add(time.Duration(st.Seconds * float64(time.Second)))}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		time.Sleep(time.Until(side.To.Add(k.src.Settle)))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ts, err := sideTraces(ctx, &tracecollect.Client{BaseURL: k.src.Collector}, k.src, side)
		k.mu.Lock()
		defer k.mu.Unlock()
		k.kept[stepKey{st.Arch, st.Offered}] = keptTraces{ts, err}
	}()
}

// Wait returns once every step's traces are read.
func (k *TraceKeeper) Wait() {
	if k != nil {
		k.wg.Wait()
	}
}

// traces returns what was kept of arch's last ladder step at rate (ok false: nothing).
func (k *TraceKeeper) traces(arch string, rate float64) (ts []*tracecompare.Trace, err error, ok bool) {
	if k == nil {
		return nil, nil, false
	}
	k.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.kept[stepKey{arch, rate}]
	return t.traces, t.err, ok
}
