package ordersrpc_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// stepIndex returns the index of the step named name in orders.Steps.
func stepIndex(t *testing.T, name string) int {
	t.Helper()
	i := slices.IndexFunc(orders.Steps(), func(s orders.Step) bool { return s.Name == name })
	if i < 0 {
		t.Fatalf("no step %s in orders.Steps", name)
	}
	return i
}

var refund = orders.Call{Context: "payments", Method: "Refund"}

// TestStepDecisionsOverGRPC: what the saga decides after a remote step fails (compensate
// with or without the step's own undo, retry, or abort and compensate in full) is what it
// decides after the same failure in process. The errors are the real contexts' answers
// through their real gRPC adapters: a declined card (nothing charged: no refund), a lapsed
// reservation at Commit (the Abort: full compensation), and a call whose connection is lost
// while the server works on it, whose outcome is unknown: a Charge is then refunded (it may
// have charged) and a Commit retried (it may have committed), never taken for a refusal.
func TestStepDecisionsOverGRPC(t *testing.T) {
	charge, commit := stepIndex(t, "Charge"), stepIndex(t, "Commit")
	ctx := t.Context()

	t.Run("declined charge", func(t *testing.T) {
		impl := payments.New(kv.NewMemory(), time.Now)
		client := paymentsrpc.NewClient(rpctest.Serve(t, paymentsrpc.ServiceConfig,
			func(s grpc.ServiceRegistrar) { paymentsrpc.Register(s, impl) }))
		req := payments.ChargeRequest{IdempotencyKey: "ord-declined", Amount: money.Cents(1500),
			Card: payments.Card{Number: orderstest.CardDeclined, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVV: "123"}}
		_, local := impl.Charge(ctx, req)
		_, remote := client.Charge(ctx, req)
		if !errors.Is(local, payments.ErrDeclined) {
			t.Fatalf("in process: %v, want a decline", local)
		}
		want := orders.Compensations(charge, local)
		if got := orders.Compensations(charge, remote); !slices.Equal(got, want) || slices.Contains(got, refund) {
			t.Fatalf("compensations after %v over gRPC = %v, want %v (no refund: nothing was charged)", remote, got, want)
		}
	})

	t.Run("lapsed reservation at commit", func(t *testing.T) {
		impl := inventory.New(kv.NewMemory(), kv.NewMemory(), time.Now, time.Minute)
		client := inventoryrpc.NewClient(rpctest.Serve(t, inventoryrpc.ServiceConfig,
			func(s grpc.ServiceRegistrar) { inventoryrpc.Register(s, impl) }))
		local := impl.Commit(ctx, "ord-never-reserved")
		remote := client.Commit(ctx, "ord-never-reserved")
		want := orders.Compensations(commit, local)
		if len(want) == 0 {
			t.Fatalf("in process, %v does not abort Commit", local)
		}
		if got := orders.Compensations(commit, remote); !slices.Equal(got, want) {
			t.Fatalf("compensations after %v over gRPC = %v, want %v (the Abort)", remote, got, want)
		}
	})

	t.Run("connection lost during the call", func(t *testing.T) {
		entered := make(chan struct{}, 2)
		conn, stop := rpctest.ServeKillable(t, paymentsrpc.ServiceConfig, func(s grpc.ServiceRegistrar) {
			paymentsrpc.Register(s, &heldPayments{entered: entered})
			inventoryrpc.Register(s, &heldInventory{entered: entered})
		})
		calls := []struct {
			name   string
			do     func(context.Context) error
			decide func(err error) bool // whether the saga decides as for an unknown outcome
		}{
			{"Charge (refunded)", func(ctx context.Context) error {
				_, err := paymentsrpc.NewClient(conn).Charge(ctx, payments.ChargeRequest{IdempotencyKey: "ord-lost", Amount: money.Cents(1500)})
				return err
			}, func(err error) bool { return slices.Contains(orders.Compensations(charge, err), refund) }},
			{"Commit (retried)", func(ctx context.Context) error {
				return inventoryrpc.NewClient(conn).Commit(ctx, "ord-lost")
			}, func(err error) bool { return orders.Compensations(commit, err) == nil }},
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		errs := make([]chan error, len(calls))
		for i, c := range calls {
			errs[i] = make(chan error, 1)
			go func() { errs[i] <- c.do(cctx) }()
		}
		for range calls { // both calls are in their handlers: the requests were sent
			select {
			case <-entered:
			case <-cctx.Done():
				t.Fatal("the calls did not reach the server")
			}
		}
		stop() // the connection goes with the calls in flight
		for i, c := range calls {
			var err error
			select {
			case err = <-errs[i]:
			case <-cctx.Done():
				t.Fatalf("%s: a call whose connection was lost did not return", c.name)
			}
			switch {
			case err == nil:
				t.Errorf("%s: a call whose connection was lost succeeded", c.name)
			case errors.Is(err, context.DeadlineExceeded):
				t.Errorf("%s ended by its deadline, not by the lost connection: %v", c.name, err)
			case errors.Is(err, payments.ErrDeclined), errors.Is(err, payments.ErrNotFound), errors.Is(err, inventory.ErrReservationNotFound):
				t.Errorf("%s: a lost connection read as a refusal: %v", c.name, err)
			case !c.decide(err):
				t.Errorf("%s after a lost connection (%v): the saga does not treat its outcome as unknown", c.name, err)
			}
		}
	})
}

// heldPayments and heldInventory hold Charge and Commit until the call's context ends, saying
// when they start: the server has the request, and never answers.
type heldPayments struct {
	payments.Service
	entered chan<- struct{}
}

func (h *heldPayments) Charge(ctx context.Context, _ payments.ChargeRequest) (payments.Charge, error) {
	h.entered <- struct{}{}
	<-ctx.Done()
	return payments.Charge{}, ctx.Err()
}

type heldInventory struct {
	inventory.Service
	entered chan<- struct{}
}

func (h *heldInventory) Commit(ctx context.Context, _ string) error {
	h.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}
