package advise

import "fmt"

// Verification compares a prediction with a run of the placement beside the monolith.
type Verification struct {
	Run   string  `json:"run"` // the verifying run's folder
	Arch  string  `json:"arch"`
	Split string  `json:"split"`
	Rate  float64 `json:"rate_rps"`
	// Rows compare each figure twice: as predicted from the advised run, and anchored on the
	// verifying run's own monolith (the model's monolith term measured again, the cut costs
	// as predicted): machine noise between the two runs moves both architectures alike.
	Rows []VerifyRow `json:"rows"`
	// OtherCores is what the rest of the machine used during the steps of the placement and
	// of the monolith, and during the advised run's: a busy machine moves CPU per request by
	// more than a small split costs.
	OtherCores    [2]float64 `json:"other_cores"`
	AdvisedOthers [2]float64 `json:"advised_run_other_cores"`
}

// VerifyRow is one figure.
type VerifyRow struct {
	Metric    string  `json:"metric"`
	Predicted float64 `json:"predicted"`
	Anchored  float64 `json:"predicted_anchored"`
	Measured  float64 `json:"measured"`
	// ErrorPct is the anchored prediction's error; RawErrorPct the advised run's.
	ErrorPct    float64 `json:"error_pct"`
	RawErrorPct float64 `json:"raw_error_pct"`
	Monolith    float64 `json:"monolith"` // the verifying run's monolith
}

// Verify compares p with what run measured of arch (p's placement) and of the monolith.
func (m *Model) Verify(p *Prediction, run *Run, arch string) (*Verification, error) {
	got, mono := run.Measured[arch], run.Measured[Monolith]
	if got == nil || mono == nil {
		return nil, fmt.Errorf("run %s measured no %s and monolith at %g req/s", run.ID, arch, run.Rate)
	}
	if got.CPUPerReqMS <= 0 || mono.CPUPerReqMS <= 0 {
		return nil, fmt.Errorf("run %s measured no CPU of the %s or the monolith", run.ID, arch)
	}
	v := &Verification{Run: run.Dir, Arch: arch, Split: p.Split, Rate: run.Rate,
		OtherCores: [2]float64{got.OtherCores, mono.OtherCores}, AdvisedOthers: [2]float64{m.Services.OtherCores, m.Mono.OtherCores}}
	row := func(metric string, predicted, base, measured, monoNow float64) {
		if measured <= 0 || monoNow <= 0 {
			return // not measured (a mix without that kind): no figure to compare
		}
		anchored := monoNow + (predicted - base)
		v.Rows = append(v.Rows, VerifyRow{Metric: metric, Predicted: predicted, Anchored: anchored, Measured: measured,
			ErrorPct: ErrorPct(anchored, measured), RawErrorPct: ErrorPct(predicted, measured), Monolith: monoNow})
	}
	row("CPU per request, ms", p.CPUPerReqMS, m.Mono.CPUPerReqMS, got.CPUPerReqMS, mono.CPUPerReqMS)
	row("p50, ms", p.Latency.P50, m.Mono.Latency.P50, got.Latency.P50, mono.Latency.P50)
	row("p99, ms", p.Latency.P99, m.Mono.Latency.P99, got.Latency.P99, mono.Latency.P99)
	k := p.Kinds[Checkout].Latency
	row("checkout p50, ms", k.P50, m.Mono.Kinds[Checkout].P50, got.Kinds[Checkout].P50, mono.Kinds[Checkout].P50)
	row("checkout p99, ms", k.P99, m.Mono.Kinds[Checkout].P99, got.Kinds[Checkout].P99, mono.Kinds[Checkout].P99)
	return v, nil
}
