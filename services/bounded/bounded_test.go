package bounded_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
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

// EventConsumers are the table's consumers, each once, with a valid name and its subjects
// (define panics if a linked context has no handler for one). They come from the rows, not from
// the linked implementations: a group's binary creates the consumers of the events it
// publishes, whose contexts it may not run (Group.EventConsumers), or the event stream would
// not keep their events.
func TestEventConsumersAreTheTables(t *testing.T) {
	var want []string
	for _, c := range bounded.Table() {
		for _, k := range c.Consumers {
			want = append(want, k.Name)
		}
	}
	var got []string
	for _, k := range bounded.EventConsumers() {
		got = append(got, k.Name)
		if err := natsjs.CheckConsumer(k.Name); err != nil || len(k.Subjects) == 0 {
			t.Errorf("consumer %+v: %v, or no subjects", k, err)
		}
	}
	if !slices.Equal(got, want) || len(got) == 0 || len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
		t.Errorf("event consumers %v, want the table's %v, each once", got, want)
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

// No list of the contexts outside the table. In the non-test Go files, no top-level
// declaration names three or more of them as strings, on one line or across many (a slice,
// a struct per context, a switch, a map's keys, a function that registers each): checked on
// the syntax tree, not line by line, so that a list written one element a line is caught as
// well. A context's own package may name itself and the contexts the table says it calls
// (orders' saga names the context of each of its steps): that is its domain, not a list of
// the shop's contexts; any other it names counts. Nor does any line of the Makefile name
// three or more. The topology files do list contexts: they are placements, the data the
// table is placed by.
func TestNoListOfTheContextsOutsideTheTable(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, l := range contextLists(t, root) {
		t.Errorf("%s (read services/bounded instead)", l)
	}
}

// contextLists returns where, under root, something but the table lists contexts.
func contextLists(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".mitosis", "gen", "testdata", "node_modules":
				return filepath.SkipDir
			}
			if rel == filepath.Join("services", "bounded") {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == "Makefile" {
			found = append(found, makefileLists(t, path)...)
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		found = append(found, goLists(t, path, ownCalls(rel))...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// ownCalls are the contexts a file may name: for a file of shop/<context>/..., that context
// and those the table says it calls; none elsewhere.
func ownCalls(rel string) map[string]bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) < 3 || parts[0] != "shop" {
		return nil
	}
	c, ok := bounded.Lookup(parts[1])
	if !ok {
		return nil
	}
	own := map[string]bool{c.Name: true}
	for _, callee := range c.Calls {
		own[callee] = true
	}
	return own
}

// goLists returns the top-level declarations of the Go file at path that name three or more
// contexts, but for those in own, as string literals.
func goLists(t *testing.T, path string, own map[string]bool) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, decl := range f.Decls {
		var named []string
		ast.Inspect(decl, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if _, isContext := bounded.Lookup(s); err == nil && isContext && !own[s] && !slices.Contains(named, s) {
				named = append(named, s)
			}
			return true
		})
		if len(named) >= 3 {
			found = append(found, fmt.Sprintf("%s: the declaration here names %s", fset.Position(decl.Pos()), strings.Join(named, ", ")))
		}
	}
	return found
}

// makefileLists returns the lines of the Makefile at path (a rule's or a variable's, with
// its continuations) that name three or more contexts; its help comments, examples of
// --split among them, are not lists.
func makefileLists(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	word := regexp.MustCompile(`[a-z]+`)
	var found []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		at, line := i+1, lines[i]
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + lines[i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		var named []string
		for _, w := range word.FindAllString(line, -1) {
			if _, ok := bounded.Lookup(w); ok && !slices.Contains(named, w) {
				named = append(named, w)
			}
		}
		if len(named) >= 3 {
			found = append(found, fmt.Sprintf("%s:%d names %s", path, at, strings.Join(named, ", ")))
		}
	}
	return found
}

