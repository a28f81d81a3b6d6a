package topology

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CalibrationSchema names the calibration file's format.
const CalibrationSchema = "mitosis.calibration/v1"

// Calibration is what one calibration step measured of a placement: the CPU and memory each
// of its services used while the load test's mix ran at one rate (`loadtest calibrate`).
// `mitosis up --budget measured` shares a budget out by it. It lives in
// <state>/calibration/<placement>.json, one per placement: any architecture running that
// placement (services, services-shared...) measures it, and any runs by it.
type Calibration struct {
	Schema      string              `json:"schema"`
	Placement   string              `json:"placement"` // a topology file's name, or the split's
	Split       string              `json:"split"`     // the placement's groups, as --split writes them
	Arch        string              `json:"arch"`      // the architecture measured, as the stack named it
	Mode        Mode                `json:"mode"`      // its budget mode while measured
	Runtime     string              `json:"runtime"`   // podman or process
	Budget      *Budget             `json:"budget,omitempty"`
	Mix         map[string]float64  `json:"mix"` // the load test's weights, by request kind
	RateRPS     float64             `json:"rate_rps"`
	DurationS   float64             `json:"duration_s"`
	AchievedRPS float64             `json:"achieved_rps"`
	ErrorRate   float64             `json:"error_rate"`
	Services    []CalibratedService `json:"services"`
	When        time.Time           `json:"when"`
	GitRevision string              `json:"git_revision,omitempty"`
	GitDirty    bool                `json:"git_dirty,omitempty"`
}

// CalibratedService is one service's use during the calibration step.
type CalibratedService struct {
	Name         string  `json:"name"`
	CPUCores     float64 `json:"cpu_cores"` // CPU seconds per second of the step
	PeakMemBytes uint64  `json:"peak_mem_bytes"`
}

// CalibrationRef says which calibration an architecture's limits come from.
type CalibrationRef struct {
	File        string    `json:"file"`
	When        time.Time `json:"when"`
	Arch        string    `json:"arch"` // measured
	Mode        Mode      `json:"mode"` // ... under this budget mode
	RateRPS     float64   `json:"rate_rps"`
	GitRevision string    `json:"git_revision,omitempty"`
}

// CalibrationPath is where the calibration of a placement is kept in dir.
func CalibrationPath(dir, placement string) string { return filepath.Join(dir, placement+".json") }

// calibrateHint is the command that makes a calibration for placement.
func calibrateHint(placement string) string {
	return fmt.Sprintf("bring %s up (mitosis up -t %s) and run `go run ./loadtest/cmd/loadtest calibrate -edges %s -rate RATE` (make calibrate ARCH=%s)",
		placement, placement, placement, placement)
}

// ReadCalibration reads and checks the calibration of placement in dir.
func ReadCalibration(dir, placement string) (Calibration, error) {
	p := CalibrationPath(dir, placement)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Calibration{}, fmt.Errorf("no calibration of %s (%s): %s", placement, p, calibrateHint(placement))
	}
	if err != nil {
		return Calibration{}, err
	}
	var c Calibration
	if err := json.Unmarshal(b, &c); err != nil {
		return Calibration{}, fmt.Errorf("%s: %w", p, err)
	}
	if c.Schema != CalibrationSchema {
		return Calibration{}, fmt.Errorf("%s: schema %q, want %q", p, c.Schema, CalibrationSchema)
	}
	if c.Placement != placement {
		return Calibration{}, fmt.Errorf("%s: a calibration of %q, not %q", p, c.Placement, placement)
	}
	return c, c.check()
}

func (c Calibration) check() error {
	if len(c.Services) == 0 {
		return fmt.Errorf("calibration of %s: no service measured", c.Placement)
	}
	total := 0.0
	for _, s := range c.Services {
		if s.CPUCores < 0 || math.IsNaN(s.CPUCores) || math.IsInf(s.CPUCores, 0) {
			return fmt.Errorf("calibration of %s: %s used %g cores", c.Placement, s.Name, s.CPUCores)
		}
		total += s.CPUCores
	}
	if total <= 0 {
		return fmt.Errorf("calibration of %s: no CPU measured at all", c.Placement)
	}
	return nil
}

