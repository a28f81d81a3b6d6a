package loadtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The security section of a real run (platform/advise's fixture: a Podman run of the
// monolith and the services, its traces kept), with the services taken as insecure: every
// ladder point of each architecture, a hop figure from the services' traces and none from
// the monolith's, and the insecure one marked wherever it is named.
func TestSecurityCostOfARealRun(t *testing.T) {
	dir := filepath.Join("..", "platform", "advise", "testdata", "run")
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	s := BuildSecurityCost(&r, dir, []string{"services"})
	points := 0
	for _, p := range r.Points {
		if p.Phase == "ladder" {
			points++
		}
	}
	if len(s.Rows) != points || points == 0 {
		t.Errorf("%d rows for %d ladder points", len(s.Rows), points)
	}
	hops := map[string]SecurityHop{}
	for _, h := range s.Hops {
		hops[h.Arch] = h
	}
	if h := hops["services"]; h.Hops == 0 || h.P50MS <= 0 || h.P90MS < h.P50MS || !h.Insecure {
		t.Errorf("services' hops: %+v", h)
	}
	if h := hops["monolith"]; h.Hops != 0 || h.Note == "" || h.Insecure {
		t.Errorf("the monolith's hops: %+v", h)
	}
	marked := 1 // its hop row
	for _, row := range s.Rows {
		if row.Insecure != (row.Arch == "services") {
			t.Errorf("row %+v", row)
		}
		if row.Insecure {
			marked++
		}
	}
	md := s.Markdown()
	if n := strings.Count(md, strings.ToUpper(InsecureNote)); n != marked {
		t.Errorf("the insecure architecture marked %d times in\n%s", n, md)
	}
	out := t.TempDir()
	if err := s.WriteFiles(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"security.md", "security.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}
