package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/advise"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// copyRun copies a recorded run of platform/advise's testdata into a folder of its own, so
// that advise writes its page and topology file there.
func copyRun(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(repoRoot(t), "platform", "advise", "testdata", name)
	dst := filepath.Join(t.TempDir(), "loadtest", "out", "20261204-000000-"+name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// advise on a recorded run: the table names the model, the check and the recommendation
// with its --split; --json is the whole report; the page and the topology file land in the
// run's folder, and the topology file is one mitosis up reads.
func TestAdviseOnARecordedRun(t *testing.T) {
	run, hop := copyRun(t, "run"), copyRun(t, "hop")
	root := repoRoot(t)
	code, out, errOut := runCLI(t, "advise", "--root", root, "--run", run, "--check", hop, "--max-groups", "3", "--objective", "balanced")
	if code != exitOK {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"model: CPU/req = monolith's", "the model's check", "Bell(7) = 877", "recommended (objective balanced)",
		"mitosis up -t monolith --split '", "edge→catalog", "orders→payments", "shop.events.order-paid"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	page, err := os.ReadFile(filepath.Join(run, "advise.html"))
	if err != nil || !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "Pareto front") {
		t.Errorf("advise.html: %v", err)
	}
	f, err := topology.ReadFile(filepath.Join(run, "advised.yaml"))
	if err != nil || len(f.Groups) < 2 {
		t.Errorf("advised.yaml: %+v, %v", f, err)
	}

	code, out, errOut = runCLI(t, "advise", "--root", root, "--run", run, "--json", "--isolate", "payments", "--together", "cart,orders",
		"--max-groups", "4", "--objective", "cpu", "--html", "none", "--topology-out", "none")
	if code != exitOK {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var rep struct {
		Search struct {
			Objective   string `json:"objective"`
			Recommended struct {
				Split  string `json:"split"`
				Groups int    `json:"groups"`
			} `json:"recommended"`
			Front []json.RawMessage `json:"pareto_front"`
		} `json:"search"`
		Graph struct {
			Calls []struct {
				From, To  string
				PerSecond float64 `json:"per_second"`
			} `json:"calls"`
		} `json:"graph"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rec := rep.Search.Recommended
	if rep.Search.Objective != "cpu" || rec.Groups > 4 || len(rep.Search.Front) == 0 || len(rep.Graph.Calls) == 0 {
		t.Errorf("report %+v", rep)
	}
	if rec.Split != advise.Monolith {
		groups := strings.Split(rec.Split, ",")
		if !strings.Contains(rec.Split, ",payments,") && !strings.HasSuffix(rec.Split, ",payments") && !strings.HasPrefix(rec.Split, "payments,") {
			t.Errorf("%s: payments not alone", rec.Split)
		}
		for _, g := range groups {
			if strings.Contains(g, "cart") != strings.Contains(g, "orders") {
				t.Errorf("%s: cart and orders apart", rec.Split)
			}
		}
	}
}

// Bad input is refused with exit 2 and says why; a run without traces says how to get one.
func TestAdviseBadInput(t *testing.T) {
	run := copyRun(t, "run")
	root := repoRoot(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--objective", "fast"}, "objective"},
		{[]string{"--isolate", "billing"}, "unknown context"},
		{[]string{"--together", "cart"}, "at least two"},
		{[]string{"--name", "a/b"}, "--name"},
		{[]string{"--verify-repeats", "-1"}, "--verify-repeats"},
	} {
		code, _, errOut := runCLI(t, append([]string{"advise", "--root", root, "--run", run}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	empty := t.TempDir()
	code, _, errOut := runCLI(t, "advise", "--root", empty, "--state", t.TempDir())
	if code != exitUsage || !strings.Contains(errOut, "no load-test run with traces") {
		t.Errorf("no run: exit %d, %q", code, errOut)
	}
	if err := os.Remove(filepath.Join(run, advise.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "advise", "--root", root, "--run", run)
	if code != exitFailure || !strings.Contains(errOut, "keeps no traces") {
		t.Errorf("a run without traces: exit %d, %q", code, errOut)
	}
}
