package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/notify/notifytest"
	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

func forEachStore(t *testing.T, f func(t *testing.T, b func(t *testing.T) kv.Bucket)) {
	t.Run("Memory", func(t *testing.T) { f(t, func(*testing.T) kv.Bucket { return kv.NewMemory() }) })
	t.Run("JetStream", func(t *testing.T) {
		srv := natsjstest.New(t)
		f(t, func(t *testing.T) kv.Bucket { return srv.Bucket(t, "notifications") })
	})
}

// walk reads every page of a user's notifications of the given size, failing t unless every
// page but the last is full, and returns them in the order listed and the page lengths.
func walk(t *testing.T, svc notify.Service, user string, size int) (got []notify.Notification, pages []int) {
	t.Helper()
	token := ""
	for range 1000 {
		page, err := svc.List(t.Context(), notify.ListRequest{UserID: user, PageSize: size, PageToken: token})
		if err != nil {
			t.Fatalf("page %d of size %d: %v", len(pages)+1, size, err)
		}
		got = append(got, page.Notifications...)
		pages = append(pages, len(page.Notifications))
		if token = page.NextPageToken; token == "" {
			return got, pages
		}
		if len(page.Notifications) != size {
			t.Fatalf("page %d has %d notifications and a next page, want %d", len(pages), len(page.Notifications), size)
		}
	}
	t.Fatal("more than 1000 pages")
	return nil, nil
}

// expectList fails t unless the user's notifications, walked in pages of every size, are
// want, in that order, with created_at never going back.
func expectList(t *testing.T, svc notify.Service, user string, want []notify.Notification) {
	t.Helper()
	for _, size := range []int{3, 7, notify.DefaultPageSize} {
		got, pages := walk(t, svc, user, size)
		if !slices.EqualFunc(got, want, same) {
			t.Fatalf("page size %d: %d notifications listed, want the %d, oldest first", size, len(got), len(want))
		}
		if wantPages := max(1, (len(want)+size-1)/size); len(pages) != wantPages {
			t.Errorf("page size %d: %d pages, want %d", size, len(pages), wantPages)
		}
	}
	for i := 1; i < len(want); i++ {
		if want[i].CreatedAt.Before(want[i-1].CreatedAt) {
			t.Fatalf("created_at went back at %d: %v after %v", i, want[i].CreatedAt, want[i-1].CreatedAt)
		}
	}
}

func same(a, b notify.Notification) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.OrderID == b.OrderID && a.CreatedAt.Equal(b.CreatedAt)
}

// TestNotificationsAcrossChunks: more than two chunks of notifications of a user with the
// longest ID list whole and in order at every page size, and a notification made again, once
// sealed in a chunk, alone or by concurrent duplicates, is the first one still.
func TestNotificationsAcrossChunks(t *testing.T) {
	forEachStore(t, func(t *testing.T, bucket func(t *testing.T) kv.Bucket) {
		ctx := t.Context()
		svc := notify.New(bucket(t), time.Now)
		// IDs of the longest kind, none of whose bytes a store keeps as they are: the keys of
		// chunks and receipts stay within kv.MaxKeyLen.
		user := strings.Repeat("ü", ids.MaxLen/2)
		order := func(i int) string { return fmt.Sprintf("%s%04d", strings.Repeat("ö", (ids.MaxLen-4)/2), i) }
		const n = 2*notify.ChunkSize + 30
		var want []notify.Notification
		for i := range n {
			want = append(want, mustNotify(t, svc, user, notify.KindOrderPaid, order(i)))
		}
		if held, sealed, err := notify.Inbox(ctx, svc, user); err != nil || sealed != 2 || held != n-2*notify.ChunkSize {
			t.Fatalf("inbox of %d and %d chunks (%v), want %d and 2", held, sealed, err, n-2*notify.ChunkSize)
		}
		// Again: the oldest (in chunk 0), one in chunk 1 and the newest (in the inbox), the
		// first ten times at once.
		var wg sync.WaitGroup
		again := make([]notify.Notification, 10)
		errs := make([]error, 10)
		for i := range again {
			wg.Go(func() { again[i], errs[i] = svc.Notify(ctx, user, notify.KindOrderPaid, order(0)) })
		}
		wg.Wait()
		for i := range again {
			if errs[i] != nil || !same(again[i], want[0]) {
				t.Fatalf("Notify again of the oldest: %+v %v, want %+v", again[i], errs[i], want[0])
			}
		}
		for _, i := range []int{notify.ChunkSize + 5, n - 1} {
			if got := mustNotify(t, svc, user, notify.KindOrderPaid, order(i)); !same(got, want[i]) {
				t.Fatalf("Notify again of number %d: %+v, want %+v", i, got, want[i])
			}
		}
		expectList(t, svc, user, want)
		if got, err := notifytest.ListAll(ctx, svc, user); err != nil || len(got) != n {
			t.Fatalf("ListAll: %d notifications %v, want %d", len(got), err, n)
		}

		// Tokens name the first notification of a page; any other is refused.
		for _, token := range []string{paging.Token(notify.TokenKind, n), paging.Token(notify.TokenKind+1, 5)} {
			if _, err := svc.List(ctx, notify.ListRequest{UserID: user, PageToken: token}); validation.FieldOf(err) != "page_token" {
				t.Errorf("token %q: %v, want a validation error on page_token", token, err)
			}
		}
	})
}

