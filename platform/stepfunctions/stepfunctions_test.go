package stepfunctions

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/sagatest"
)

const testRegion, testAccount = "eu-west-3", "210987654321"

func render(t *testing.T) []byte {
	t.Helper()
	b, err := Render(testRegion, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The fields each state type of the subset may have (the specification's table of fields
// by state type), and the top level's.
var (
	topFields   = []string{"Comment", "StartAt", "States", "TimeoutSeconds", "Version"}
	stateFields = map[string][]string{
		"Task": {"Type", "Comment", "Resource", "Parameters", "ResultSelector", "ResultPath", "InputPath", "OutputPath",
			"TimeoutSeconds", "HeartbeatSeconds", "Retry", "Catch", "Next", "End"},
		"Fail":    {"Type", "Comment", "Error", "Cause", "ErrorPath", "CausePath"},
		"Succeed": {"Type", "Comment", "InputPath", "OutputPath"},
	}
	// predefined are the error names of the language a machine may name (appendix A).
	predefined = []string{"States.ALL", "States.Timeout", "States.TaskFailed", "States.Permissions", "States.HeartbeatTimeout",
		"States.ResultPathMatchFailure", "States.ParameterPathFailure", "States.Runtime"}
)

// validate checks a definition against the structure the language requires, for the
// subset used: it returns every violation it finds.
func validate(def []byte) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	var top map[string]any
	if err := json.Unmarshal(def, &top); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	for k := range top {
		if !slices.Contains(topFields, k) {
			fail("top level: unknown field %s", k)
		}
	}
	start, _ := top["StartAt"].(string)
	states, _ := top["States"].(map[string]any)
	if len(states) == 0 {
		return append(bad, "no States")
	}
	if _, ok := states[start]; !ok {
		fail("StartAt %q names no state", start)
	}
	edges := map[string][]string{}
	for name, raw := range states {
		if len(name) == 0 || len(name) > 80 {
			fail("state name %q: 1 to 80 characters", name)
		}
		st, ok := raw.(map[string]any)
		if !ok {
			fail("%s: not an object", name)
			continue
		}
		typ, _ := st["Type"].(string)
		allowed, ok := stateFields[typ]
		if !ok {
			fail("%s: Type %q outside the subset", name, typ)
			continue
		}
		for k := range st {
			if !slices.Contains(allowed, k) {
				fail("%s: field %s not allowed in a %s state", name, k, typ)
			}
		}
		next, hasNext := st["Next"].(string)
		end, _ := st["End"].(bool)
		switch typ {
		case "Task":
			if hasNext == end {
				fail("%s: a Task has exactly one of Next and End: true", name)
			}
			if hasNext {
				edges[name] = append(edges[name], next)
			}
			if r, _ := st["Resource"].(string); !strings.HasPrefix(r, "arn:") {
				fail("%s: Resource %q is not an ARN", name, r)
			}
			if p, ok := st["Parameters"]; ok {
				checkPaths(name+": Parameters", p, fail)
			}
			if p, ok := st["ResultSelector"]; ok {
				checkPaths(name+": ResultSelector", p, fail)
			}
			if v, ok := st["TimeoutSeconds"].(float64); ok && (v < 1 || v != float64(int(v))) {
				fail("%s: TimeoutSeconds %v: a positive integer", name, v)
			}
			checkErrorLists(name, "Retry", st["Retry"], fail, func(m map[string]any) {
				if v, ok := m["MaxAttempts"].(float64); ok && (v < 0 || v != float64(int(v))) {
					fail("%s: Retry: MaxAttempts %v: a non-negative integer", name, v)
				}
				if v, ok := m["BackoffRate"].(float64); ok && v < 1 {
					fail("%s: Retry: BackoffRate %v: at least 1", name, v)
				}
			})
			checkErrorLists(name, "Catch", st["Catch"], fail, func(m map[string]any) {
				n, ok := m["Next"].(string)
				if !ok {
					fail("%s: a Catcher without Next", name)
				}
				edges[name] = append(edges[name], n)
			})
		default: // terminal
			if hasNext || end {
				fail("%s: a %s state is terminal: no Next, no End", name, typ)
			}
			for _, pair := range [][2]string{{"Error", "ErrorPath"}, {"Cause", "CausePath"}} {
				if _, a := st[pair[0]]; a {
					if _, b := st[pair[1]]; b {
						fail("%s: %s and %s both", name, pair[0], pair[1])
					}
				}
			}
		}
	}
	for from, tos := range edges {
		for _, to := range tos {
			if _, ok := states[to]; !ok {
				fail("%s: Next %q names no state", from, to)
			}
		}
	}
	// Every state reachable from StartAt, and no cycle: every execution ends.
	seen := map[string]bool{}
	onPath := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if onPath[n] {
			fail("cycle through %s", n)
			return
		}
		if seen[n] {
			return
		}
		seen[n], onPath[n] = true, true
		for _, to := range edges[n] {
			visit(to)
		}
		onPath[n] = false
	}
	visit(start)
	for name := range states {
		if !seen[name] {
			fail("%s: unreachable from StartAt", name)
		}
	}
	slices.Sort(bad)
	return bad
}

// checkPaths: a field named "key.$" holds a path ("$..."), at any depth.
func checkPaths(where string, v any, fail func(string, ...any)) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, x := range m {
		if strings.HasSuffix(k, ".$") {
			if s, ok := x.(string); !ok || !strings.HasPrefix(s, "$") {
				fail("%s: %s = %v is not a path", where, k, x)
			}
			continue
		}
		checkPaths(where, x, fail)
	}
}

