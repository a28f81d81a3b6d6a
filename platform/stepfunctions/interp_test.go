package stepfunctions

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// A small interpreter of the Amazon States Language subset the checkout uses (JSONPath
// flavour): Task states invoking Lambda functions (lambda:invoke, Parameters with
// FunctionName and a Payload whose "key.$" fields are paths), ResultSelector, ResultPath,
// Retry (in order, first match, MaxAttempts, States.ALL), Catch (in order, first match,
// ResultPath), Next and End; Fail (Error or ErrorPath) and Succeed. It reads the JSON as
// generic values, not through this package's types, so that it sees what AWS would. Waits
// between retries are not slept: only their count matters here.

// invocation is one Task's call of a function.
type invocation struct {
	State    string
	Function string // the FunctionName
	Call     string // the payload's "call"
	Attempt  int    // 1 for the first
}

// taskError is a failed invocation: the error's name and cause, as Step Functions gets
// them from a Lambda function (errorType, errorMessage).
type taskError struct{ Name, Cause string }

func (e *taskError) Error() string { return e.Name + ": " + e.Cause }

// function is the fake of every Lambda function: it answers one invocation.
type function func(inv invocation, payload map[string]any) (any, *taskError)

// execution is what running the machine did.
type execution struct {
	Invocations []invocation
	CaughtAt    int    // index in Invocations of the first invocation after the first Catch; -1 if none
	End         string // the terminal state
	Status      string // "SUCCEEDED" or "FAILED"
	Error       string // the execution's error, when FAILED
}

// afterCatch are the calls made after the first caught failure, a retried call's repeats not
// counted (they come before the Catch).
func (e execution) afterCatch() []string {
	if e.CaughtAt < 0 {
		return nil
	}
	var out []string
	for _, inv := range e.Invocations[e.CaughtAt:] {
		out = append(out, inv.Call)
	}
	return out
}

// maxTransitions bounds a run: a machine that loops fails the test rather than hang it.
const maxTransitions = 1000

func run(definition []byte, input map[string]any, fn function) (execution, error) {
	var sm struct {
		StartAt string
		States  map[string]map[string]any
	}
	if err := json.Unmarshal(definition, &sm); err != nil {
		return execution{}, err
	}
	ex := execution{CaughtAt: -1}
	var data any = input
	name := sm.StartAt
	for range maxTransitions {
		st, ok := sm.States[name]
		if !ok {
			return ex, fmt.Errorf("no state %q", name)
		}
		switch st["Type"] {
		case "Succeed":
			ex.End, ex.Status = name, "SUCCEEDED"
			return ex, nil
		case "Fail":
			ex.End, ex.Status = name, "FAILED"
			if p, ok := st["ErrorPath"].(string); ok {
				v, err := get(data, p)
				if err != nil {
					return ex, fmt.Errorf("%s: ErrorPath: %w", name, err)
				}
				ex.Error, _ = v.(string)
			} else {
				ex.Error, _ = st["Error"].(string)
			}
			return ex, nil
		case "Task":
			next, out, err := task(name, st, data, fn, &ex)
			if err != nil {
				return ex, fmt.Errorf("%s: %w", name, err)
			}
			if next == "" {
				ex.End, ex.Status = name, "SUCCEEDED" // End: true
				return ex, nil
			}
			data, name = out, next
		default:
			return ex, fmt.Errorf("%s: type %v is outside the subset", name, st["Type"])
		}
	}
	return ex, fmt.Errorf("no end after %d transitions", maxTransitions)
}

