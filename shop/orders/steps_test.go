package orders_test

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/sagatest"
)

// TestCompensationsAreWhatTheSagaDoes: for a failure at every step, what Compensations says
// is what the saga called once the failure happened, and the steps' list is well formed:
// unique names, the Compensate steps before the RollForward ones, steps run together only
// with steps of their phase.
func TestCompensationsAreWhatTheSagaDoes(t *testing.T) {
	steps := orders.Steps()
	index := map[string]int{}
	for i, s := range steps {
		if _, dup := index[s.Name]; dup {
			t.Errorf("step %s listed twice", s.Name)
		}
		index[s.Name] = i
		if i > 0 && steps[i-1].Phase == orders.RollForward && s.Phase == orders.Compensate {
			t.Errorf("Compensate step %s after a RollForward one", s.Name)
		}
		if s.WithPrevious && (i == 0 || steps[i-1].Phase != s.Phase) {
			t.Errorf("step %s runs with the previous step, which is of another phase or none", s.Name)
		}
	}
	failed := map[string]bool{}
	for _, c := range sagatest.Cases() {
		t.Run(c.String(), func(t *testing.T) {
			i, ok := index[c.Step]
			if !ok {
				t.Fatalf("no step %s", c.Step)
			}
			failed[c.Step] = true
			r := sagatest.Run(t, c)
			t.Logf("compensations: %v", r.Compensations())
			if got, want := r.Compensations(), orders.Compensations(i, r.Err); !slices.Equal(got, want) {
				t.Errorf("after the failure the saga called %v; Compensations says %v", got, want)
			}
		})
	}
	for _, s := range steps {
		if !failed[s.Name] {
			t.Errorf("no case fails step %s", s.Name)
		}
	}
}

// TestPivotFailureUndoesEveryStep: when the record cannot be marked charged, the saga undoes
// every Compensate step, as Compensations says for the index past the last step.
func TestPivotFailureUndoesEveryStep(t *testing.T) {
	r := sagatest.Run(t, sagatest.Pivot())
	want := orders.Compensations(len(orders.Steps()), r.Err)
	if got := r.Compensations(); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("after the pivot failed the saga called %v; Compensations says %v", got, want)
	}
}

// TestCompensationsPinned: what compensates a failure at each step, with any error and
// with each error the step names. Running steps together changed none of them; moving
// AddToHistory after the pivot made its failure a roll-forward one (retried), no longer a
// refund.
func TestCompensationsPinned(t *testing.T) {
	refund, release := "payments.Refund", "inventory.Release"
	want := map[string][]string{
		"ReadCart": nil, "Price": nil, "Reserve": {release},
		"Charge": {refund, release}, "Charge/payments.ErrDeclined": {release},
		"Commit": nil, "Commit/inventory.ErrReservationNotFound": {refund, release},
		"AddToHistory": nil,
		"RecordOrder":  nil, "RemoveBought": nil, "PublishOrderPaid": nil,
		"(pivot)": {refund, release},
	}
	got := map[string][]string{}
	str := func(cs []orders.Call) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.String())
		}
		return out
	}
	steps := orders.Steps()
	for i, s := range steps {
		got[s.Name] = str(orders.Compensations(i, errors.New("any other error")))
		for _, e := range append(slices.Clone(s.NothingDone), s.Abort...) {
			got[s.Name+"/"+e.Name] = str(orders.Compensations(i, e.Err))
		}
	}
	got["(pivot)"] = str(orders.Compensations(len(steps), nil))
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("compensations:\n got %v\nwant %v", got, want)
	}
}