// checkErrorLists checks a Retry or Catch: non-empty ErrorEquals, States.ALL alone and in
// the last entry, no made-up States.* names; each entry goes to more.
func checkErrorLists(name, field string, v any, fail func(string, ...any), more func(map[string]any)) {
	if v == nil {
		return
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		fail("%s: %s is not a non-empty array", name, field)
		return
	}
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			fail("%s: %s[%d] is not an object", name, field, i)
			continue
		}
		errs, _ := m["ErrorEquals"].([]any)
		if len(errs) == 0 {
			fail("%s: %s[%d]: empty ErrorEquals", name, field, i)
		}
		for _, x := range errs {
			s, _ := x.(string)
			switch {
			case s == "States.ALL" && (len(errs) != 1 || i != len(list)-1):
				fail("%s: %s[%d]: States.ALL must be alone, in the last entry", name, field, i)
			case strings.HasPrefix(s, "States.") && !slices.Contains(predefined, s):
				fail("%s: %s[%d]: %s is not a predefined error", name, field, i, s)
			case s == "":
				fail("%s: %s[%d]: empty error name", name, field, i)
			}
		}
		more(m)
	}
}

// TestDefinitionIsValidASL: the rendered machine has the structure the language requires
// (StartAt names a state, every Next and Catch names one, terminal states are terminal,
// every state reachable, no cycle, Retry and Catch well formed), and the checks catch
// breaches of each.
func TestDefinitionIsValidASL(t *testing.T) {
	def := render(t)
	if bad := validate(def); len(bad) != 0 {
		t.Fatalf("the rendered machine breaks the language:\n%s", strings.Join(bad, "\n"))
	}
	// The validator is not blind: each breach below is reported.
	for _, c := range []struct {
		want   string
		breach func(sm map[string]any)
	}{
		{"StartAt", func(sm map[string]any) { sm["StartAt"] = "Nowhere" }},
		{"names no state", func(sm map[string]any) { state(sm, "Reserve")["Next"] = "Nowhere" }},
		{"unreachable", func(sm map[string]any) { state(sm, "Reserve")["Next"] = "AddToHistory" }}, // skips Charge
		{"terminal", func(sm map[string]any) { state(sm, Failed)["Next"] = Paid }},
		{"exactly one of Next and End", func(sm map[string]any) { state(sm, "Price")["End"] = true }},
		{"States.ALL must be alone", func(sm map[string]any) {
			c := state(sm, "Charge")["Catch"].([]any)
			slices.Reverse(c)
		}},
		{"cycle", func(sm map[string]any) { state(sm, UndoState("Reserve"))["Next"] = UndoState("Charge") }},
		{"not allowed", func(sm map[string]any) { state(sm, Paid)["Cause"] = "x" }},
	} {
		var sm map[string]any
		if err := json.Unmarshal(def, &sm); err != nil {
			t.Fatal(err)
		}
		c.breach(sm)
		b, err := json.Marshal(sm)
		if err != nil {
			t.Fatal(err)
		}
		if bad := validate(b); !slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, c.want) }) {
			t.Errorf("breach %q not reported: %v", c.want, bad)
		}
	}
}

func state(sm map[string]any, name string) map[string]any {
	return sm["States"].(map[string]any)[name].(map[string]any)
}

