package loadtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/advise"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// InsecureNote is how the report names an architecture up --insecure, wherever it shows it.
const InsecureNote = "insecure, for comparison only"

// SecurityCost is what a run with architectures up --insecure beside secure ones says
// security costs (security.md and security.json beside the report): each architecture's CPU
// per request and latency at every ladder rate, and the p50 of one gRPC hop (a client span's
// time minus its server span's: the wire, TLS and encoding, not the callee's work) over the
// traces the run kept of its step at the common rate (advise.TraceFile).
type SecurityCost struct {
	CommonRate float64       `json:"common_rate_rps"`
	Rows       []SecurityRow `json:"rows"`
	Hops       []SecurityHop `json:"hops"`
}

// SecurityRow is one architecture at one rate.
type SecurityRow struct {
	Arch        string  `json:"arch"`
	Insecure    bool    `json:"insecure"`
	Rate        float64 `json:"rate_rps"`
	CPUPerReqMS float64 `json:"cpu_per_request_ms"` // 0: not measured
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
}

// SecurityHop is one architecture's gRPC hops at the common rate.
type SecurityHop struct {
	Arch     string  `json:"arch"`
	Insecure bool    `json:"insecure"`
	Hops     int     `json:"hops"` // client spans with their server span
	P50MS    float64 `json:"p50_ms"`
	P90MS    float64 `json:"p90_ms"`
	Note     string  `json:"note,omitempty"` // why there is no figure
}

// BuildSecurityCost reads the run's ladder and the traces in dir; insecure names the
// architectures up --insecure.
func BuildSecurityCost(r *Report, dir string, insecure []string) SecurityCost {
	s := SecurityCost{}
	if r.Comparison != nil {
		s.CommonRate = r.Comparison.CommonRate
	}
	for _, a := range r.Architectures {
		for _, p := range r.Points {
			if p.Arch != a.Name || p.Phase != "ladder" {
				continue
			}
			s.Rows = append(s.Rows, SecurityRow{Arch: a.Name, Insecure: slices.Contains(insecure, a.Name), Rate: p.Offered,
				CPUPerReqMS: p.CPUPerReqMS, P50MS: p.Traffic.Latency.P50, P99MS: p.Traffic.Latency.P99})
		}
		s.Hops = append(s.Hops, hopsOf(a.Name, slices.Contains(insecure, a.Name), filepath.Join(dir, advise.TraceFile(a.Name))))
	}
	return s
}

// hopsOf measures the gRPC hops of the traces in path.
func hopsOf(arch string, insecure bool, path string) SecurityHop {
	h := SecurityHop{Arch: arch, Insecure: insecure}
	traces, err := advise.ReadTraces(path)
	if err != nil {
		h.Note = "no traces: " + err.Error()
		return h
	}
	var hops []time.Duration
	for _, t := range traces {
		for _, c := range t.Spans {
			if c.Kind != "client" || c.Attrs["rpc.system.name"] != "grpc" {
				continue
			}
			if i := slices.IndexFunc(c.Children, func(s *tracecompare.Span) bool { return s.Kind == "server" }); i >= 0 {
				hops = append(hops, c.Duration()-c.Children[i].Duration())
			}
		}
	}
	h.Hops = len(hops)
	if len(hops) == 0 {
		h.Note = "no gRPC hop in its traces (a monolith makes none)"
		return h
	}
	slices.Sort(hops)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	h.P50MS, h.P90MS = ms(hops[len(hops)/2]), ms(hops[len(hops)*9/10])
	return h
}

// Markdown is the section as a page.
func (s SecurityCost) Markdown() string {
	var b strings.Builder
	name := func(arch string, insecure bool) string {
		if insecure {
			return arch + " (**" + strings.ToUpper(InsecureNote) + "**)"
		}
		return arch
	}
	fmt.Fprintf(&b, "# What security costs\n\nArchitectures marked insecure ran `mitosis up --insecure`: plaintext gRPC and NATS, no authorization (%s).\n\n", InsecureNote)
	b.WriteString("| architecture | offered req/s | CPU ms/request | p50 ms | p99 ms |\n|---|---|---|---|---|\n")
	for _, r := range s.Rows {
		cpu := "not measured"
		if r.CPUPerReqMS > 0 {
			cpu = fmt.Sprintf("%.3f", r.CPUPerReqMS)
		}
		fmt.Fprintf(&b, "| %s | %g | %s | %.2f | %.2f |\n", name(r.Arch, r.Insecure), r.Rate, cpu, r.P50MS, r.P99MS)
	}
	fmt.Fprintf(&b, "\nOne gRPC hop (client span minus its server span), over the traces of the step at %g req/s:\n\n", s.CommonRate)
	b.WriteString("| architecture | hops | p50 ms | p90 ms |\n|---|---|---|---|\n")
	for _, h := range s.Hops {
		if h.Note != "" {
			fmt.Fprintf(&b, "| %s | %d | %s | |\n", name(h.Arch, h.Insecure), h.Hops, h.Note)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.3f | %.3f |\n", name(h.Arch, h.Insecure), h.Hops, h.P50MS, h.P90MS)
	}
	return b.String()
}

// WriteFiles writes security.md and security.json into dir.
func (s SecurityCost) WriteFiles(dir string) error {
	j, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "security.json"), j, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "security.md"), []byte(s.Markdown()), 0o644)
}
