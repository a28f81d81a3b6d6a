package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

func TestKillOrder(t *testing.T) {
	rows := []stack.Status{
		{Service: "nats", Ports: map[int]string{topology.NATSPort: "127.0.0.1:1"}}, {Service: "payments"},
		{Service: "gateway"}, {Service: "cart"}, {Service: "orders"},
	}
	if got, want := killOrder(rows, "gateway"), []string{"cart", "orders", "payments", "gateway", "nats"}; !slices.Equal(got, want) {
		t.Errorf("kill order %v, want %v: the contexts, the edge, NATS", got, want)
	}
}

func TestRateFromReport(t *testing.T) {
	dir := t.TempDir()
	write := func(r loadtest.Report) string {
		t.Helper()
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, r.ID+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rate, source, err := rateFromReport(write(loadtest.Report{ID: "a", Summary: []loadtest.ArchSummary{{Arch: "monolith", MaxRate: 350}, {Arch: "services", MaxRate: 47}}}))
	if err != nil || rate != 175 || !strings.Contains(source, "monolith's max within the SLO, 350 req/s") {
		t.Errorf("rate %g (%s), %v; want 175 from the monolith's 350", rate, source, err)
	}
	if _, _, err := rateFromReport(write(loadtest.Report{ID: "b", Summary: []loadtest.ArchSummary{{Arch: "monolith", MaxRateBound: "below_lowest"}}})); err == nil {
		t.Error("a report without a max rate gave a rate")
	}
}