// TestEveryStepHasItsCompensationPath: from every step of the rendered machine, a failure
// is caught and compensated as compensationPaths requires; and the check is not blind: a
// machine with a compensation left out, or with two compensations in the wrong order, is
// reported (the planted mistakes).
func TestEveryStepHasItsCompensationPath(t *testing.T) {
	def := render(t)
	if errs := compensationPaths(def); len(errs) != 0 {
		t.Fatalf("the rendered machine:\n%v", errors.Join(errs...))
	}
	for _, c := range []struct {
		name    string
		mistake func(states map[string]any)
		want    []string // in one reported error
	}{
		{"refund left out", func(states map[string]any) { bypass(states, UndoState("Charge")) },
			[]string{"step Charge, States.ALL: compensated by [inventory.Release], want [payments.Refund inventory.Release]"}},
		{"release left out", func(states map[string]any) { bypass(states, UndoState("Reserve")) },
			[]string{"step Reserve, States.ALL: compensated by [], want [inventory.Release]"}},
		{"release before refund", func(states map[string]any) {
			// The two compensations' states trade their calls: the chain from Charge runs
			// the release first.
			refund, release := states[UndoState("Charge")].(map[string]any), states[UndoState("Reserve")].(map[string]any)
			refund["Parameters"], release["Parameters"] = release["Parameters"], refund["Parameters"]
		}, []string{"step Charge, States.ALL: compensated by [inventory.Release payments.Refund], want [payments.Refund inventory.Release]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sm map[string]any
			if err := json.Unmarshal(def, &sm); err != nil {
				t.Fatal(err)
			}
			c.mistake(sm["States"].(map[string]any))
			b, err := json.Marshal(sm)
			if err != nil {
				t.Fatal(err)
			}
			// Still a well-formed machine: only the compensation check can tell.
			if bad := validate(b); len(bad) != 0 {
				t.Fatalf("the mistake broke the language, not the compensations: %v", bad)
			}
			errs := compensationPaths(b)
			for _, want := range c.want {
				if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), want) }) {
					t.Errorf("not reported: %q; reported:\n%v", want, errors.Join(errs...))
				}
			}
		})
	}
}

// bypass removes the state name from states, and sends whatever led to it to its Next.
func bypass(states map[string]any, name string) {
	next := states[name].(map[string]any)["Next"]
	delete(states, name)
	for _, v := range states {
		st := v.(map[string]any)
		if st["Next"] == name {
			st["Next"] = next
		}
		catches, _ := st["Catch"].([]any)
		for _, c := range catches {
			if c := c.(map[string]any); c["Next"] == name {
				c["Next"] = next
			}
		}
	}
}

