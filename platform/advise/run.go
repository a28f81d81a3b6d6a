package advise

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// The files of a load-test run this package reads: the report (loadtest's schema) and the
// traces the run kept (the load test writes them with WriteTraces and the manifest).
const (
	ReportFile   = "report.json"
	ManifestFile = "traces.json"
	// MaxTraceFile bounds a traces file once decompressed.
	MaxTraceFile = 256 << 20
)

// TraceFile is the name of an architecture's traces in a run's folder.
func TraceFile(arch string) string { return "traces-" + arch + ".json.gz" }

// Manifest says which traces a run kept: one side per architecture, each with the window
// they come from (the last step at Rate) and its file.
type Manifest struct {
	Collector string         `json:"collector"`
	Rate      float64        `json:"rate_rps"` // the offered rate of the steps the windows cover
	Sides     []ManifestSide `json:"sides"`
	Note      string         `json:"note,omitempty"` // why no side has a file
}

// ManifestSide is one architecture's traces.
type ManifestSide struct {
	Arch    string    `json:"arch"`
	File    string    `json:"file,omitempty"` // TraceFile(Arch): OTLP/JSON TracesData, gzipped
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Traces  int       `json:"traces"`
	Missing string    `json:"missing,omitempty"`
}

// WriteTraces writes td to path as gzipped OTLP/JSON: what ReadTraces reads, and what any
// OTLP/JSON reader reads once unzipped.
func WriteTraces(path string, td *tracepb.TracesData) error {
	b, err := tracecollect.MarshalJSON(td)
	if err != nil {
		return fmt.Errorf("traces %s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	_, werr := zw.Write(b)
	if err := errors.Join(werr, zw.Close(), f.Close()); err != nil {
		return fmt.Errorf("traces %s: %w", path, err)
	}
	return nil
}

// ReadTraces reads a traces file: OTLP/JSON TracesData (or the query API's {"result": ...}),
// gzipped or not.
func ReadTraces(path string) ([]*tracecompare.Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	head := make([]byte, 2)
	if n, _ := io.ReadFull(f, head); n == 2 && head[0] == 0x1f && head[1] == 0x8b {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("traces %s: %w", path, err)
		}
		r = zr
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxTraceFile+1))
	if err != nil {
		return nil, fmt.Errorf("traces %s: %w", path, err)
	}
	if len(b) > MaxTraceFile {
		return nil, fmt.Errorf("traces %s: over %d MiB", path, MaxTraceFile>>20)
	}
	td, err := tracecollect.UnmarshalTraces(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("traces %s: %w", path, err)
	}
	return tracecompare.FromOTLP(td)
}

// Measured is what a run measured of one architecture at the run's rate.
type Measured struct {
	Arch        string  `json:"arch"`
	Rate        float64 `json:"rate_rps"`
	Achieved    float64 `json:"achieved_rps"`
	CPUPerReqMS float64 `json:"cpu_per_request_ms"`
	IdleCores   float64 `json:"idle_cores"` // with no traffic, before the run
	// OtherCores is what the rest of the machine used meanwhile (the load test's noise
	// figure: busy cores minus the generator and the architecture), the mean of the steps.
	OtherCores float64            `json:"other_cores"`
	Processes  []ProcessCPU       `json:"processes"`  // each process's CPU per request
	Latency    Latency            `json:"latency_ms"` // every request of the mix
	Kinds      map[string]Latency `json:"kinds"`      // by the load test's request kind
	Mix        map[string]float64 `json:"mix"`        // the share of each kind sent
}

// ProcessCPU is one process's (or pod's) CPU per request of its architecture.
type ProcessCPU struct {
	Name        string  `json:"name"`
	CPUPerReqMS float64 `json:"cpu_per_request_ms"`
}

// Latency is a pair of quantiles, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Run is a load-test run as this package needs it.
type Run struct {
	Dir      string                           `json:"dir"`
	ID       string                           `json:"id"`
	Rate     float64                          `json:"rate_rps"`
	Measured map[string]*Measured             `json:"measured"` // by architecture
	Settings LoadSettings                     `json:"settings"`
	Manifest Manifest                         `json:"-"`
	Traces   map[string][]*tracecompare.Trace `json:"-"`
}

