package loadtest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/advise"
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

	windows string // where each step's whole window is written (KeepWindows); "" for none

	wg   sync.WaitGroup
	mu   sync.Mutex
	kept map[stepKey]keptTraces
	wins map[stepKey]keptWindow
}

// keptWindow is a step's whole window, as ExportTraces keeps it: its file, or why none.
type keptWindow struct {
	path   string
	traces int
	err    error
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
	k := &TraceKeeper{src: src, service: map[string]string{}, kept: map[stepKey]keptTraces{}, wins: map[stepKey]keptWindow{}}
	for _, s := range src.Sides {
		k.service[s.Label] = s.Service
	}
	return k
}

// KeepWindows has the keeper also write every ladder step's whole window (every trace of
// its architecture, as ExportTraces keeps them for `mitosis advise`) into dir, a file per
// architecture and rate, on disk rather than in memory: a step at 800 req/s holds tens of
// MB of spans.
func (k *TraceKeeper) KeepWindows(dir string) {
	if k != nil {
		k.windows = dir
	}
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
		client := &tracecollect.Client{BaseURL: k.src.Collector}
		key := stepKey{st.Arch, st.Offered}
		ts, err := sideTraces(ctx, client, k.src, side)
		k.mu.Lock()
		k.kept[key] = keptTraces{ts, err}
		k.mu.Unlock()
		if k.windows == "" {
			return
		}
		w := keptWindow{path: filepath.Join(k.windows, fmt.Sprintf("%s-%g.json.gz", st.Arch, st.Offered))}
		td, err := advise.FindWindow(ctx, client, st.Arch, side.From, side.To)
		if err == nil {
			w.traces = len(tracecollect.SplitTraces(td))
			err = advise.WriteTraces(w.path, td)
		}
		w.err = err
		k.mu.Lock()
		k.wins[key] = w
		k.mu.Unlock()
	}()
}

// window returns the whole window kept of arch's last ladder step at rate (ok false: none).
func (k *TraceKeeper) window(arch string, rate float64) (w keptWindow, ok bool) {
	if k == nil || k.windows == "" {
		return keptWindow{}, false
	}
	k.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	w, ok = k.wins[stepKey{arch, rate}]
	return w, ok
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