// compensationPaths checks a definition's compensations against the list of steps: from
// every step, a failure (any error, and each error the step names) is caught, and the states
// it leads to call the undo of every step done before it (of itself too unless the error says
// it did nothing), last first, then stop in a Fail state. It returns an error for each
// breach.
func compensationPaths(def []byte) []error {
	var sm struct {
		StartAt string
		States  map[string]State
	}
	if err := json.Unmarshal(def, &sm); err != nil {
		return []error{err}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	steps := orders.Steps()
	if sm.StartAt != steps[0].Name {
		fail("StartAt %s, want the first step %s", sm.StartAt, steps[0].Name)
	}
	for i, s := range steps {
		st, ok := sm.States[s.Name]
		if !ok || st.Type != "Task" || st.Parameters == nil {
			fail("step %s: no Task state", s.Name)
			continue
		}
		if st.Parameters.Payload.Call != s.Call.String() || st.Parameters.FunctionName != FunctionARN(testRegion, testAccount, s.Call.Context) {
			fail("step %s calls %s on %s, want %s on %s's function", s.Name, st.Parameters.Payload.Call, st.Parameters.FunctionName, s.Call, s.Call.Context)
		}
		want := Paid
		if i+1 < len(steps) {
			want = steps[i+1].Name
		}
		if st.Next != want {
			fail("step %s: Next %s, want %s", s.Name, st.Next, want)
		}
		names := []string{"States.ALL"}
		for _, e := range append(slices.Clone(s.NothingDone), s.Abort...) {
			names = append(names, e.Name)
		}
		for _, name := range names {
			var to string
			for _, c := range st.Catch {
				if slices.Contains(c.ErrorEquals, name) || slices.Contains(c.ErrorEquals, "States.ALL") {
					to = c.Next
					break
				}
			}
			if to == "" {
				fail("step %s: %s is not caught", s.Name, name)
				continue
			}
			// The undos a failure with name should run, from the list.
			var want []string
			switch {
			case s.Phase == orders.Compensate:
				for j := i; j >= 0; j-- {
					nothing := j == i && slices.ContainsFunc(s.NothingDone, func(e orders.Error) bool { return e.Name == name })
					if !steps[j].Undo.IsZero() && !nothing {
						want = append(want, steps[j].Undo.String())
					}
				}
			case name != "States.ALL": // an Abort: every undo
				for j := len(steps) - 1; j >= 0; j-- {
					if steps[j].Phase == orders.Compensate && !steps[j].Undo.IsZero() {
						want = append(want, steps[j].Undo.String())
					}
				}
			}
			got := []string{}
			for n := 0; n < len(sm.States) && sm.States[to].Type == "Task"; n++ {
				got = append(got, sm.States[to].Parameters.Payload.Call)
				to = sm.States[to].Next
			}
			if sm.States[to].Type != "Fail" {
				fail("step %s, %s: the compensations end in %s (%s), want a Fail state", s.Name, name, to, sm.States[to].Type)
			}
			if !slices.Equal(got, want) {
				fail("step %s, %s: compensated by %v, want %v", s.Name, name, got, want)
			}
		}
	}
	return errs
}

// errorName is the name Step Functions gives c's failure: the domain error's, which the
// step's function reports as its error type, or, for a peer that does not answer, the
// Task's timeout.
func errorName(c sagatest.Case) string {
	if c.Name == "" {
		return "States.Timeout"
	}
	return c.Name
}

// fakes answers every call as its context would, but fails the calls of the step c names
// with c's error, every time (a peer that stays down, a card that stays declined).
func fakes(c sagatest.Case) function {
	return func(inv invocation, payload map[string]any) (any, *taskError) {
		if inv.State == c.Step {
			return nil, &taskError{Name: errorName(c), Cause: "injected by the test"}
		}
		return map[string]any{"ok": inv.Call}, nil
	}
}

// TestFailureAtEachStepCompensatesAsOrdersDoes runs the machine, in the interpreter, with a
// failure at each step, and checks that the calls it makes once the failure is caught are
// exactly, in order, those the real orders saga makes after the same failure (sagatest:
// the saga run over memory stores, with a peer down, a card declined, a product out of
// stock, a reservation lapsed). It also checks how each execution ends: compensated ones
// fail with the step's error, paid ones are left to a redrive, none succeeds.
func TestFailureAtEachStepCompensatesAsOrdersDoes(t *testing.T) {
	def := render(t)
	input := map[string]any{"key": "key-1", "order_id": "ord-1", "user_id": "u-ada"}
	for _, c := range sagatest.Cases() {
		t.Run(c.String(), func(t *testing.T) {
			saga := sagatest.Run(t, c)
			want := calls(saga.Compensations())
			ex, err := run(def, input, fakes(c))
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			for _, inv := range ex.Invocations {
				ctx, _, _ := strings.Cut(inv.Call, ".")
				if inv.Function != FunctionARN(testRegion, testAccount, ctx) {
					t.Errorf("%s calls %s on %s, not on %s's function", inv.State, inv.Call, inv.Function, ctx)
				}
			}
			got := ex.afterCatch()
			if !slices.Equal(got, want) {
				t.Errorf("after the failure the machine called %v, orders %v", got, want)
			}
			switch {
			case ex.Status != "FAILED":
				t.Errorf("the execution ended %s in %s, want FAILED", ex.Status, ex.End)
			case ex.End == NotFinished:
				if len(want) != 0 {
					t.Errorf("left to a redrive after compensating %v", want)
				}
			case ex.End != Failed || ex.Error != errorName(c):
				t.Errorf("the execution ended in %s with %q, want %s with %q", ex.End, ex.Error, Failed, errorName(c))
			}
		})
	}
}

// TestHappyPathCallsEveryStepOnce: with nothing failing, the machine calls every step once,
// in the list's order, and succeeds.
func TestHappyPathCallsEveryStepOnce(t *testing.T) {
	ex, err := run(render(t), map[string]any{}, fakes(sagatest.Case{}))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range orders.Steps() {
		want = append(want, s.Call.String())
	}
	var got []string
	for _, inv := range ex.Invocations {
		got = append(got, inv.Call)
	}
	if ex.Status != "SUCCEEDED" || ex.End != Paid || !slices.Equal(got, want) {
		t.Errorf("%s in %s after %v, want SUCCEEDED in %s after %v", ex.Status, ex.End, got, Paid, want)
	}
}

// The interpreter itself: retries count per retrier and stop at MaxAttempts (0: none), the
// first matching Catch wins and puts the error at its ResultPath, a Fail state's ErrorPath
// reads it, an uncaught error is an error.
func TestInterpreter(t *testing.T) {
	def := []byte(`{"StartAt": "A", "States": {
	  "A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	        "Parameters": {"FunctionName": "f", "Payload": {"call": "x.A", "in.$": "$.n"}},
	        "ResultSelector": {"v.$": "$.Payload"}, "ResultPath": "$.a",
	        "Retry": [{"ErrorEquals": ["Fatal"], "MaxAttempts": 0}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
	        "Catch": [{"ErrorEquals": ["Fatal"], "ResultPath": "$.error", "Next": "F"},
	                  {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "B"}],
	        "Next": "S"},
	  "B": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	        "Parameters": {"FunctionName": "g", "Payload": {"call": "y.B"}}, "ResultPath": "$.b", "Next": "F"},
	  "F": {"Type": "Fail", "ErrorPath": "$.error.Error"},
	  "S": {"Type": "Succeed"}}}`)
	for _, c := range []struct {
		fail      string // the error A gives
		attempts  int
		end, err  string
		afterCaug []string
	}{
		{"", 1, "S", "", nil},
		{"Fatal", 1, "F", "Fatal", []string{}},
		{"Flaky", 3, "F", "Flaky", []string{"y.B"}},
	} {
		ex, err := run(def, map[string]any{"n": 1.0}, func(inv invocation, p map[string]any) (any, *taskError) {
			if inv.Call == "x.A" && p["in"] != 1.0 {
				t.Errorf("payload %v, want in = 1", p)
			}
			if inv.Call == "x.A" && c.fail != "" {
				return nil, &taskError{Name: c.fail}
			}
			return "ok", nil
		})
		if err != nil {
			t.Fatalf("%q: %v", c.fail, err)
		}
		n := 0
		for _, inv := range ex.Invocations {
			if inv.Call == "x.A" {
				n++
			}
		}
		if got := ex.afterCatch(); n != c.attempts || ex.End != c.end || ex.Error != c.err || (c.afterCaug != nil && !slices.Equal(got, c.afterCaug)) {
			t.Errorf("%q: %d attempts, end %s, error %q, after catch %v; want %d, %s, %q, %v", c.fail, n, ex.End, ex.Error, got, c.attempts, c.end, c.err, c.afterCaug)
		}
	}
	if _, err := run([]byte(`{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
	  "Parameters": {"FunctionName": "f", "Payload": {}}, "End": true}}}`), nil,
		func(invocation, map[string]any) (any, *taskError) { return nil, &taskError{Name: "Boom"} }); err == nil || !strings.Contains(err.Error(), "uncaught Boom") {
		t.Errorf("uncaught error: %v", err)
	}
}

// TestCheckedInMachine: the file in the repository has the language's structure too (that
// it is this rendering, platform/manifests' drift test says).
func TestCheckedInMachine(t *testing.T) {
	got, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(Path)))
	if err != nil {
		t.Fatal(err)
	}
	if bad := validate(got); len(bad) != 0 {
		t.Errorf("%s breaks the language:\n%s", Path, strings.Join(bad, "\n"))
	}
}

