package podmanrt

import "testing"

// Every microsecond count the cgroup reads (as seconds) comes back as the same counter in
// nanoseconds, the figure Podman's stats give: in the first second and around a day's.
func TestNanosecondsKeepsTheCounter(t *testing.T) {
	for _, from := range []uint64{0, 86_400_000_000} {
		for us := from; us < from+1_000_000; us++ {
			if got := nanoseconds(float64(us) / 1e6); got != us*1000 {
				t.Fatalf("%d µs read as %v s: %d ns, want %d", us, float64(us)/1e6, got, us*1000)
			}
		}
	}
}