// report is the part of loadtest's report.json read here (loadtest/README.md has the schema).
type report struct {
	ID       string       `json:"id"`
	Settings LoadSettings `json:"settings"`
	Points   []struct {
		Arch        string  `json:"arch"`
		Offered     float64 `json:"offered_rps"`
		Phase       string  `json:"phase"`
		CPUPerReqMS float64 `json:"cpu_per_request_ms"`
		Traffic     struct {
			Achieved float64 `json:"achieved_rps"`
			Latency  Latency `json:"latency_ms"`
			ByKind   map[string]struct {
				Requests int64   `json:"requests"`
				Latency  Latency `json:"latency_ms"`
			} `json:"by_kind"`
		} `json:"traffic"`
	} `json:"points"`
	Steps []struct {
		Arch    string  `json:"arch"`
		Phase   string  `json:"phase"`
		Offered float64 `json:"offered_rps"`
		Traffic struct {
			OK int64 `json:"ok"`
		} `json:"traffic"`
		Generator struct {
			OtherCores float64 `json:"other_cores"`
		} `json:"generator"`
		Resources struct {
			Measured  bool `json:"measured"`
			Processes []struct {
				Name       string  `json:"name"`
				CPUSeconds float64 `json:"cpu_seconds"`
			} `json:"processes"`
		} `json:"resources"`
	} `json:"steps"`
	IdleCPU []struct {
		Arch  string  `json:"arch"`
		Cores float64 `json:"cores"`
	} `json:"idle_cpu"`
}

// LoadSettings are the load test's settings of a run (its report's), those that --verify
// repeats.
type LoadSettings struct {
	StepS      float64            `json:"step_s"`
	WarmupS    float64            `json:"warmup_s"`
	WarmupRate float64            `json:"warmup_rps"`
	Repeats    int                `json:"repeats"`
	Users      int                `json:"users_per_arch"`
	Seed       uint64             `json:"seed"`
	TraceShare float64            `json:"trace_share"`
	Mix        map[string]float64 `json:"mix"` // list, search, product, cart_add, checkout weights; declined_share
}

// LoadtestArgs are the load test's flags that run the same steps at rate: one rung of the
// ladder, no bisection.
func (s LoadSettings) LoadtestArgs(rate float64) []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	d := func(sec float64) string { return time.Duration(sec * float64(time.Second)).String() }
	args := []string{"-rates", f(rate), "-search", "0", "-repeats", strconv.Itoa(max(s.Repeats, 1))}
	if s.StepS > 0 {
		args = append(args, "-step", d(s.StepS))
	}
	if s.WarmupS > 0 {
		args = append(args, "-warmup", d(s.WarmupS), "-warmup-rate", f(s.WarmupRate))
	}
	if s.Users > 0 {
		args = append(args, "-users", strconv.Itoa(s.Users))
	}
	args = append(args, "-seed", strconv.FormatUint(s.Seed, 10), "-trace-share", f(s.TraceShare))
	if len(s.Mix) > 0 {
		w := make([]string, 0, 5)
		for _, k := range []string{"list", "search", "product", "cart_add", "checkout"} {
			w = append(w, f(s.Mix[k]))
		}
		args = append(args, "-mix", strings.Join(w, ","), "-declined", f(s.Mix["declined_share"]))
	}
	return args
}

// ReadRun reads a run's folder: its report and, unless traces is false, the traces it kept.
// rate 0 takes the manifest's (else the report's highest ladder rate every architecture ran).
func ReadRun(dir string, rate float64, traces bool) (*Run, error) {
	b, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("run %s: %s: %w", dir, ReportFile, err)
	}
	run := &Run{Dir: dir, ID: rep.ID, Settings: rep.Settings, Measured: map[string]*Measured{}, Traces: map[string][]*tracecompare.Trace{}}
	if mb, err := os.ReadFile(filepath.Join(dir, ManifestFile)); err == nil {
		if err := json.Unmarshal(mb, &run.Manifest); err != nil {
			return nil, fmt.Errorf("run %s: %s: %w", dir, ManifestFile, err)
		}
	} else if traces {
		return nil, fmt.Errorf("run %s keeps no traces (%s): a run of a load test from before advise, or one without a collector; run the load test again", dir, ManifestFile)
	}
	run.Rate = rate
	if run.Rate == 0 {
		run.Rate = run.Manifest.Rate
	}
	if run.Rate == 0 {
		return nil, fmt.Errorf("run %s: no rate to read (give one)", dir)
	}
	if err := rep.measure(run); err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	if !traces {
		return run, nil
	}
	for _, s := range run.Manifest.Sides {
		if s.File == "" {
			continue
		}
		if s.File != filepath.Base(s.File) {
			return nil, fmt.Errorf("run %s: %s names %q: not a file of the run's folder", dir, ManifestFile, s.File)
		}
		ts, err := ReadTraces(filepath.Join(dir, s.File))
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", dir, err)
		}
		run.Traces[s.Arch] = ts
	}
	return run, nil
}

