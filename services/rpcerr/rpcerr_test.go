package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// failing is a catalog whose Get fails with the error the test sets: the transport is what
// is under test, so the error must be exactly the one given.
type failing struct {
	catalog.Service
	err error
}

func (f *failing) Get(context.Context, string) (catalog.Product, error) {
	return catalog.Product{}, f.err
}

// roundTrip returns the error a client gets when the server fails with err, over a real
// socket (so that the status and its details are serialized as in production).
func roundTrip(t *testing.T, err error) error {
	t.Helper()
	impl := &failing{err: err}
	conn := rpctest.Serve(t, catalogrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { catalogrpc.Register(s, impl) })
	_, got := catalogrpc.NewClient(conn).Get(t.Context(), "x")
	return got
}

func TestDomainErrorsRoundTrip(t *testing.T) {
	oos := &inventory.OutOfStockError{ProductID: "sku-0042", Requested: 3, Available: 1}
	for _, tc := range []struct {
		name string
		err  error
		is   []error // every one must match on the client
		not  []error // none of these may
	}{
		{"catalog not found", fmt.Errorf("get x: %w", catalog.ErrNotFound), []error{catalog.ErrNotFound}, []error{orders.ErrNotFound}},
		{"order not found", orders.ErrNotFound, []error{orders.ErrNotFound}, []error{catalog.ErrNotFound}},
		{"charge not found", payments.ErrNotFound, []error{payments.ErrNotFound}, nil},
		{"shipment not found", shipping.ErrNotFound, []error{shipping.ErrNotFound}, nil},
		{"reservation not found", fmt.Errorf("commit r1: %w", inventory.ErrReservationNotFound), []error{inventory.ErrReservationNotFound}, nil},
		{"idempotency conflict", orders.ErrIdempotencyConflict, []error{orders.ErrIdempotencyConflict}, nil},
		{"card declined", fmt.Errorf("charge k: %w", payments.ErrCardDeclined), []error{payments.ErrCardDeclined, payments.ErrDeclined}, []error{payments.ErrInsufficientFunds, payments.ErrCardExpired}},
		{"insufficient funds", payments.ErrInsufficientFunds, []error{payments.ErrInsufficientFunds, payments.ErrDeclined}, []error{payments.ErrCardDeclined}},
		{"card expired", payments.ErrCardExpired, []error{payments.ErrCardExpired, payments.ErrDeclined}, []error{payments.ErrCardDeclined}},
		{"voided", fmt.Errorf("charge k: %w", payments.ErrVoided), []error{payments.ErrVoided}, []error{payments.ErrDeclined}},
		{"out of stock", fmt.Errorf("checkout: reserve: %w", oos), []error{inventory.ErrOutOfStock}, nil},
		{"validation", fmt.Errorf("add: %w", validation.Errorf("quantity", "must be 1..99, got %d", 0)), []error{validation.ErrInvalid}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, tc.err)
			if got == nil || got.Error() != tc.err.Error() {
				t.Fatalf("client error %q, want the server's message %q", got, tc.err)
			}
			for _, want := range tc.is {
				if !errors.Is(got, want) {
					t.Errorf("errors.Is(%v, %v) = false", got, want)
				}
			}
			for _, not := range tc.not {
				if errors.Is(got, not) {
					t.Errorf("errors.Is(%v, %v) = true", got, not)
				}
			}
		})
	}
}

func TestTypedErrorsKeepTheirFields(t *testing.T) {
	got := roundTrip(t, fmt.Errorf("checkout: %w", &inventory.OutOfStockError{ProductID: "sku-0042", Requested: 3, Available: 1}))
	var oos *inventory.OutOfStockError
	if !errors.As(got, &oos) || *oos != (inventory.OutOfStockError{ProductID: "sku-0042", Requested: 3, Available: 1}) {
		t.Fatalf("errors.As OutOfStockError = %+v from %v", oos, got)
	}

	// Invalid UTF-8 in a field or reason must cross intact: the status message is a proto3
	// string, the detail is not.
	got = roundTrip(t, validation.Errorf("name\xff", "bad byte \xfe"))
	var v *validation.Error
	if !errors.As(got, &v) || v.Field != "name\xff" || v.Reason != "bad byte \xfe" {
		t.Fatalf("errors.As validation.Error = %+v from %v", v, got)
	}
	if validation.FieldOf(got) != "name\xff" {
		t.Fatalf("FieldOf = %q", validation.FieldOf(got))
	}
}

