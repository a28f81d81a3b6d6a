package topology

import (
	"strconv"
	"strings"
	"testing"
)

// servicePeakMiB is the most memory any process but NATS used in run 20261205-002307 (the
// inventory of the services, 35.7 MiB; podman stats, every step of the compare preset):
// what NATS's part must leave each of them, with a quarter to spare.
const servicePeakMiB = 36

// Under the default budget, in every mode and every placement, NATS's GOMEMLIMIT leaves its
// live heap room to grow by half between collections (see natsMemoryPart: at 120 MiB it
// collected two to seven times a second under any traffic), and what is left still holds
// every other process's measured peak.
func TestNATSHeapHasRoomUnderTheDefaultBudget(t *testing.T) {
	dir := t.TempDir()
	writeCalibration(t, dir, Services, servicesCalibration())
	topo, err := Get("monolith,services,hybrid,services@shared,services@measured", Options{CalibrationDir: dir, Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	wantMiB := natsHeadroom * natsLiveHeapMB * 1e6 / (1 << 20)
	for _, a := range topo.Archs {
		nats, ok := a.Service("nats")
		if !ok {
			t.Fatalf("%s: no NATS", a.Name)
		}
		limit, err := strconv.Atoi(strings.TrimSuffix(nats.Env["GOMEMLIMIT"], "MiB"))
		if err != nil {
			t.Fatalf("%s/nats: GOMEMLIMIT %q: %v", a.Name, nats.Env["GOMEMLIMIT"], err)
		}
		if float64(limit) < wantMiB {
			t.Errorf("%s (%s): NATS's GOMEMLIMIT is %d MiB; its live heap of %d MB needs %.0f MiB to collect at a sane rate",
				a.Name, a.Mode, limit, natsLiveHeapMB, wantMiB)
		}
		if a.Mode == Shared {
			continue // no limit of its own: the architecture's whole budget
		}
		if nats.MemoryMB <= limit {
			t.Errorf("%s/nats: a memory limit of %d MiB, not above its GOMEMLIMIT of %d MiB", a.Name, nats.MemoryMB, limit)
		}
		for _, s := range a.Services {
			if s.Name != "nats" && s.MemoryMB < servicePeakMiB*5/4 {
				t.Errorf("%s/%s: %d MiB, under %d MiB (its measured peak and a quarter)", a.Name, s.Name, s.MemoryMB, servicePeakMiB*5/4)
			}
		}
	}
}

// A process is near its Go memory limit from 90% of its GOMEMLIMIT (3/4 of its memory) on:
// NATS's 224 MiB give a GOMEMLIMIT of 168 MiB, of which 90% is 151.2 MiB.
func TestNearGoMemLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		held     uint64
		memoryMB int
		want     bool
	}{
		{151 * mib, 224, false},
		{151*mib + mib/4, 224, true},
		{210 * mib, 224, true},
		{210 * mib, 0, false}, // no limit known
		{40 * mib, 51, true},
		{34 * mib, 51, false},
	} {
		if got := NearGoMemLimit(tc.held, tc.memoryMB); got != tc.want {
			t.Errorf("%.1f MiB of %d MiB (GOMEMLIMIT %d MiB): near %v, want %v", float64(tc.held)/mib, tc.memoryMB, GoMemLimitMB(tc.memoryMB), got, tc.want)
		}
	}
}