// task runs a Task state and returns the next state ("" for End) and its output.
func task(name string, st map[string]any, data any, fn function, ex *execution) (string, any, error) {
	if st["Resource"] != "arn:aws:states:::lambda:invoke" {
		return "", nil, fmt.Errorf("resource %v is outside the subset", st["Resource"])
	}
	params, ok := st["Parameters"].(map[string]any)
	if !ok {
		return "", nil, fmt.Errorf("no Parameters")
	}
	fnName, _ := params["FunctionName"].(string)
	payload, err := resolve(params["Payload"], data)
	if err != nil {
		return "", nil, fmt.Errorf("Payload: %w", err)
	}
	pm, _ := payload.(map[string]any)
	call, _ := pm["call"].(string)
	retriers, _ := st["Retry"].([]any)
	retried := make([]int, len(retriers))
	for attempt := 1; ; attempt++ {
		inv := invocation{State: name, Function: fnName, Call: call, Attempt: attempt}
		ex.Invocations = append(ex.Invocations, inv)
		result, terr := fn(inv, pm)
		if terr == nil {
			out, err := place(st, data, map[string]any{"Payload": result, "StatusCode": 200.0})
			if err != nil {
				return "", nil, err
			}
			if end, _ := st["End"].(bool); end {
				return "", out, nil
			}
			next, _ := st["Next"].(string)
			return next, out, nil
		}
		if i := match(retriers, terr.Name); i >= 0 {
			r := retriers[i].(map[string]any)
			limit := 3 // the language's default
			if v, ok := r["MaxAttempts"].(float64); ok {
				limit = int(v)
			}
			if retried[i] < limit {
				retried[i]++
				continue
			}
		}
		catchers, _ := st["Catch"].([]any)
		i := match(catchers, terr.Name)
		if i < 0 {
			return "", nil, fmt.Errorf("uncaught %s", terr.Name) // the execution fails
		}
		c := catchers[i].(map[string]any)
		out := data
		if rp, ok := c["ResultPath"].(string); ok {
			if out, err = set(data, rp, map[string]any{"Error": terr.Name, "Cause": terr.Cause}); err != nil {
				return "", nil, err
			}
		}
		if ex.CaughtAt < 0 {
			ex.CaughtAt = len(ex.Invocations)
		}
		next, _ := c["Next"].(string)
		return next, out, nil
	}
}

// match returns the index of the first retrier or catcher whose ErrorEquals names name (or
// States.ALL), or -1.
func match(entries []any, name string) int {
	for i, e := range entries {
		m, _ := e.(map[string]any)
		errs, _ := m["ErrorEquals"].([]any)
		for _, n := range errs {
			if n == name || n == "States.ALL" {
				return i
			}
		}
	}
	return -1
}

// place applies ResultSelector and ResultPath: the state's output.
func place(st map[string]any, data, result any) (any, error) {
	if sel, ok := st["ResultSelector"]; ok {
		var err error
		if result, err = resolve(sel, result); err != nil {
			return nil, fmt.Errorf("ResultSelector: %w", err)
		}
	}
	rp, ok := st["ResultPath"].(string)
	if !ok {
		return result, nil // the default, "$": the result replaces the input
	}
	return set(data, rp, result)
}

// resolve is a payload template: fields named "key.$" take the value at their path in data.
func resolve(tmpl, data any) (any, error) {
	m, ok := tmpl.(map[string]any)
	if !ok {
		return tmpl, nil
	}
	out := map[string]any{}
	for k, v := range m {
		if key, ok := strings.CutSuffix(k, ".$"); ok {
			p, _ := v.(string)
			got, err := get(data, p)
			if err != nil {
				return nil, err
			}
			out[key] = got
			continue
		}
		r, err := resolve(v, data)
		if err != nil {
			return nil, err
		}
		out[k] = r
	}
	return out, nil
}

// fields splits a reference path of the subset ("$" or "$.a.b") into its fields.
func fields(path string) ([]string, error) {
	if path == "$" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(path, "$.")
	if !ok || rest == "" || strings.ContainsAny(rest, "[]*@") {
		return nil, fmt.Errorf("path %q is outside the subset", path)
	}
	return strings.Split(rest, "."), nil
}

func get(data any, path string) (any, error) {
	fs, err := fields(path)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		m, ok := data.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("path %s: %q is not in an object", path, f)
		}
		if data, ok = m[f]; !ok {
			return nil, fmt.Errorf("path %s: no field %q", path, f)
		}
	}
	return data, nil
}

// set returns a copy of data with v at path, creating the objects on the way.
func set(data any, path string, v any) (any, error) {
	fs, err := fields(path)
	if err != nil {
		return nil, err
	}
	return setIn(data, fs, v, path)
}

func setIn(data any, fs []string, v any, path string) (any, error) {
	if len(fs) == 0 {
		return v, nil
	}
	m, ok := data.(map[string]any)
	if data != nil && !ok {
		return nil, fmt.Errorf("ResultPath %s: %q is not in an object", path, fs[0])
	}
	out := map[string]any{}
	for k, x := range m {
		out[k] = x
	}
	inner, err := setIn(out[fs[0]], fs[1:], v, path)
	if err != nil {
		return nil, err
	}
	out[fs[0]] = inner
	return out, nil
}

// calls are the "context.Method" of a list of orders.Call-like values.
func calls[T fmt.Stringer](cs []T) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return slices.Clip(out)
}
