package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Calibration is one calibration step: the load test's mix at one rate against one
// architecture that is up, to measure what each of its services uses (`loadtest calibrate`),
// which `mitosis up --budget measured` then sizes each service's limits by, as a vertical
// autoscaler would.
type Calibration struct {
	Arch      *Arch         // its scenario and its resource sampler (required)
	Placement string        // the topology it runs (topology.Arch.Placement)
	Split     string        // its groups, as --split writes them
	Mode      topology.Mode // its budget mode while measured
	Runtime   string
	Budget    *topology.Budget // its total, when known
	Services  []string         // the services the placement has: each must be measured
	Plan      Plan             // one rate, no search, one repeat (CalibrationPlan)
	Env       Environment
	Progress  io.Writer
}

// CalibrationPlan is the plan of a calibration step: a warm-up, then the mix at rate for d.
func CalibrationPlan(mix Mix, rate float64, d, warmup time.Duration, users int) Plan {
	return Plan{Rates: []float64{rate}, Duration: d, Warmup: warmup, WarmupRate: rate, Repeats: 1,
		SLO: DefaultSLO(), Mix: mix, Users: users, Timeout: 5 * time.Second}
}

// Run runs the step and returns what it measured. It refuses a step the architecture could
// not take (under 90% of the rate achieved, or over 1% errors): its figures would describe an
// overload, not the mix. It also refuses one that lost a service or did not measure every
// one.
func (c Calibration) Run(ctx context.Context) (topology.Calibration, error) {
	if c.Arch == nil || c.Arch.Sampler == nil {
		return topology.Calibration{}, errors.New("calibrate: the architecture's resources cannot be measured here; a calibration is nothing else")
	}
	if len(c.Plan.Rates) != 1 || c.Plan.Repeats != 1 || c.Plan.Search != 0 {
		return topology.Calibration{}, errors.New("calibrate: one rate, one repeat, no search")
	}
	res, err := (&Runner{Plan: c.Plan, Archs: []*Arch{c.Arch}, Progress: c.Progress}).Run(ctx)
	if err != nil {
		return topology.Calibration{}, err
	}
	i := slices.IndexFunc(res.Steps, func(s Step) bool { return s.Phase == "ladder" })
	if i < 0 {
		return topology.Calibration{}, errors.New("calibrate: the step did not run")
	}
	st := res.Steps[i]
	rate, t, r := st.Offered, st.Traffic, st.Resources
	if t.Achieved < 0.9*rate || t.ErrorRate > 0.01 {
		return topology.Calibration{}, fmt.Errorf("calibrate: %s took %.1f of %g req/s with %.2f%% errors (%s): calibrate at a rate it sustains",
			c.Arch.Name, t.Achieved, rate, 100*t.ErrorRate, topErrors(t.Errors))
	}
	// A failed sample now and then (Podman's stats call, on a busy machine) costs nothing: the
	// CPU figures are the difference between the first and the last samples that worked, over
	// the span between them.
	if !r.Measured || len(r.Missing) > 0 {
		return topology.Calibration{}, fmt.Errorf("calibrate: %s's resources: measured %v, gone during the step: %v %s",
			c.Arch.Name, r.Measured, r.Missing, r.Note)
	}
	span := st.Seconds
	if r.CPUCores > 0 {
		span = r.CPUSeconds / r.CPUCores
	}
	out := topology.Calibration{
		Placement: c.Placement, Split: c.Split, Arch: c.Arch.Name, Mode: c.Mode, Runtime: c.Runtime, Budget: c.Budget,
		Mix: map[string]float64{"list": c.Plan.Mix.List, "search": c.Plan.Mix.Search, "product": c.Plan.Mix.Product,
			"cart_add": c.Plan.Mix.CartAdd, "checkout": c.Plan.Mix.Checkout, "declined_share": c.Plan.Mix.Declined},
		RateRPS: rate, DurationS: st.Seconds, AchievedRPS: t.Achieved, ErrorRate: t.ErrorRate,
		When: st.Started, GitRevision: c.Env.GitRevision, GitDirty: c.Env.GitDirty,
	}
	var measured []string
	for _, p := range r.Processes {
		out.Services = append(out.Services, topology.CalibratedService{Name: p.Name, CPUCores: p.CPUSeconds / span, PeakMemBytes: p.PeakMemBytes})
		measured = append(measured, p.Name)
	}
	var missing []string
	for _, s := range c.Services {
		if !slices.Contains(measured, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return topology.Calibration{}, fmt.Errorf("calibrate: %s: no figures for %s (measured: %s)", c.Arch.Name, strings.Join(missing, ", "), strings.Join(measured, ", "))
	}
	return out, nil
}