// natsMaxPayload is nats-server's default max_payload: the most a JetStream value can hold.
const natsMaxPayload = 1 << 20

// TestNotificationsPastTheOldLimit: a user's notifications used to be one document, which
// stopped growing at NATS's 1 MiB value limit, some 7,000 notifications: every later one was
// lost. Here a user starts from such a document, at the limit, on real JetStream, and gets
// more; they then hold more than the old layout can, list whole and in order, and a
// notification of the old document made again is still the first one.
func TestNotificationsPastTheOldLimit(t *testing.T) {
	ctx := t.Context()
	srv := natsjstest.New(t)
	b := srv.Bucket(t, "notifications")
	svc := notify.New(b, time.Now)

	// The old layout: {"notifications": [oldest first]} under the user's ID, written up to
	// the largest value the store takes (leaving room for the write's headers).
	type oldInbox struct {
		Notifications []notify.Notification `json:"notifications"`
	}
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	var legacy oldInbox
	size := len(`{"notifications":[]}`)
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * time.Millisecond)
		n := notify.Notification{ID: ids.New("ntf", at), Kind: notify.KindOrderPaid, OrderID: ids.New("ord", at), CreatedAt: at}
		data, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if size += len(data) + 1; size > natsMaxPayload-200 {
			break
		}
		legacy.Notifications = append(legacy.Notifications, n)
	}
	if _, err := kv.Create(ctx, b, "user-1", legacy); err != nil {
		t.Fatalf("write the old inbox of %d notifications: %v", len(legacy.Notifications), err)
	}

	want := slices.Clone(legacy.Notifications)
	for i := range 150 {
		want = append(want, mustNotify(t, svc, "user-1", notify.KindOrderShipped, fmt.Sprintf("ord-%d", i)))
	}
	data, err := json.Marshal(oldInbox{Notifications: want})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "old-layout-probe", data); err == nil || len(data) <= natsMaxPayload {
		t.Fatalf("the old layout of %d notifications is %d bytes and the store took it (%v): not past the old limit", len(want), len(data), err)
	}
	t.Logf("%d notifications, %d bytes in the old layout", len(want), len(data))

	for _, old := range []notify.Notification{legacy.Notifications[0], legacy.Notifications[len(legacy.Notifications)/2], legacy.Notifications[len(legacy.Notifications)-1]} {
		if got := mustNotify(t, svc, "user-1", old.Kind, old.OrderID); !same(got, old) {
			t.Fatalf("Notify again of %s %s: %+v, want the old %+v", old.Kind, old.OrderID, got, old)
		}
	}
	if held, sealed, err := notify.Inbox(ctx, svc, "user-1"); err != nil || held > notify.ChunkSize || sealed*notify.ChunkSize+held != len(want) {
		t.Fatalf("inbox of %d and %d chunks (%v), want at most %d and %d notifications in all", held, sealed, err, notify.ChunkSize, len(want))
	}
	got, pages := walk(t, svc, "user-1", paging.MaxSize)
	if !slices.EqualFunc(got, want, same) || len(pages) != (len(want)+paging.MaxSize-1)/paging.MaxSize {
		t.Fatalf("%d notifications in %d pages, want the %d, oldest first", len(got), len(pages), len(want))
	}
}

func mustNotify(t *testing.T, svc notify.Service, userID, kind, orderID string) notify.Notification {
	t.Helper()
	n, err := svc.Notify(context.Background(), userID, kind, orderID)
	if err != nil {
		t.Fatalf("Notify(%q, %q, %q): %v", userID, kind, orderID, err)
	}
	return n
}

// TestSealedRecordsAreNotRemembered: what sealing writes once (a chunk, the receipts of its
// notifications) stays out of the service's cache, which is for the inboxes it writes again.
func TestSealedRecordsAreNotRemembered(t *testing.T) {
	ctx := t.Context()
	svc := notify.New(kv.NewMemory(), time.Now)
	const user = "u-sealed"
	var first notify.Notification
	for i := range notify.ChunkSize + 1 {
		n, err := svc.Notify(ctx, user, notify.KindOrderPaid, fmt.Sprintf("ord-%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = n
		}
	}
	if _, sealed, err := notify.Inbox(ctx, svc, user); err != nil || sealed != 1 {
		t.Fatalf("sealed chunks: %d, %v; want 1", sealed, err)
	}
	if !notify.Remembered(svc, user) {
		t.Error("the inbox is not remembered")
	}
	for _, key := range []string{notify.ChunkKey(user, 0), notify.ReceiptKey(user, first.Kind, first.OrderID)} {
		if notify.Remembered(svc, key) {
			t.Errorf("%s is remembered, want it left to the store", key)
		}
	}
}
