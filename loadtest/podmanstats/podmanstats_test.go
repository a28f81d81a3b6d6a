//go:build remote

package podmanstats

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestSamplerNeedsPodmanStack samples a running mitosis stack's pods (MITOSIS_STACK, default
// "mitosis"; `mitosis up` makes one). It only reads: it skips when Podman or the stack is
// missing, unless REQUIRE_CONTAINERS=1.
func TestSamplerNeedsPodmanStack(t *testing.T) {
	stackName := os.Getenv("MITOSIS_STACK")
	if stackName == "" {
		stackName = "mitosis"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, stackName, "monolith")
	if errors.Is(err, ErrNoContainers) {
		// Podman answers; what is missing is a running stack, which this test samples
		// rather than makes (make up ARCH=monolith, then run it).
		t.Skipf("no running %s stack to sample (make up ARCH=monolith): %v", stackName, err)
	}
	if err != nil {
		if os.Getenv("REQUIRE_CONTAINERS") == "1" {
			t.Fatalf("%v (REQUIRE_CONTAINERS=1)", err)
		}
		t.Skipf("no Podman stack to sample: %v", err)
	}
	first, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first["monolith"]; !ok {
		t.Fatalf("sample %v: want the monolith's container by its service name", first)
	}
	for name, u := range first {
		if u.CPUSeconds <= 0 || u.MemBytes == 0 {
			t.Errorf("%s: %+v, want CPU seconds and memory of a running container", name, u)
		}
	}
	second, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range second {
		if u.CPUSeconds < first[name].CPUSeconds {
			t.Errorf("%s: CPU went from %v to %v: want a counter", name, first[name].CPUSeconds, u.CPUSeconds)
		}
	}
}
