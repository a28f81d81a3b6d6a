// Package stepfunctions renders the checkout saga as an AWS Step Functions state machine, in
// Amazon States Language (https://states-language.net/spec.html, JSONPath flavour), from the
// very list of steps the orders context runs (orders.Steps, orders.Compensations): the
// Compensate steps as Tasks, each with a Catch into the chain of compensations of the steps
// already done, last first, which ends in a Fail state; the RollForward steps as Tasks
// retried until they succeed, whose Abort errors lead into the same chain. platform/manifests
// writes it to deploy/stepfunctions/checkout.asl.json, under its drift test.
//
// Every Task invokes a Lambda function of the context it calls (lambda:invoke, the function's
// ARN a parameter of the Task): the contexts speak gRPC, which an HTTP Task cannot call, and
// a Lambda function's error type reaches the Catch as the error's name, so a declined card
// (payments.ErrDeclined) is told from a peer that did not answer. Invocation is what those
// functions take; services/checkoutstep serves it, platform/manifests renders the functions
// (FunctionName), and deploy/README.md says how to deploy them and the state machine.
//
// Steps that orders runs at the same time (orders.Step.WithPrevious: Commit with
// AddToHistory, RecordOrder with RemoveBought and PublishOrderPaid) are rendered one after
// another, in the list's order, rather than as a Parallel state: the machine stays within
// Task, Fail and Succeed, and its compensations are the same as orders'. A failure in a
// group leads orders to undo every step of it that may have done something; the machine,
// which has not run the steps after the failed one yet, undoes those before it. The two are
// the same calls as long as no step but a group's first has an undo (SequentialEquivalent,
// which Machine checks): the steps after it then have nothing to undo, whether they ran or
// not. RollForward groups are retried step by step until each succeeds, which is what
// orders' repeated roll-forward comes to; only their Abort errors compensate, in full,
// whatever ran with them. What the order costs is latency, which a Step Functions execution
// does not count in store round trips.
//
// It renders a file; it does not talk to AWS.
package stepfunctions

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mitosis-dev/mitosis/shop/orders"
)

// Path is where the state machine goes, relative to the repository root.
const Path = "deploy/stepfunctions/checkout.asl.json"

// Names of the states that are not steps.
const (
	// Failed ends a checkout that was compensated: it fails with the error of the step that
	// failed (ErrorPath), as orders' Checkout returns it.
	Failed = "CheckoutFailed"
	// NotFinished ends a paid checkout whose roll-forward step kept failing past its
	// retries: nothing is undone; redriving the execution finishes it, as orders' recovery
	// does.
	NotFinished = "PaidNotFinished"
	// CompensationFailed ends a checkout whose compensation kept failing past its retries:
	// redriving the execution finishes the undo, as orders' recovery does.
	CompensationFailed = "CompensationFailed"
	// Paid ends a checkout that made its order.
	Paid = "Paid"
)

// Timing of the Tasks.
const (
	// TaskTimeout bounds each invocation (States.Timeout after it): the Lambda functions'
	// timeout (platform/manifests).
	TaskTimeout = 30
	// Retries of roll-forward and compensation Tasks: 1 s doubling up to a minute, 10 times,
	// some nine minutes in all, before the execution stops for a redrive.
	retryInterval, retryBackoff, retryMaxDelay, retryAttempts = 1, 2.0, 60, 10
)

// Error names of the language (its appendix A).
const (
	errAll = "States.ALL"
)

// StateMachine is a state machine in Amazon States Language: the subset the saga uses.
type StateMachine struct {
	Comment string           `json:"Comment,omitempty"`
	StartAt string           `json:"StartAt"`
	States  map[string]State `json:"States"`
}

// State is one state: a Task, a Fail or a Succeed.
type State struct {
	Type           string            `json:"Type"`
	Comment        string            `json:"Comment,omitempty"`
	Resource       string            `json:"Resource,omitempty"`
	Parameters     *Parameters       `json:"Parameters,omitempty"`
	ResultSelector map[string]string `json:"ResultSelector,omitempty"`
	ResultPath     string            `json:"ResultPath,omitempty"`
	TimeoutSeconds int               `json:"TimeoutSeconds,omitempty"`
	Retry          []Retrier         `json:"Retry,omitempty"`
	Catch          []Catcher         `json:"Catch,omitempty"`
	Next           string            `json:"Next,omitempty"`
	End            bool              `json:"End,omitempty"`
	Error          string            `json:"Error,omitempty"`
	Cause          string            `json:"Cause,omitempty"`
	ErrorPath      string            `json:"ErrorPath,omitempty"`
	CausePath      string            `json:"CausePath,omitempty"`
}

