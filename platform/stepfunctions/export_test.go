package stepfunctions

import "github.com/mitosis-dev/mitosis/shop/orders"

// The interpreter, for the tests of package stepfunctions_test, which run the machine against
// the real functions (services/checkoutstep imports this package, so they cannot be in it).
type (
	TaskInvocation = invocation
	TaskError      = taskError
	Execution_     = execution
)

// Run runs a definition in the interpreter.
func Run(definition []byte, input map[string]any, fn func(TaskInvocation, map[string]any) (any, *TaskError)) (Execution_, error) {
	return run(definition, input, fn)
}

// AfterCatch are the calls made after the first caught failure.
func (e execution) AfterCatch() []string { return e.afterCatch() }

// Calls are the "context.Method" of calls.
func Calls(cs []orders.Call) []string { return calls(cs) }