// The check above finds a list however it is written, and only a list: it was weaker once
// (three names on one line), and platform/tracecompare's calls of a checkout, one a line,
// passed it.
func TestTheListCheckFindsListsAcrossLines(t *testing.T) {
	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Found: a slice of structs one a line, a switch, a map's keys, a rule of the Makefile.
	write("platform/calls/calls.go", `package calls

var calls = []struct{ method, context string }{
	{"mitosis.orders.v1.OrdersService/Checkout", "orders"},
	{"mitosis.cart.v1.CartService/Get", "cart"},
	{"mitosis.catalog.v1.CatalogService/Get", "catalog"},
}
`)
	write("platform/port/port.go", `package port

func port(name string) int {
	switch name {
	case "catalog":
		return 1
	case "cart":
		return 2
	case "inventory":
		return 3
	}
	return 0
}

var weights = map[string]int{
	"payments": 1,
	"shipping": 2,
	"notify":   3,
}
`)
	write("shop/notify/notify.go", `package notify

var seen = []string{"cart", "catalog", "inventory"}
`)
	write("Makefile", "## run: SPLIT=catalog+inventory,cart+orders+payments runs a split\nrun:\n\tgo run ./x catalog \\\n\t\tcart inventory\n")
	// Not found: names apart in declarations of their own, orders' saga naming what it calls,
	// a test file, help text.
	write("platform/apart/apart.go", `package apart

const first = "catalog"

func second() string { return "cart" + "," + "inventory" }
`)
	write("shop/orders/saga.go", `package orders

var steps = [][2]string{{"cart", "Get"}, {"catalog", "Get"}, {"inventory", "Reserve"}, {"payments", "Charge"}, {"orders", "Record"}}
`)
	write("platform/calls/calls_test.go", `package calls

var all = []string{"catalog", "cart", "inventory", "payments", "orders", "shipping", "notify"}
`)
	got := strings.Join(contextLists(t, root), "\n")
	for _, want := range []string{
		"calls.go:3:1: the declaration here names orders, cart, catalog",
		"port.go:3:1: the declaration here names catalog, cart, inventory",
		"port.go:15:1: the declaration here names payments, shipping, notify",
		"notify.go:3:1: the declaration here names cart, catalog, inventory",
		"Makefile:3 names catalog, cart, inventory",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the check did not find %q; it found:\n%s", want, got)
		}
	}
	if n := len(strings.Split(got, "\n")); n != 5 {
		t.Errorf("the check found %d lists, want 5:\n%s", n, got)
	}
}

// A process makes its own consumers and those of the events it publishes, no others; one
// that neither publishes nor consumes events makes none and opens no event stream.
func TestAGroupMakesItsEventsConsumers(t *testing.T) {
	for group, want := range map[string]string{
		"catalog":                  "",
		"edge":                     "",
		"notify":                   "notify",
		"orders":                   "orders,shipping,notify", // publishes order-paid
		"shipping":                 "orders,shipping,notify", // publishes order-shipped
		"cart+payments":            "",
		"edge+catalog+cart+notify": "notify",
	} {
		g, err := bounded.ParseGroup(group)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range g.EventConsumers() {
			got = append(got, k.Name)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s makes consumers %v, want %s", group, got, want)
		}
		// Here every group that uses events makes a consumer, and no other does.
		if uses := g.UsesEvents(); uses != (want != "") {
			t.Errorf("%s uses events: %v", group, uses)
		}
	}
	var all []string
	for _, k := range bounded.Everything().EventConsumers() {
		all = append(all, k.Name)
	}
	var table []string // from the rows: bounded.EventConsumers is the monolith's
	for _, c := range bounded.Table() {
		for _, k := range c.Consumers {
			table = append(table, k.Name)
		}
	}
	if !slices.Equal(all, table) {
		t.Errorf("the monolith makes consumers %v, want the table's %v", all, table)
	}
}