func TestTransportErrors(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		got := roundTrip(t, fmt.Errorf("read: %w", context.DeadlineExceeded))
		if !errors.Is(got, context.DeadlineExceeded) || status.Code(got) != codes.DeadlineExceeded {
			t.Fatalf("got %v (%s), want DeadlineExceeded", got, status.Code(got))
		}
	})
	t.Run("canceled", func(t *testing.T) {
		got := roundTrip(t, context.Canceled)
		if !errors.Is(got, context.Canceled) {
			t.Fatalf("got %v, want Canceled", got)
		}
	})
	t.Run("store failure", func(t *testing.T) {
		got := roundTrip(t, errors.New("nats: connection closed"))
		var e *rpcerr.Error
		if !errors.As(got, &e) || status.Code(got) != codes.Unknown {
			t.Fatalf("got %v (%s), want an *rpcerr.Error with code Unknown", got, status.Code(got))
		}
		for _, domain := range []error{catalog.ErrNotFound, validation.ErrInvalid, context.DeadlineExceeded} {
			if errors.Is(got, domain) {
				t.Errorf("errors.Is(%v, %v) = true", got, domain)
			}
		}
	})
	t.Run("peer unavailable two hops away", func(t *testing.T) {
		// orders calling payments: payments' client error, wrapped by the saga, keeps its code.
		peerErr := rpcerr.FromStatus("/mitosis.payments.v1.PaymentsService/Charge", status.Error(codes.Unavailable, "connection refused"))
		got := roundTrip(t, fmt.Errorf("checkout: charge: %w", peerErr))
		if status.Code(got) != codes.Unavailable {
			t.Fatalf("got %v (%s), want Unavailable", got, status.Code(got))
		}
	})
	t.Run("server unreachable", func(t *testing.T) {
		conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, got := catalogrpc.NewClient(conn).Get(ctx, "x")
		if status.Code(got) != codes.Unavailable || errors.Is(got, catalog.ErrNotFound) {
			t.Fatalf("got %v, want Unavailable", got)
		}
	})
	t.Run("client deadline", func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		impl := &blocking{until: block, ended: make(chan struct{})}
		conn := rpctest.Serve(t, catalogrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { catalogrpc.Register(s, impl) })
		// The deadline is the call's: connect first, since a new connection's TLS handshake
		// can outlast it under the race detector on a busy machine, and the call would then
		// end before it reached the server.
		connecting, stop := context.WithTimeout(t.Context(), 10*time.Second)
		defer stop()
		conn.Connect()
		for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
			if !conn.WaitForStateChange(connecting, s) {
				t.Fatalf("the connection is %s, not ready within 10s", s)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, got := catalogrpc.NewClient(conn).Get(ctx, "x")
		if !errors.Is(got, context.DeadlineExceeded) {
			t.Fatalf("got %v, want DeadlineExceeded", got)
		}
		// The deadline travelled: the server's context ended too.
		select {
		case <-impl.ended:
		case <-time.After(5 * time.Second):
			t.Fatal("the server's context did not end with the client's deadline")
		}
	})
}

// blocking is a catalog whose Get waits for its context (or until) and reports its end.
type blocking struct {
	catalog.Service
	until <-chan struct{}
	ended chan struct{}
}

func (b *blocking) Get(ctx context.Context, _ string) (catalog.Product, error) {
	select {
	case <-ctx.Done():
		close(b.ended)
		return catalog.Product{}, ctx.Err()
	case <-b.until:
		return catalog.Product{}, errors.New("released")
	}
}

func TestNilIsNil(t *testing.T) {
	if rpcerr.ToStatus(nil) != nil || rpcerr.FromStatus("m", nil) != nil {
		t.Fatal("nil must stay nil")
	}
}