// Write writes the calibration to dir (made if missing) as <placement>.json, whole or not at
// all, and returns its path.
func (c Calibration) Write(dir string) (string, error) {
	c.Schema = CalibrationSchema
	if err := c.check(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	p := CalibrationPath(dir, c.Placement)
	tmp, err := os.CreateTemp(dir, "."+c.Placement+"-*.json")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	return p, nil
}

// measure sets each service's CPUs and MemoryMB to its part of the budget by what it used in
// the calibration: every service (NATS too) its measured share of the CPU, and every service
// but NATS its measured share of the memory NATS leaves, above the floors, in whole
// millicores and MiB that add up to the budget exactly.
//
// NATS keeps the memory part it has per service: its memory is the data it holds, which
// grows over a run whatever the rate, so a calibration of seconds cannot size it. Sized by
// its calibration peak (115 MiB of 640, run 20261204-183958), its heap outgrew the
// GOMEMLIMIT of 3/4 of that within minutes, and its garbage collector, running without end,
// used 4.6 times the CPU of NATS per service at 20 req/s and took the p99 to 12.7 times the
// monolith's.
func measure(a *Arch, b Budget, dir string) error {
	if dir == "" {
		return fmt.Errorf("%s: a measured budget needs a calibration folder", a.Name)
	}
	c, err := ReadCalibration(dir, a.Placement)
	if err != nil {
		return fmt.Errorf("%s: %w", a.Name, err)
	}
	if c.Split != a.Split {
		return fmt.Errorf("%s: the calibration of %s (%s) was made for the placement %q, not %q: %s",
			a.Name, a.Placement, CalibrationPath(dir, a.Placement), c.Split, a.Split, calibrateHint(a.Placement))
	}
	by := map[string]CalibratedService{}
	for _, s := range c.Services {
		by[s.Name] = s
	}
	var missing []string
	var cpuSum, memSum float64
	for _, s := range a.Services {
		m, ok := by[s.Name]
		if !ok {
			missing = append(missing, s.Name)
		}
		cpuSum += m.CPUCores
		if s.Name != NATSService {
			memSum += float64(m.PeakMemBytes)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: the calibration of %s (%s) has no figure for %s: %s", a.Name, a.Placement,
			CalibrationPath(dir, a.Placement), strings.Join(missing, ", "), calibrateHint(a.Placement))
	}
	milli := int(math.Round(b.CPUs * 1000))
	if err := fits(a, b); err != nil {
		return err
	}
	var rest []Service
	others := 0
	for _, s := range a.Services {
		if s.Name != NATSService {
			rest = append(rest, s)
			others += s.Count()
		}
	}
	natsMem := natsMemory(b, others)
	memFrac := func(s Service) float64 {
		if memSum <= 0 { // no memory measured: even parts
			return 1 / float64(len(rest))
		}
		return float64(by[s.Name].PeakMemBytes) / memSum
	}
	// A service's figures are all its replicas' together (the calibration was of this very
	// placement): its part is split among them.
	cpus, err := apportion(milli, minMilliCPU, a.Services, func(s Service) float64 { return by[s.Name].CPUCores / cpuSum })
	if err != nil {
		return fmt.Errorf("%s: CPU: %w", a.Name, err)
	}
	mems, err := apportion(b.MemoryMB-natsMem, minMemoryMB, rest, memFrac)
	if err != nil {
		return fmt.Errorf("%s: memory: %w", a.Name, err)
	}
	memOf := map[string]int{NATSService: natsMem}
	for i, s := range rest {
		memOf[s.Name] = mems[i]
	}
	for i := range a.Services {
		s := &a.Services[i]
		s.CPUs = float64(cpus[i]/s.Count()) / 1000
		s.MemoryMB = memOf[s.Name] / s.Count()
		s.Env["GOMEMLIMIT"] = GoMemLimit(s.MemoryMB)
	}
	abs, err := filepath.Abs(CalibrationPath(dir, a.Placement))
	if err != nil {
		abs = CalibrationPath(dir, a.Placement)
	}
	a.Calibration = &CalibrationRef{File: abs, When: c.When, Arch: c.Arch, Mode: c.Mode, RateRPS: c.RateRPS, GitRevision: c.GitRevision}
	return nil
}
