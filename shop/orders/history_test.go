package orders_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// checkoutMany makes n paid orders of user, one after the other, and returns their IDs
// newest first.
func checkoutMany(t *testing.T, w *world, o *orders.Orders, product, user string, n int) []string {
	t.Helper()
	if _, err := w.inventory.Add(t.Context(), product, int64(2*n)); err != nil {
		t.Fatal(err)
	}
	var made []string
	for range n {
		if _, err := w.carts.Add(t.Context(), user, cart.Item{ProductID: product, Quantity: 1}); err != nil {
			t.Fatal(err)
		}
		ord, err := o.Checkout(t.Context(), ids.New("key", time.Now()), orderstest.Request(user))
		if err != nil {
			t.Fatalf("checkout %d: %v", len(made)+1, err)
		}
		made = append([]string{ord.ID}, made...)
	}
	return made
}

// walkHistory reads every page of a user's orders of the given size, failing t unless every
// page but the last is full, and returns the IDs in the order listed and the page lengths.
func walkHistory(t *testing.T, o *orders.Orders, user string, size int) (got []string, pages []int) {
	t.Helper()
	token := ""
	for range 1000 {
		page, err := o.ListByUser(t.Context(), orders.ListRequest{UserID: user, PageSize: size, PageToken: token})
		if err != nil {
			t.Fatalf("page %d of size %d: %v", len(pages)+1, size, err)
		}
		for _, ord := range page.Orders {
			got = append(got, ord.ID)
		}
		pages = append(pages, len(page.Orders))
		if token = page.NextPageToken; token == "" {
			return got, pages
		}
		if len(page.Orders) != size {
			t.Fatalf("page %d has %d orders and a next page, want %d", len(pages), len(page.Orders), size)
		}
	}
	t.Fatal("more than 1000 pages")
	return nil, nil
}

// TestHistoryAcrossChunks: a history of more than two chunks of real checkouts, by a user
// with the longest ID, with among them the ID of a checkout that was charged and then
// compensated (it names no order), pages the same whatever the page size: every order once,
// newest first, every page but the last full.
func TestHistoryAcrossChunks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, _ := w.shop(t)
		// A user ID of the longest kind, none of whose bytes a store keeps as they are: the
		// keys of the chunks stay within kv.MaxKeyLen.
		user := strings.Repeat("ü", ids.MaxLen/2)
		o := w.orders(w.deps())
		const n = 2*orders.HistoryChunkSize + 30
		older := checkoutMany(t, w, o, product, user, n/2)
		if err := o.AddToHistory(ctx, user, ids.New("ord", time.Now())); err != nil {
			t.Fatal(err)
		}
		want := append(checkoutMany(t, w, o, product, user, n-n/2), older...)

		head, sealed, err := o.HistoryHead(ctx, user)
		if err != nil || sealed != 2 || len(head) != n+1-2*orders.HistoryChunkSize {
			t.Fatalf("head of %d IDs and %d chunks (%v), want %d IDs and 2 chunks", len(head), sealed, err, n+1-2*orders.HistoryChunkSize)
		}
		for _, size := range []int{3, 7, orders.DefaultPageSize, paging.MaxSize} {
			got, pages := walkHistory(t, o, user, size)
			if !slices.Equal(got, want) {
				t.Fatalf("page size %d: %d orders listed, want the %d, newest first", size, len(got), len(want))
			}
			if wantPages := (n + size - 1) / size; len(pages) != wantPages {
				t.Errorf("page size %d: %d pages, want %d", size, len(pages), wantPages)
			}
		}
		if all, err := orderstest.ListAll(ctx, o, user); err != nil || len(all) != n {
			t.Errorf("ListAll: %d orders %v, want %d", len(all), err, n)
		}
		// Tokens name the last order of a page that has more below it; any other is refused.
		for _, token := range []string{
			paging.Token(orders.HistoryTokenKind, 0),     // nothing below it
			paging.Token(orders.HistoryTokenKind, n+2),   // past the end
			paging.Token(orders.HistoryTokenKind+1, n/2), // another list's
		} {
			if _, err := o.ListByUser(ctx, orders.ListRequest{UserID: user, PageToken: token}); validation.FieldOf(err) != "page_token" {
				t.Errorf("token %q: %v, want a validation error on page_token", token, err)
			}
		}
	})
}

// natsMaxPayload is nats-server's default max_payload: the most a JetStream value can hold.
const natsMaxPayload = 1 << 20

