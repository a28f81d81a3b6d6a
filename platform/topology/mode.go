package topology

import (
	"fmt"
	"slices"
	"strings"
)

// Mode is how an architecture's budget is enforced: the same total either way, shared out
// among its services or not.
type Mode string

// The budget modes.
const (
	// PerService gives each service limits of its own, its share of the budget by the
	// groups' weights (share): each pod's CPU quota and memory limit.
	PerService Mode = "per-service"
	// Shared puts every process of the architecture under one CPU and memory limit, the
	// architecture's total (one cgroup): a busy service takes what the idle ones leave.
	Shared Mode = "shared"
	// Measured gives each service limits of its own, sized by the CPU and memory each used
	// in a calibration step of the load test's mix (Calibration): what a vertical
	// autoscaler would set.
	Measured Mode = "measured"
)

// Modes lists the budget modes, the default first.
var Modes = []Mode{PerService, Shared, Measured}

// ParseMode reads a budget mode by its name.
func ParseMode(s string) (Mode, error) {
	if m := Mode(s); slices.Contains(Modes, m) {
		return m, nil
	}
	return "", fmt.Errorf("unknown budget mode %q: want %s", s, modeList())
}

func modeList() string {
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// Entry is one architecture asked for: a placement (a topology file's name, or the split's)
// run under a budget mode, under its own name.
type Entry struct {
	Name      string // the architecture's name: the placement's, or <placement>-<mode> for placement@mode
	Placement string
	Mode      Mode
}

// ModeName is the name of placement run under mode by placement@mode.
func ModeName(placement string, m Mode) string { return placement + "-" + string(m) }

// ParseArchs reads the architectures a list names, as -t writes them: comma-separated
// placements, each with an optional @mode (services@shared), "both" for monolith and
// services, and with Options.Split the split too (named SplitName unless listed). An entry
// without @ takes Options.Mode. An entry with @ runs the placement again beside the others,
// named <placement>-<mode> (services-shared), so that one placement can be compared with
// itself under each budget mode. The same name twice is refused.
func ParseArchs(list string, opts Options) ([]Entry, error) {
	def := opts.Mode
	if def == "" {
		def = PerService
	}
	if _, err := ParseMode(string(def)); err != nil {
		return nil, err
	}
	var out []Entry
	add := func(e Entry) error {
		if slices.ContainsFunc(out, func(o Entry) bool { return o.Name == e.Name }) {
			return fmt.Errorf("-t %q: the architecture %s is asked for twice", list, e.Name)
		}
		out = append(out, e)
		return nil
	}
	split := opts.Split != ""
	if list == Both || (list == "" && !split) {
		list = Monolith + "," + Services
	}
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		placement, modeName, withMode := strings.Cut(raw, "@")
		mode := def
		if withMode {
			m, err := ParseMode(modeName)
			if err != nil {
				return nil, fmt.Errorf("-t %q: %s: %w", list, raw, err)
			}
			mode = m
		}
		if placement == "" || strings.ContainsAny(placement, " /+@") {
			return nil, fmt.Errorf("-t %q: %q is no topology's name", list, raw)
		}
		placements := []string{placement}
		if placement == Both {
			placements = []string{Monolith, Services}
		}
		for _, p := range placements {
			e := Entry{Name: p, Placement: p, Mode: mode}
			if withMode {
				e.Name = ModeName(p, mode)
			}
			if err := add(e); err != nil {
				return nil, err
			}
		}
	}
	if split && !slices.ContainsFunc(out, func(e Entry) bool { return e.Placement == splitName(opts) }) {
		if err := add(Entry{Name: splitName(opts), Placement: splitName(opts), Mode: def}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