// TestSequentialEquivalent: the check that rendering concurrent steps one after another
// keeps orders' compensations accepts orders' list and refuses a group whose later step
// has an undo, or a group across the pivot.
func TestSequentialEquivalent(t *testing.T) {
	if err := SequentialEquivalent(orders.Steps()); err != nil {
		t.Fatalf("orders' steps: %v", err)
	}
	grouped := false
	for _, s := range orders.Steps() {
		grouped = grouped || s.WithPrevious
	}
	if !grouped {
		t.Error("orders runs no steps at the same time: the check checks nothing")
	}
	undo := orders.Call{Context: "payments", Method: "Refund"}
	for _, c := range []struct {
		name  string
		steps []orders.Step
	}{
		{"undo after the first", []orders.Step{
			{Name: "A", Phase: orders.Compensate},
			{Name: "B", Phase: orders.Compensate, Undo: undo, WithPrevious: true},
		}},
		{"across the pivot", []orders.Step{
			{Name: "A", Phase: orders.Compensate},
			{Name: "B", Phase: orders.RollForward, WithPrevious: true},
		}},
		{"first", []orders.Step{{Name: "A", Phase: orders.Compensate, WithPrevious: true}}},
	} {
		if err := SequentialEquivalent(c.steps); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	ok := []orders.Step{
		{Name: "A", Phase: orders.Compensate, Undo: undo},
		{Name: "B", Phase: orders.Compensate, WithPrevious: true},
		{Name: "C", Phase: orders.RollForward},
		{Name: "D", Phase: orders.RollForward, WithPrevious: true},
	}
	if err := SequentialEquivalent(ok); err != nil {
		t.Errorf("undo on a group's first step: %v", err)
	}
}