// Parameters are a lambda:invoke Task's: the function and its payload.
type Parameters struct {
	FunctionName string  `json:"FunctionName"`
	Payload      Payload `json:"Payload"`
}

// Payload is what a step's function gets: the call to make (orders.Call's "context.Method")
// and the execution's data so far ("checkout.$": "$", the state's whole input).
type Payload struct {
	Call     string `json:"call"`
	Checkout string `json:"checkout.$"`
}

// Where the execution's data keeps each step's answer: a Task's ResultSelector puts the
// function's answer under ValueField, its ResultPath that under $.ResultsField.<Step>.
const (
	ResultsField = "results"
	ValueField   = "value"
)

// Invocation is a Task's payload as its function reads it (Payload, resolved): the call to
// make and the execution's data. services/checkoutstep serves it.
type Invocation struct {
	Call     string    `json:"call"`
	Checkout Execution `json:"checkout"`
}

// Execution is the execution's data as a function reads it: its input (orders.Execution's
// fields: the order ID, who orders and where to; never a card, which Step Functions would
// keep in the history) and the answer of every step done so far. The rest (the error a
// Catch placed, the undos' answers) no function reads.
type Execution struct {
	orders.Execution
	Results map[string]struct {
		Value json.RawMessage `json:"value"`
	} `json:"results"`
}

// Orders returns the execution as orders.RunCall takes it: the answers by step name.
func (x Execution) Orders() orders.Execution {
	out := x.Execution
	out.Answers = make(map[string]json.RawMessage, len(x.Results))
	for step, r := range x.Results {
		out.Answers[step] = r.Value
	}
	return out
}

// Retrier is one entry of a Task's Retry. MaxAttempts is always written: 0 means never
// retried, absent would mean 3.
type Retrier struct {
	ErrorEquals     []string `json:"ErrorEquals"`
	IntervalSeconds int      `json:"IntervalSeconds,omitempty"`
	MaxAttempts     int      `json:"MaxAttempts"`
	BackoffRate     float64  `json:"BackoffRate,omitempty"`
	MaxDelaySeconds int      `json:"MaxDelaySeconds,omitempty"`
}

// Catcher is one entry of a Task's Catch.
type Catcher struct {
	ErrorEquals []string `json:"ErrorEquals"`
	ResultPath  string   `json:"ResultPath"`
	Next        string   `json:"Next"`
}

// FunctionARN is the ARN of the Lambda function that serves context's calls of the saga.
func FunctionARN(region, account, context string) string {
	return "arn:aws:lambda:" + region + ":" + account + ":function:" + FunctionName(context)
}

// FunctionName is the name of the Lambda function that serves context's calls of the saga.
func FunctionName(context string) string { return "mitosis-checkout-" + context }

// UndoState is the name of the state that compensates the step named step.
func UndoState(step string) string { return "Undo" + step }

// Render returns the checkout state machine with the functions of region and account, as
// the JSON file Path holds.
func Render(region, account string) ([]byte, error) {
	sm, err := Machine(region, account)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(sm, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("state machine: %w", err)
	}
	return append(b, '\n'), nil
}

