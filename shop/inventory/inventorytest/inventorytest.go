// Package inventorytest is the conformance suite of inventory.Service, written once against
// the interface and run against every way of getting one: the implementation over memory
// and over JetStream, and (in services/) a gRPC client talking to it over a real socket.
package inventorytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/clocktest"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Run runs the suite. newService returns a service with empty stores for each test, reading
// the time from now, so that tests can move past a reservation's expiry.
func Run(t *testing.T, newService func(t *testing.T, now func() time.Time) inventory.Service) {
	setup := func(t *testing.T) (inventory.Service, *clocktest.Clock) {
		t.Helper()
		c := clocktest.New(time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC))
		return newService(t, c.Now), c
	}

	t.Run("GetNeverStocked", func(t *testing.T) {
		svc, _ := setup(t)
		got, err := svc.Get(t.Context(), "sku-never")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if want := (inventory.Stock{ProductID: "sku-never"}); got != want {
			t.Fatalf("Get = %+v, want %+v", got, want)
		}
	})

	t.Run("AddAccumulates", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		if got := add(t, svc, "sku-1", 3); got.Available != 3 {
			t.Fatalf("after Add 3: %+v", got)
		}
		got := add(t, svc, "sku-1", inventory.MaxAdd)
		want := inventory.Stock{ProductID: "sku-1", Available: 3 + inventory.MaxAdd}
		if got != want {
			t.Fatalf("Add returned %+v, want %+v", got, want)
		}
		expectStock(t, svc, want)
		if _, err := svc.Add(ctx, strings.Repeat("p", 64), 1); err != nil {
			t.Fatalf("Add to a 64-byte product ID: %v", err)
		}
	})

	t.Run("AddValidation", func(t *testing.T) {
		svc, _ := setup(t)
		cases := []struct {
			name, product string
			n             int64
			field         string
		}{
			{"zero", "sku-1", 0, "add"},
			{"negative", "sku-1", -5, "add"},
			{"above max", "sku-1", inventory.MaxAdd + 1, "add"},
			{"empty product", "", 1, "product_id"},
			{"long product", strings.Repeat("p", 129), 1, "product_id"},
			{"product with a control character", "p\x7f", 1, "product_id"},
		}
		for _, c := range cases {
			_, err := svc.Add(t.Context(), c.product, c.n)
			expectInvalid(t, c.name, err, c.field)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1"})
		_, err := svc.Get(t.Context(), "")
		expectInvalid(t, "Get empty product", err, "product_id")
	})

	t.Run("ReserveValidation", func(t *testing.T) {
		svc, _ := setup(t)
		add(t, svc, "sku-1", 10)
		cases := []struct {
			name, id string
			lines    []inventory.Line
			field    string
		}{
			{"empty id", "", []inventory.Line{{ProductID: "sku-1", Quantity: 1}}, "reservation_id"},
			{"no lines", "r1", nil, "lines"},
			{"empty product", "r1", []inventory.Line{{ProductID: "sku-1", Quantity: 1}, {ProductID: "", Quantity: 1}}, "lines[1].product_id"},
			{"zero quantity", "r1", []inventory.Line{{ProductID: "sku-1", Quantity: 0}}, "lines[0].quantity"},
			{"negative quantity", "r1", []inventory.Line{{ProductID: "sku-1", Quantity: -2}}, "lines[0].quantity"},
		}
		for _, c := range cases {
			_, err := svc.Reserve(t.Context(), c.id, c.lines)
			expectInvalid(t, c.name, err, c.field)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 10})
		expectInvalid(t, "Commit empty id", svc.Commit(t.Context(), ""), "reservation_id")
		expectInvalid(t, "Release empty id", svc.Release(t.Context(), ""), "reservation_id")
	})

	t.Run("ReserveThenCommit", func(t *testing.T) {
		svc, clock := setup(t)
		ctx := t.Context()
		add(t, svc, "sku-1", 10)
		r, err := svc.Reserve(ctx, "r1", []inventory.Line{{ProductID: "sku-1", Quantity: 3}})
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		if r.ID != "r1" || len(r.Lines) != 1 || r.Lines[0] != (inventory.Line{ProductID: "sku-1", Quantity: 3}) {
			t.Fatalf("Reserve returned %+v", r)
		}
		if !r.ExpiresAt.After(clock.Now()) {
			t.Fatalf("ExpiresAt %v is not after now %v", r.ExpiresAt, clock.Now())
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 7, Reserved: 3})
		if err := svc.Commit(ctx, "r1"); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 7, Sold: 3})
	})

	t.Run("ReserveThenRelease", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		add(t, svc, "sku-1", 10)
		add(t, svc, "sku-2", 5)
		if _, err := svc.Reserve(ctx, "r1", []inventory.Line{{ProductID: "sku-2", Quantity: 5}, {ProductID: "sku-1", Quantity: 4}}); err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 6, Reserved: 4})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-2", Available: 0, Reserved: 5})
		if err := svc.Release(ctx, "r1"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 10})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-2", Available: 5})
		if err := svc.Release(ctx, "r1"); err != nil {
			t.Fatalf("Release again: %v", err)
		}
		if err := svc.Commit(ctx, "r1"); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Commit after Release: %v, want ErrReservationNotFound", err)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 10})
	})

	t.Run("ReserveMergesDuplicateLines", func(t *testing.T) {
		svc, _ := setup(t)
		add(t, svc, "sku-1", 10)
		add(t, svc, "sku-2", 10)
		r, err := svc.Reserve(t.Context(), "r1", []inventory.Line{
			{ProductID: "sku-2", Quantity: 1}, {ProductID: "sku-1", Quantity: 2}, {ProductID: "sku-2", Quantity: 3},
		})
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		want := []inventory.Line{{ProductID: "sku-1", Quantity: 2}, {ProductID: "sku-2", Quantity: 4}}
		if fmt.Sprint(r.Lines) != fmt.Sprint(want) {
			t.Fatalf("lines = %v, want %v", r.Lines, want)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-2", Available: 6, Reserved: 4})
		// Merging happens before the stock check: 6 + 5 > 10 although each line fits.
		_, err = svc.Reserve(t.Context(), "r2", []inventory.Line{{ProductID: "sku-1", Quantity: 6}, {ProductID: "sku-1", Quantity: 5}})
		var oos *inventory.OutOfStockError
		if !errors.As(err, &oos) || oos.Requested != 11 || oos.Available != 8 {
			t.Fatalf("Reserve 6+5 of 8: %v, want OutOfStockError 11 requested, 8 available", err)
		}
	})

	t.Run("ReserveIsIdempotent", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		add(t, svc, "sku-1", 10)
		first, err := svc.Reserve(ctx, "r1", []inventory.Line{{ProductID: "sku-1", Quantity: 2}})
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		again, err := svc.Reserve(ctx, "r1", []inventory.Line{{ProductID: "sku-1", Quantity: 2}})
		if err != nil {
			t.Fatalf("Reserve again: %v", err)
		}
		// A retry that asks for something else still gets the first reservation: the ID
		// names it, not the lines.
		other, err := svc.Reserve(ctx, "r1", []inventory.Line{{ProductID: "sku-1", Quantity: 7}})
		if err != nil {
			t.Fatalf("Reserve again with other lines: %v", err)
		}
		for _, r := range []inventory.Reservation{again, other} {
			if !sameReservation(first, r) {
				t.Fatalf("repeated Reserve returned %+v, want %+v", r, first)
			}
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 8, Reserved: 2})
	})

	t.Run("CommitIsIdempotent", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		add(t, svc, "sku-1", 10)
		reserve(t, svc, "r1", inventory.Line{ProductID: "sku-1", Quantity: 4})
		for i := range 3 {
			if err := svc.Commit(ctx, "r1"); err != nil {
				t.Fatalf("Commit #%d: %v", i+1, err)
			}
		}
		want := inventory.Stock{ProductID: "sku-1", Available: 6, Sold: 4}
		expectStock(t, svc, want)
		if err := svc.Release(ctx, "r1"); err != nil {
			t.Fatalf("Release after Commit: %v", err)
		}
		expectStock(t, svc, want)
		if _, err := svc.Reserve(ctx, "r1", []inventory.Line{{ProductID: "sku-1", Quantity: 4}}); err != nil {
			t.Fatalf("Reserve after Commit: %v", err)
		}
		expectStock(t, svc, want)
	})

	t.Run("UnknownReservation", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		if err := svc.Commit(ctx, "nope"); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Commit unknown: %v, want ErrReservationNotFound", err)
		}
		if err := svc.Release(ctx, "nope"); err != nil {
			t.Fatalf("Release unknown: %v", err)
		}
		if err := svc.Release(ctx, "nope"); err != nil {
			t.Fatalf("Release unknown again: %v", err)
		}
		if err := svc.Commit(ctx, "nope"); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Commit released unknown: %v, want ErrReservationNotFound", err)
		}
		// Reserved after its release, it is made anew.
		add(t, svc, "sku-a", 5)
		if _, err := svc.Reserve(ctx, "nope", []inventory.Line{{ProductID: "sku-a", Quantity: 2}}); err != nil {
			t.Fatalf("Reserve after releasing it unknown: %v", err)
		}
		if err := svc.Commit(ctx, "nope"); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-a", Available: 3, Sold: 2})
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		add(t, svc, "sku-a", 10)
		add(t, svc, "sku-b", 1)
		add(t, svc, "sku-c", 10)
		_, err := svc.Reserve(ctx, "r1", []inventory.Line{
			{ProductID: "sku-c", Quantity: 1}, {ProductID: "sku-a", Quantity: 3}, {ProductID: "sku-b", Quantity: 2},
		})
		expectOutOfStock(t, err, inventory.OutOfStockError{ProductID: "sku-b", Requested: 2, Available: 1})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-a", Available: 10})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-b", Available: 1})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-c", Available: 10})
		if err := svc.Commit(ctx, "r1"); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Commit of a failed reservation: %v, want ErrReservationNotFound", err)
		}

		// A product never stocked has nothing available.
		_, err = svc.Reserve(ctx, "r2", []inventory.Line{{ProductID: "sku-a", Quantity: 1}, {ProductID: "sku-z", Quantity: 1}})
		expectOutOfStock(t, err, inventory.OutOfStockError{ProductID: "sku-z", Requested: 1, Available: 0})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-a", Available: 10})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-z"})

		// The failed ID is free again: once there is stock, the retry goes through.
		add(t, svc, "sku-b", 1)
		if _, err := svc.Reserve(ctx, "r1", []inventory.Line{{ProductID: "sku-a", Quantity: 3}, {ProductID: "sku-b", Quantity: 2}}); err != nil {
			t.Fatalf("Reserve after restock: %v", err)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-a", Available: 7, Reserved: 3})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-b", Available: 0, Reserved: 2})
	})

	t.Run("Expiry", func(t *testing.T) {
		svc, clock := setup(t)
		ctx := t.Context()
		add(t, svc, "sku-1", 10)
		held := reserve(t, svc, "held", inventory.Line{ProductID: "sku-1", Quantity: 2})
		reserve(t, svc, "sold", inventory.Line{ProductID: "sku-1", Quantity: 3})
		if err := svc.Commit(ctx, "sold"); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		want := inventory.Stock{ProductID: "sku-1", Available: 5, Reserved: 2, Sold: 3}

		clock.Set(held.ExpiresAt.Add(-time.Second))
		if n, err := svc.ReleaseExpired(ctx); err != nil || n != 0 {
			t.Fatalf("ReleaseExpired before expiry = %d, %v; want 0", n, err)
		}
		expectStock(t, svc, want)

		clock.Set(held.ExpiresAt.Add(time.Second))
		if err := svc.Commit(ctx, "held"); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Commit after expiry: %v, want ErrReservationNotFound", err)
		}
		if n, err := svc.ReleaseExpired(ctx); err != nil || n != 1 {
			t.Fatalf("ReleaseExpired after expiry = %d, %v; want 1", n, err)
		}
		want = inventory.Stock{ProductID: "sku-1", Available: 7, Sold: 3}
		expectStock(t, svc, want)
		if n, err := svc.ReleaseExpired(ctx); err != nil || n != 0 {
			t.Fatalf("ReleaseExpired again = %d, %v; want 0", n, err)
		}
		if err := svc.Commit(ctx, "held"); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Fatalf("Commit after the sweep: %v, want ErrReservationNotFound", err)
		}
		if err := svc.Release(ctx, "held"); err != nil {
			t.Fatalf("Release after the sweep: %v", err)
		}
		// A committed reservation is never released by expiry, and stays committed.
		if err := svc.Commit(ctx, "sold"); err != nil {
			t.Fatalf("Commit again after expiry: %v", err)
		}
		expectStock(t, svc, want)
	})

	t.Run("NoOversell", func(t *testing.T) {
		svc, _ := setup(t)
		add(t, svc, "sku-hot", 10)
		const callers = 40
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				_, errs[i] = svc.Reserve(t.Context(), fmt.Sprintf("r%02d", i), []inventory.Line{{ProductID: "sku-hot", Quantity: 1}})
			})
		}
		wg.Wait()
		ok, short := 0, 0
		for i, err := range errs {
			var oos *inventory.OutOfStockError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &oos) && errors.Is(err, inventory.ErrOutOfStock) && oos.ProductID == "sku-hot":
				short++
			default:
				t.Errorf("Reserve r%02d: %v", i, err)
			}
		}
		if ok != 10 || short != 30 {
			t.Fatalf("%d reserved and %d out of stock, want 10 and 30", ok, short)
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-hot", Available: 0, Reserved: 10})
	})

	t.Run("ConcurrentReserveOfOneID", func(t *testing.T) {
		svc, _ := setup(t)
		add(t, svc, "sku-1", 10)
		add(t, svc, "sku-2", 10)
		lines := []inventory.Line{{ProductID: "sku-1", Quantity: 2}, {ProductID: "sku-2", Quantity: 1}}
		const callers = 10
		got := make([]inventory.Reservation, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { got[i], errs[i] = svc.Reserve(t.Context(), "r1", lines) })
		}
		wg.Wait()
		for i := range callers {
			if errs[i] != nil {
				t.Fatalf("Reserve #%d: %v", i, errs[i])
			}
			if !sameReservation(got[0], got[i]) {
				t.Fatalf("Reserve #%d returned %+v, #0 returned %+v", i, got[i], got[0])
			}
		}
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: 8, Reserved: 2})
		expectStock(t, svc, inventory.Stock{ProductID: "sku-2", Available: 9, Reserved: 1})
	})

	t.Run("CommitRacesRelease", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		const n = 20
		add(t, svc, "sku-1", n)
		for i := range n {
			reserve(t, svc, fmt.Sprintf("r%02d", i), inventory.Line{ProductID: "sku-1", Quantity: 1})
		}
		commitErrs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			id := fmt.Sprintf("r%02d", i)
			wg.Go(func() { commitErrs[i] = svc.Commit(ctx, id) })
			wg.Go(func() {
				if err := svc.Release(ctx, id); err != nil {
					t.Errorf("Release %s: %v", id, err)
				}
			})
		}
		wg.Wait()
		var committed int64
		for i, err := range commitErrs {
			switch {
			case err == nil:
				committed++
			case errors.Is(err, inventory.ErrReservationNotFound):
			default:
				t.Errorf("Commit r%02d: %v", i, err)
			}
		}
		// Whichever won, it won alone: a commit that succeeded sold its unit and the
		// release after it did nothing; a release that won made the commit fail.
		expectStock(t, svc, inventory.Stock{ProductID: "sku-1", Available: n - committed, Sold: committed})
	})

	t.Run("ConservationUnderConcurrency", func(t *testing.T) {
		svc, _ := setup(t)
		ctx := t.Context()
		products := []string{"sku-a", "sku-b", "sku-c"}
		var mu sync.Mutex
		added := map[string]int64{}
		sold := map[string]int64{}
		for _, p := range products {
			add(t, svc, p, 15)
			added[p] = 15
		}
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				id := fmt.Sprintf("mix-%02d", i)
				lines := []inventory.Line{
					{ProductID: products[i%3], Quantity: int64(1 + i%3)},
					{ProductID: products[(i+1)%3], Quantity: 1},
				}
				if _, err := svc.Reserve(ctx, id, lines); errors.Is(err, inventory.ErrOutOfStock) {
					return
				} else if err != nil {
					t.Errorf("Reserve %s: %v", id, err)
					return
				}
				if i%2 == 0 {
					if err := svc.Release(ctx, id); err != nil {
						t.Errorf("Release %s: %v", id, err)
					}
					return
				}
				if err := svc.Commit(ctx, id); err != nil {
					t.Errorf("Commit %s: %v", id, err)
					return
				}
				mu.Lock()
				for _, l := range lines {
					sold[l.ProductID] += l.Quantity
				}
				mu.Unlock()
			})
			if i%10 == 0 {
				wg.Go(func() {
					p := products[i%3]
					if _, err := svc.Add(ctx, p, 2); err != nil {
						t.Errorf("Add %s: %v", p, err)
						return
					}
					mu.Lock()
					added[p] += 2
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		for _, p := range products {
			got, err := svc.Get(ctx, p)
			if err != nil {
				t.Fatalf("Get %s: %v", p, err)
			}
			if got.Available < 0 || got.Reserved != 0 || got.Sold != sold[p] {
				t.Errorf("%s: %+v, want nothing reserved and %d sold", p, got, sold[p])
			}
			if total := got.Available + got.Reserved + got.Sold; total != added[p] {
				t.Errorf("%s: available+reserved+sold = %d, want %d added", p, total, added[p])
			}
		}
	})
}