// TestHistoryPastTheOldLimit: a history used to be one document, which stopped growing at
// NATS's 1 MiB value limit, some 30,000 orders: from then on every checkout of its user was
// charged and failed to record its order. Here a user starts from such a document, at the
// limit, on real JetStream, and goes on checking out; the history then holds more than the
// old layout can, and reads whole and in order.
func TestHistoryPastTheOldLimit(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t, jetStreamBackend(t))
	product, user := w.shop(t)
	o := w.orders(w.deps())

	// The old layout: {"order_ids": [newest first]} under the user's ID, written up to the
	// largest value the store takes (leaving room for the write's headers).
	type oldHistory struct {
		OrderIDs []string `json:"order_ids"`
	}
	start := time.Now().Add(-time.Hour)
	var legacy oldHistory
	for i := 0; ; i++ {
		id := ids.New("ord", start.Add(time.Duration(i)*time.Millisecond))
		if size := len(`{"order_ids":[]}`) + (len(id)+3)*(len(legacy.OrderIDs)+1); size > natsMaxPayload-200 {
			break
		}
		legacy.OrderIDs = append(legacy.OrderIDs, id)
	}
	slices.Reverse(legacy.OrderIDs)
	if _, err := kv.Create(ctx, w.stores.UserOrders, user, legacy); err != nil {
		t.Fatalf("write the old history of %d orders: %v", len(legacy.OrderIDs), err)
	}

	// 20 checkouts, as many more orders as the old layout could never take.
	made := checkoutMany(t, w, o, product, user, 20)
	wantIDs := append(slices.Clone(made), legacy.OrderIDs...)
	data, err := json.Marshal(oldHistory{OrderIDs: wantIDs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.stores.UserOrders.Create(ctx, "old-layout-probe", data); err == nil || len(data) <= natsMaxPayload {
		t.Fatalf("the old layout of %d orders is %d bytes and the store took it (%v): not past the old limit", len(wantIDs), len(data), err)
	}
	t.Logf("%d orders, %d bytes in the old layout", len(wantIDs), len(data))

	head, sealed, err := o.HistoryHead(ctx, user)
	if err != nil || len(head) > orders.HistoryChunkSize || sealed*orders.HistoryChunkSize+len(head) != len(wantIDs) {
		t.Fatalf("head of %d IDs and %d chunks (%v), want at most %d IDs and %d orders in all", len(head), sealed, err, orders.HistoryChunkSize, len(wantIDs))
	}
	if got, err := o.HistoryIDs(ctx, user); err != nil || !slices.Equal(got, wantIDs) {
		t.Fatalf("the whole history: %d IDs (%v), want the %d, newest first", len(got), err, len(wantIDs))
	}

	// Pages of orders: the old orders exist too (here, the ones the pages read).
	mid := len(wantIDs) / 2
	var recorded []string
	recorded = append(recorded, wantIDs[20:61]...) // a page of 40 and the one that says it is not the last
	recorded = append(recorded, wantIDs[mid:mid+60]...)
	if err := kv.Concurrently(len(recorded), func(i int) error {
		_, err := kv.Create(ctx, w.stores.Orders, recorded[i], orders.Order{
			ID: recorded[i], UserID: user, Status: orders.StatusShipped, Items: []orders.Item{}, Subtotal: money.Cents(100),
			Shipping: money.Cents(500), Total: money.Cents(600), TrackingID: "trk", CreatedAt: start,
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	listed := func(req orders.ListRequest) ([]string, string) {
		t.Helper()
		req.UserID = user
		page, err := o.ListByUser(ctx, req)
		if err != nil {
			t.Fatalf("ListByUser(%+v): %v", req, err)
		}
		var got []string
		for _, ord := range page.Orders {
			got = append(got, ord.ID)
		}
		return got, page.NextPageToken
	}
	first, token := listed(orders.ListRequest{})
	if !slices.Equal(first, made) || token == "" {
		t.Fatalf("first page: %v (next %q), want the 20 new orders and more", first, token)
	}
	if second, _ := listed(orders.ListRequest{PageToken: token, PageSize: 40}); !slices.Equal(second, wantIDs[20:60]) {
		t.Fatalf("second page: %v, want the 40 newest of the old history", second)
	}
	// The page below the order at position mid from the newest (ordinal len-1-mid).
	deep := paging.Token(orders.HistoryTokenKind, uint64(len(wantIDs)-1-mid))
	if got, _ := listed(orders.ListRequest{PageToken: deep, PageSize: 50}); !slices.Equal(got, wantIDs[mid+1:mid+51]) {
		t.Fatalf("a page in the middle: %v, want %v", got, wantIDs[mid+1:mid+51])
	}
}

// TestDeclinedCheckoutsLeaveNoHistory: checkouts that fail before they are paid (a declined
// card, here ten of them) write nothing to their user's history, so no client can fill a
// history with IDs that name no order, which every list would read past; the paid order
// after them is the history's one ID.
func TestDeclinedCheckoutsLeaveNoHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, _ := w.shop(t)
		o := w.orders(w.deps())
		const user = "u-declined"
		if _, err := w.carts.Add(ctx, user, cart.Item{ProductID: product, Quantity: 1}); err != nil {
			t.Fatal(err)
		}
		declined := orderstest.Request(user)
		declined.Card.Number = orderstest.CardDeclined
		for i := range 10 {
			if _, err := o.Checkout(ctx, ids.New("key", time.Now()), declined); !errors.Is(err, payments.ErrDeclined) {
				t.Fatalf("declined checkout %d: %v, want payments.ErrDeclined", i, err)
			}
		}
		if head, sealed, err := o.HistoryHead(ctx, user); err != nil || len(head) != 0 || sealed != 0 {
			t.Fatalf("history after declined checkouts: %v (%d chunks sealed), %v; want nothing", head, sealed, err)
		}
		ord, err := o.Checkout(ctx, ids.New("key", time.Now()), orderstest.Request(user))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := o.HistoryIDs(ctx, user); err != nil || !slices.Equal(got, []string{ord.ID}) {
			t.Fatalf("history: %v, %v; want [%s]", got, err, ord.ID)
		}
	})
}
