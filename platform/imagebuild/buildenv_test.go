package imagebuild

import (
	"slices"
	"testing"
)

// The builds run with the collector held back unless the caller tuned it, and never with
// the caller's GOFLAGS.
func TestBuildEnvHoldsTheCollectorBackUnlessTheCallerSetsIt(t *testing.T) {
	t.Setenv("GOFLAGS", "-tags=remote")
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	for _, c := range []struct {
		set, want   []string
		wantMissing []string
	}{
		{nil, append([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, buildGC...), nil},
		{[]string{"GOGC", "50"}, []string{"GOGC=50"}, buildGC},
		{[]string{"GOMEMLIMIT", "512MiB"}, []string{"GOMEMLIMIT=512MiB"}, buildGC},
	} {
		if c.set != nil {
			t.Setenv(c.set[0], c.set[1])
		}
		env := buildEnv("linux", "arm64")
		for _, kv := range c.want {
			if !slices.Contains(env, kv) {
				t.Errorf("with %v set: %s missing from the build's environment", c.set, kv)
			}
		}
		for _, kv := range append(c.wantMissing, "GOFLAGS=-tags=remote") {
			if slices.Contains(env, kv) {
				t.Errorf("with %v set: %s in the build's environment", c.set, kv)
			}
		}
		if c.set != nil {
			t.Setenv(c.set[0], "")
		}
	}
}