// Machine builds the checkout state machine from orders.Steps.
func Machine(region, account string) (StateMachine, error) {
	steps := orders.Steps()
	if len(steps) == 0 {
		return StateMachine{}, fmt.Errorf("state machine: orders lists no steps")
	}
	if err := SequentialEquivalent(steps); err != nil {
		return StateMachine{}, fmt.Errorf("state machine: %w", err)
	}
	sm := StateMachine{
		Comment: "mitosis checkout saga, from orders.Steps. Generated by `mitosis deploy render`: do not edit (make deploy-check). " +
			"Start each execution with the checkout's idempotency key as its name; deploy/README.md has the input and the steps.",
		StartAt: steps[0].Name,
		States:  map[string]State{},
	}
	task := func(c orders.Call, comment string) State {
		return State{
			Type: "Task", Comment: comment, Resource: "arn:aws:states:::lambda:invoke",
			Parameters:     &Parameters{FunctionName: FunctionARN(region, account, c.Context), Payload: Payload{Call: c.String(), Checkout: "$"}},
			ResultSelector: map[string]string{ValueField + ".$": "$.Payload"},
			TimeoutSeconds: TaskTimeout,
		}
	}
	retry := Retrier{ErrorEquals: []string{errAll}, IntervalSeconds: retryInterval, MaxAttempts: retryAttempts, BackoffRate: retryBackoff, MaxDelaySeconds: retryMaxDelay}

	// The compensations, one chain: every step's undo, last step first, into Failed. A
	// failure enters it where the compensations of what was done begin.
	chain := orders.Compensations(len(steps), nil)
	stepOf := map[orders.Call]string{}
	for _, s := range steps {
		if !s.Undo.IsZero() {
			stepOf[s.Undo] = s.Name
		}
	}
	entry := func(undos []orders.Call) (string, error) {
		if len(undos) == 0 {
			return Failed, nil
		}
		if len(undos) > len(chain) || !slices.Equal(undos, chain[len(chain)-len(undos):]) {
			return "", fmt.Errorf("state machine: compensations %v are not a tail of %v, the one chain", undos, chain)
		}
		return UndoState(stepOf[undos[0]]), nil
	}
	for i, c := range chain {
		next := Failed
		if i+1 < len(chain) {
			next = UndoState(stepOf[chain[i+1]])
		}
		st := task(c, "undoes "+stepOf[c]+": retried, as orders' recovery retries an undo")
		st.ResultPath = "$.undone." + stepOf[c]
		st.Retry = []Retrier{retry}
		st.Catch = []Catcher{{ErrorEquals: []string{errAll}, ResultPath: "$.undo_error", Next: CompensationFailed}}
		st.Next = next
		sm.States[UndoState(stepOf[c])] = st
	}

	for i, s := range steps {
		comment := s.Call.String() + ", before the charge is recorded: a failure compensates what was done"
		if s.Phase == orders.RollForward {
			comment = s.Call.String() + ", once paid: retried until it succeeds, as orders rolls a paid checkout forward"
		}
		if !s.Undo.IsZero() {
			comment += "; undone by " + s.Undo.String()
		}
		st := task(s.Call, comment)
		st.ResultPath = "$." + ResultsField + "." + s.Name
		if i+1 < len(steps) {
			st.Next = steps[i+1].Name
		} else {
			st.Next = Paid
		}
		// Named errors first: States.ALL must come last (the language's rule).
		var named []orders.Error
		switch s.Phase {
		case orders.Compensate:
			named = s.NothingDone
		case orders.RollForward:
			named = s.Abort
			if len(named) > 0 {
				st.Retry = append(st.Retry, Retrier{ErrorEquals: errorNames(named), MaxAttempts: 0})
			}
			st.Retry = append(st.Retry, retry)
		default:
			return StateMachine{}, fmt.Errorf("state machine: step %s: unknown phase %q", s.Name, s.Phase)
		}
		for _, e := range named {
			to, err := entry(orders.Compensations(i, e.Err))
			if err != nil {
				return StateMachine{}, fmt.Errorf("step %s: %w", s.Name, err)
			}
			st.Catch = append(st.Catch, Catcher{ErrorEquals: []string{e.Name}, ResultPath: "$.error", Next: to})
		}
		to := NotFinished
		if s.Phase == orders.Compensate {
			var err error
			if to, err = entry(orders.Compensations(i, errUnnamed)); err != nil {
				return StateMachine{}, fmt.Errorf("step %s: %w", s.Name, err)
			}
		}
		st.Catch = append(st.Catch, Catcher{ErrorEquals: []string{errAll}, ResultPath: "$.error", Next: to})
		sm.States[s.Name] = st
	}

	sm.States[Failed] = State{Type: "Fail", Comment: "compensated: fails with the failed step's error", ErrorPath: "$.error.Error", CausePath: "$.error.Cause"}
	sm.States[NotFinished] = State{Type: "Fail", Error: "orders.PaidNotFinished",
		Cause: "the checkout is paid but a roll-forward step kept failing: redrive the execution once its context answers again"}
	sm.States[CompensationFailed] = State{Type: "Fail", Error: "orders.CompensationFailed",
		Cause: "a compensation kept failing: redrive the execution once its context answers again"}
	sm.States[Paid] = State{Type: "Succeed", Comment: "the order is paid, recorded and announced"}
	return sm, nil
}

// SequentialEquivalent returns an error unless running steps one after another compensates
// every failure with the same calls as running each group of them at the same time, as
// orders does: in a group of Compensate steps, no step but the first has an undo.
func SequentialEquivalent(steps []orders.Step) error {
	for i, s := range steps {
		if s.WithPrevious && s.Phase == orders.Compensate && !s.Undo.IsZero() {
			return fmt.Errorf("step %s runs with the step before it and has an undo (%s): rendered one after another, "+
				"a failure of an earlier step of its group would not undo it, while orders does", s.Name, s.Undo)
		}
		if s.WithPrevious && (i == 0 || steps[i-1].Phase != s.Phase) {
			return fmt.Errorf("step %s runs with the step before it, which is of another phase or none", s.Name)
		}
	}
	return nil
}

// errUnnamed stands for any error none of a step's named errors matches.
var errUnnamed = fmt.Errorf("stepfunctions: any other error")

func errorNames(errs []orders.Error) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Name
	}
	return out
}