func add(t *testing.T, svc inventory.Service, product string, n int64) inventory.Stock {
	t.Helper()
	s, err := svc.Add(t.Context(), product, n)
	if err != nil {
		t.Fatalf("Add(%s, %d): %v", product, n, err)
	}
	return s
}

func reserve(t *testing.T, svc inventory.Service, id string, lines ...inventory.Line) inventory.Reservation {
	t.Helper()
	r, err := svc.Reserve(t.Context(), id, lines)
	if err != nil {
		t.Fatalf("Reserve(%s): %v", id, err)
	}
	return r
}

func expectStock(t *testing.T, svc inventory.Service, want inventory.Stock) {
	t.Helper()
	got, err := svc.Get(context.WithoutCancel(t.Context()), want.ProductID)
	if err != nil {
		t.Fatalf("Get(%s): %v", want.ProductID, err)
	}
	if got != want {
		t.Fatalf("stock of %s = %+v, want %+v", want.ProductID, got, want)
	}
}

func expectInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != field {
		t.Errorf("%s: got %v (field %q), want a validation error on %q", what, err, validation.FieldOf(err), field)
	}
}

func expectOutOfStock(t *testing.T, err error, want inventory.OutOfStockError) {
	t.Helper()
	var got *inventory.OutOfStockError
	if !errors.Is(err, inventory.ErrOutOfStock) || !errors.As(err, &got) {
		t.Fatalf("got %v, want an *OutOfStockError", err)
	}
	if *got != want {
		t.Fatalf("OutOfStockError = %+v, want %+v", *got, want)
	}
}

func sameReservation(a, b inventory.Reservation) bool {
	return a.ID == b.ID && a.ExpiresAt.Equal(b.ExpiresAt) && fmt.Sprint(a.Lines) == fmt.Sprint(b.Lines)
}
