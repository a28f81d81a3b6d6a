// Package notifytest is the conformance suite of notify.Service, written once against the
// interface: the implementation runs it over the memory and JetStream stores, and services/
// runs it through a gRPC client and server. It is a test helper, not a fake notify service.
package notifytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/paging/pagingtest"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Run runs the suite; newService returns a service with an empty store for each test.
func Run(t *testing.T, newService func(t *testing.T) notify.Service) {
	t.Run("ExactlyOnceUnderConcurrentDuplicates", func(t *testing.T) {
		ctx := context.Background()
		svc := newService(t)

		const n = 10
		got := make([]notify.Notification, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = svc.Notify(ctx, "user-1", notify.KindOrderPaid, "ord-1") })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Notify %d: %v", i, errs[i])
			}
			if !same(got[i], got[0]) {
				t.Fatalf("duplicate Notify returned %+v and %+v, want the same notification", got[i], got[0])
			}
		}
		list := mustList(t, svc, "user-1")
		if len(list) != 1 || !same(list[0], got[0]) {
			t.Fatalf("List = %+v, want exactly %+v", list, got[0])
		}
	})

	t.Run("DuplicateReturnsFirst", func(t *testing.T) {
		svc := newService(t)
		first := mustNotify(t, svc, "user-1", notify.KindOrderPaid, "ord-1")
		mustNotify(t, svc, "user-1", notify.KindOrderShipped, "ord-1")
		again := mustNotify(t, svc, "user-1", notify.KindOrderPaid, "ord-1")
		if !same(again, first) {
			t.Fatalf("Notify again = %+v, want the first %+v", again, first)
		}
		if list := mustList(t, svc, "user-1"); len(list) != 2 {
			t.Fatalf("List = %+v, want 2 notifications", list)
		}
	})

	t.Run("ConcurrentDistinctNotificationsAreAllKept", func(t *testing.T) {
		// Different orders of one user write the same document: none may be lost.
		ctx := context.Background()
		svc := newService(t)
		const n = 10
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = svc.Notify(ctx, "user-1", notify.KindOrderPaid, fmt.Sprintf("ord-%d", i))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Notify %d: %v", i, err)
			}
		}
		list := mustList(t, svc, "user-1")
		seen := map[string]bool{}
		for _, n := range list {
			seen[n.OrderID] = true
		}
		if len(list) != n || len(seen) != n {
			t.Fatalf("List has %d notifications for %d orders, want %d distinct: %+v", len(list), len(seen), n, list)
		}
		wantOrdered(t, list)
	})

	t.Run("OrderingAndKinds", func(t *testing.T) {
		svc := newService(t)
		before := time.Now().UTC().Add(-time.Minute)
		want := []notify.Notification{
			mustNotify(t, svc, "user-1", notify.KindOrderPaid, "ord-1"),
			mustNotify(t, svc, "user-1", notify.KindOrderPaid, "ord-2"),
			mustNotify(t, svc, "user-1", notify.KindOrderShipped, "ord-1"),
			mustNotify(t, svc, "user-1", notify.KindOrderShipped, "ord-2"),
		}
		other := mustNotify(t, svc, "user-2", notify.KindOrderPaid, "ord-3")

		kinds := []string{notify.KindOrderPaid, notify.KindOrderPaid, notify.KindOrderShipped, notify.KindOrderShipped}
		orders := []string{"ord-1", "ord-2", "ord-1", "ord-2"}
		ids := map[string]bool{other.ID: true}
		for i, n := range want {
			if n.Kind != kinds[i] || n.OrderID != orders[i] {
				t.Fatalf("Notify %d = %+v, want kind %s order %s", i, n, kinds[i], orders[i])
			}
			if n.ID == "" || ids[n.ID] {
				t.Fatalf("Notify %d: ID %q empty or reused", i, n.ID)
			}
			ids[n.ID] = true
			if n.CreatedAt.Before(before) || n.CreatedAt.Location() != time.UTC {
				t.Fatalf("Notify %d: created_at %v, want a recent time in UTC", i, n.CreatedAt)
			}
		}

		list := mustList(t, svc, "user-1")
		if len(list) != len(want) {
			t.Fatalf("List = %+v, want %+v", list, want)
		}
		for i := range want {
			if !same(list[i], want[i]) {
				t.Fatalf("List[%d] = %+v, want %+v (oldest first)", i, list[i], want[i])
			}
		}
		wantOrdered(t, list)
		if list := mustList(t, svc, "user-2"); len(list) != 1 || !same(list[0], other) {
			t.Fatalf("List user-2 = %+v, want only %+v", list, other)
		}
	})

	t.Run("UnknownUserIsEmpty", func(t *testing.T) {
		svc := newService(t)
		mustNotify(t, svc, "user-1", notify.KindOrderPaid, "ord-1")
		list := mustList(t, svc, "nobody")
		if list == nil || len(list) != 0 {
			t.Fatalf("List unknown user = %#v, want an empty non-nil slice", list)
		}
	})

	t.Run("OddUserIDs", func(t *testing.T) {
		// User IDs come from URLs; the store must keep them apart whatever their bytes.
		svc := newService(t)
		users := []string{"a.b", "a b", "a/b", "ü*>"}
		for i, u := range users {
			mustNotify(t, svc, u, notify.KindOrderPaid, fmt.Sprintf("ord-%d", i))
		}
		for i, u := range users {
			list := mustList(t, svc, u)
			if len(list) != 1 || list[0].OrderID != fmt.Sprintf("ord-%d", i) {
				t.Fatalf("List %q = %+v, want ord-%d only", u, list, i)
			}
		}
	})

	t.Run("Validation", func(t *testing.T) {
		ctx := context.Background()
		svc := newService(t)
		for _, tc := range []struct {
			user, kind, order string
			field             string
		}{
			{"", notify.KindOrderPaid, "ord-1", "user_id"},
			{"user-1", notify.KindOrderPaid, "", "order_id"},
			{"user-1", "", "ord-1", "kind"},
			{"user-1", "order-refunded", "ord-1", "kind"},
		} {
			_, err := svc.Notify(ctx, tc.user, tc.kind, tc.order)
			if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != tc.field {
				t.Errorf("Notify(%q, %q, %q) = %v (field %q), want a validation error on %q",
					tc.user, tc.kind, tc.order, err, validation.FieldOf(err), tc.field)
			}
		}
		if list := mustList(t, svc, "user-1"); len(list) != 0 {
			t.Errorf("invalid Notify stored %+v", list)
		}
		if _, err := svc.List(ctx, notify.ListRequest{}); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "user_id" {
			t.Errorf("List empty user: got %v, want a validation error on user_id", err)
		}
	})

	t.Run("Pages", func(t *testing.T) {
		ctx := context.Background()
		svc := newService(t)
		var want []string // oldest first
		for i := range 7 {
			want = append(want, mustNotify(t, svc, "user-1", notify.KindOrderPaid, fmt.Sprintf("ord-%d", i)).ID)
		}
		for _, tc := range []struct {
			size  int
			pages []int
		}{{3, []int{3, 3, 1}}, {1, []int{1, 1, 1, 1, 1, 1, 1}}, {6, []int{6, 1}}, {7, []int{7}}, {0, []int{7}}, {100, []int{7}}} {
			var got []string
			var pages []int
			token := ""
			for range len(want) + 1 {
				page, err := svc.List(ctx, notify.ListRequest{UserID: "user-1", PageSize: tc.size, PageToken: token})
				if err != nil {
					t.Fatalf("page size %d, token %q: %v", tc.size, token, err)
				}
				for _, n := range page.Notifications {
					got = append(got, n.ID)
				}
				pages = append(pages, len(page.Notifications))
				if token = page.NextPageToken; token == "" {
					break
				}
			}
			if !slices.Equal(got, want) || !slices.Equal(pages, tc.pages) {
				t.Errorf("page size %d: %v in pages %v, want %v in pages %v", tc.size, got, pages, want, tc.pages)
			}
		}

		first, err := svc.List(ctx, notify.ListRequest{UserID: "user-1", PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []struct {
			req   notify.ListRequest
			field string
		}{
			{notify.ListRequest{UserID: "user-1", PageSize: -1}, "page_size"},
			{notify.ListRequest{UserID: "user-1", PageSize: paging.MaxSize + 1}, "page_size"},
			{notify.ListRequest{UserID: "user-1", PageToken: "!!"}, "page_token"},
			{notify.ListRequest{UserID: "user-1", PageToken: first.NextPageToken + "A"}, "page_token"},
			{notify.ListRequest{UserID: "user-2", PageToken: first.NextPageToken}, "page_token"}, // past user-2's end
		} {
			if _, err := svc.List(ctx, bad.req); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != bad.field {
				t.Errorf("List(%+v): %v, want a validation error on %s", bad.req, err, bad.field)
			}
		}
	})
}

// ListAll walks every page of a user's notifications (of the default size) and returns them
// all, oldest first, or an error if the pages break their rules (pagingtest.Walk).
func ListAll(ctx context.Context, svc notify.Service, userID string) ([]notify.Notification, error) {
	return pagingtest.Walk(ctx, "notifications of "+userID, notify.DefaultPageSize,
		func(n notify.Notification) string { return n.ID },
		func(ctx context.Context, token string) ([]notify.Notification, string, error) {
			page, err := svc.List(ctx, notify.ListRequest{UserID: userID, PageToken: token})
			return page.Notifications, page.NextPageToken, err
		})
}

func mustNotify(t *testing.T, svc notify.Service, userID, kind, orderID string) notify.Notification {
	t.Helper()
	n, err := svc.Notify(context.Background(), userID, kind, orderID)
	if err != nil {
		t.Fatalf("Notify(%q, %q, %q): %v", userID, kind, orderID, err)
	}
	return n
}

func mustList(t *testing.T, svc notify.Service, userID string) []notify.Notification {
	t.Helper()
	list, err := ListAll(context.Background(), svc, userID)
	if err != nil {
		t.Fatalf("List(%q): %v", userID, err)
	}
	return list
}

// same compares notifications field by field, times as instants (a transport may change
// their representation but not the instant).
func same(a, b notify.Notification) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.OrderID == b.OrderID && a.CreatedAt.Equal(b.CreatedAt)
}

// wantOrdered checks that a list is oldest first.
func wantOrdered(t *testing.T, list []notify.Notification) {
	t.Helper()
	for i := 1; i < len(list); i++ {
		if list[i].CreatedAt.Before(list[i-1].CreatedAt) {
			t.Fatalf("List not oldest first: [%d] %v before [%d] %v", i, list[i].CreatedAt, i-1, list[i-1].CreatedAt)
		}
	}
}