// measure fills run.Measured from the report's points and steps at run.Rate.
func (rep *report) measure(run *Run) error {
	total := 0.0
	for _, w := range rep.Settings.Mix {
		total += w
	}
	for _, p := range rep.Points {
		if p.Offered != run.Rate || p.Phase != "ladder" {
			continue
		}
		m := &Measured{Arch: p.Arch, Rate: p.Offered, Achieved: p.Traffic.Achieved, CPUPerReqMS: p.CPUPerReqMS,
			Latency: p.Traffic.Latency, Kinds: map[string]Latency{}, Mix: map[string]float64{}}
		for k, ks := range p.Traffic.ByKind {
			m.Kinds[k] = ks.Latency
		}
		for k, w := range rep.Settings.Mix {
			if k == "declined_share" || total <= 0 {
				continue
			}
			// The report spells kinds with '_' in the mix ("cart_add") and '-' elsewhere.
			m.Mix[strings.ReplaceAll(k, "_", "-")] = w
		}
		run.Measured[p.Arch] = m
	}
	if len(run.Measured) == 0 {
		return fmt.Errorf("no ladder point at %g req/s", run.Rate)
	}
	for _, m := range run.Measured {
		sum := 0.0
		for _, w := range m.Mix {
			sum += w
		}
		for k := range m.Mix {
			m.Mix[k] /= sum
		}
		cpu, ok, steps := map[string]float64{}, int64(0), 0
		for _, s := range rep.Steps {
			if s.Arch != m.Arch || s.Phase != "ladder" || s.Offered != run.Rate || !s.Resources.Measured {
				continue
			}
			steps++
			m.OtherCores += s.Generator.OtherCores
			ok += s.Traffic.OK
			for _, p := range s.Resources.Processes {
				cpu[p.Name] += p.CPUSeconds
			}
		}
		if steps > 0 {
			m.OtherCores /= float64(steps)
		}
		for _, name := range slices.Sorted(maps.Keys(cpu)) {
			if ok > 0 {
				m.Processes = append(m.Processes, ProcessCPU{Name: name, CPUPerReqMS: cpu[name] * 1000 / float64(ok)})
			}
		}
		for _, idle := range rep.IdleCPU {
			if idle.Arch == m.Arch {
				m.IdleCores = idle.Cores
			}
		}
	}
	return nil
}

// FetchTraces reads the traces of each side of the run's manifest from a collector's query
// API (Jaeger's /api/v3) instead of the run's files: the same windows, every trace of them.
func FetchTraces(ctx context.Context, collector string, run *Run) error {
	client := &tracecollect.Client{BaseURL: collector}
	for _, s := range run.Manifest.Sides {
		td, err := FindWindow(ctx, client, s.Arch, s.From, s.To)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Arch, err)
		}
		ts, err := tracecompare.FromOTLP(td)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Arch, err)
		}
		run.Traces[s.Arch] = ts
	}
	return nil
}

// FindWindow returns every trace (at most tracecollect.MaxSearchDepth) of architecture arch
// that started within [from, to], as one TracesData.
func FindWindow(ctx context.Context, client *tracecollect.Client, arch string, from, to time.Time) (*tracepb.TracesData, error) {
	tds, err := client.Find(ctx, tracecollect.Query{NumTraces: tracecollect.MaxSearchDepth, StartMin: from, StartMax: to,
		Attributes: map[string]string{"resource." + string(telemetry.ArchitectureKey): arch}})
	if err != nil {
		return nil, err
	}
	all := &tracepb.TracesData{}
	for _, td := range tds {
		all.ResourceSpans = append(all.ResourceSpans, td.GetResourceSpans()...)
	}
	return all, nil
}

// The two architectures the model is calibrated on.
const (
	Monolith = topology.Monolith
	Services = topology.Services
)
