package bounded_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// The table holds together: unique names, ports 9101 and up in order, buckets owned by one
// context each, calls to known contexts only and without a cycle, and every code column.
func TestTheTableHoldsTogether(t *testing.T) {
	buckets := map[string]string{}
	seen := map[string]bool{}
	for i, c := range bounded.Table() {
		if seen[c.Name] || c.Name == bounded.EdgeName || strings.ContainsAny(c.Name, "+, ") {
			t.Errorf("row %d: name %q is taken or cannot be written in a split", i, c.Name)
		}
		seen[c.Name] = true
		if c.Port != 9101+i {
			t.Errorf("%s: port %d, want %d (DESIGN.md: 9101 and up, in table order)", c.Name, c.Port, 9101+i)
		}
		if !strings.HasPrefix(c.Service, "mitosis.") || c.ClientConfig() == "" {
			t.Errorf("%s: service %q, client config %q", c.Name, c.Service, c.ClientConfig())
		}
		if c.Weight.CPU <= 0 || c.Weight.Memory <= 0 {
			t.Errorf("%s: weight %+v", c.Name, c.Weight)
		}
		for _, b := range c.Buckets {
			if owner, ok := buckets[b]; ok {
				t.Errorf("bucket %s belongs to %s and %s: a context owns its state", b, owner, c.Name)
			}
			buckets[b] = c.Name
		}
	}
	for _, c := range bounded.Table() {
		for _, callee := range c.Calls {
			if !seen[callee] || callee == c.Name {
				t.Errorf("%s calls %q, which is not another context", c.Name, callee)
			}
		}
		// A context is built after what it calls: a cycle would leave Order without one.
		order := bounded.Order(bounded.Names())
		for _, callee := range c.Calls {
			if slices.Index(order, callee) > slices.Index(order, c.Name) {
				t.Errorf("%s is built before %s, which it calls", c.Name, callee)
			}
		}
	}
	for _, callee := range (bounded.Edge{}).Calls() {
		if !seen[callee] {
			t.Errorf("the edge calls %q, which is no context", callee)
		}
	}
}

func TestNames(t *testing.T) {
	if got := strings.Join(bounded.Names(), ","); got != "catalog,cart,inventory,payments,orders,shipping,notify" {
		t.Errorf("names %s", got)
	}
	if _, ok := bounded.Lookup("warehouse"); ok {
		t.Error("Lookup found a context that does not exist")
	}
	if g := bounded.Everything(); !g.Whole() || !g.Edge || g.Name() != "monolith" {
		t.Errorf("everything: %+v named %s", g, g.Name())
	}
}

// No list of the contexts outside the table: no non-test Go file names three or more of them
// as strings on one line (a slice, a switch, a map's keys). Everything reads the table.
func TestNoListOfTheContextsOutsideTheTable(t *testing.T) {
	root := filepath.Join("..", "..")
	quoted := make([]string, 0, len(bounded.Names()))
	for _, n := range bounded.Names() {
		quoted = append(quoted, strconv.Quote(n))
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".mitosis", "gen", "testdata", "node_modules":
				return filepath.SkipDir
			}
			if rel, _ := filepath.Rel(root, path); rel == filepath.Join("services", "bounded") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			n := 0
			for _, q := range quoted {
				if strings.Contains(line, q) {
					n++
				}
			}
			if n >= 3 {
				t.Errorf("%s:%d lists contexts: %s (read services/bounded instead)", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
