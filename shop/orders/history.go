//go:build !mitosis_group || mitosis_orders

// Part of the implementation: only the binaries that run orders link it (bounded.Group.BuildTags).

package orders

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/paging"
)

// A user's order history is a list of order IDs in the UserOrders bucket, kept in documents
// of bounded size, so that a history has no limit (a single document stopped at NATS's 1 MiB
// value limit, some 30,000 orders, after which every checkout of its user failed once
// charged):
//
//   - the head, under the user's ID: the newest order IDs, newest first (at most
//     historyChunkSize after a write), and how many chunks of older ones are sealed;
//   - sealed chunks of historyChunkSize IDs, oldest first, under chunkKey(user, n): chunk n
//     holds the user's orders n*historyChunkSize to (n+1)*historyChunkSize-1, counted from
//     their first (an order's ordinal). A chunk never changes once written.
//
// Every order is added by one compare-and-set write of the head, after the head's oldest IDs
// have been sealed into a chunk when it is full. Reads, by ordinal, touch the head and at
// most two chunks per page, whatever the length of the history.
//
// An order is added by its checkout once it is paid, after the saga records the charge and
// while its stock is committed (the step AddToHistory, a roll-forward step): a checkout that
// fails before that adds nothing, so declined cards cannot fill a history with IDs that name
// no order. A roll-forward that runs again finds the ID in the head and adds nothing; it
// would add it a second time only if the user's head had been sealed past it meanwhile (a
// hundred more orders of that user between the two runs: recovery runs within a minute).
// The one ID that names no order is that of a checkout whose commit found its reservation
// lapsed, compensated in full after the history write: reads skip it.
//
// Before chunks, the head was the whole history in this very shape: such a document reads as
// a head with nothing sealed, and the next order of its user seals it into chunks.
type historyHead struct {
	OrderIDs []string `json:"order_ids"`        // newest first
	Sealed   int      `json:"sealed,omitempty"` // chunks 0 to Sealed-1 exist
}

// historyChunk is a sealed chunk of a history.
type historyChunk struct {
	OrderIDs []string `json:"order_ids"` // historyChunkSize IDs, oldest first
}

// historyChunkSize is how many IDs a chunk holds and the most a head holds after a write:
// at some 35 bytes an ID, a head stays under 4 KB, and a page of up to paging.MaxSize+1
// orders spans the head and at most two chunks.
const historyChunkSize = 100

// historyTokenKind marks the page tokens of histories (package paging).
const historyTokenKind = 'o'

func chunkKey(user string, n int) string { return kv.Key(user, "chunk", strconv.Itoa(n)) }

// total is the number of orders in the history.
func (h historyHead) total() uint64 {
	return uint64(h.Sealed)*historyChunkSize + uint64(len(h.OrderIDs))
}

// historyRead is a read of a user's history head: rev 0 when the user has none.
type historyRead struct {
	head historyHead
	rev  uint64
	err  error
}

func (o *Orders) readHistory(ctx context.Context, user string) historyRead {
	head, rev, err := kv.Get[historyHead](ctx, o.stores.UserOrders, user)
	if errors.Is(err, kv.ErrNotFound) {
		return historyRead{}
	}
	return historyRead{head: head, rev: rev, err: err}
}

// maxHistoryAttempts bounds the writes of one addToHistory: a user's concurrent checkouts
// take turns at the head, and every round one of them lands.
const maxHistoryAttempts = 100

// addToHistory makes orderID the newest order of user's history, starting from cur, a read
// of the head that may be out of date by now (the write then conflicts and reads again).
func (o *Orders) addToHistory(ctx context.Context, user, orderID string, cur historyRead) error {
	for attempt := 0; ; attempt++ {
		if cur.err != nil {
			return fmt.Errorf("read history of %s: %w", user, cur.err)
		}
		head := cur.head
		if slices.Contains(head.OrderIDs, orderID) {
			return nil // an earlier attempt's write landed after all
		}
		if len(head.OrderIDs) >= historyChunkSize {
			var err error
			if head, err = o.sealHistory(ctx, user, head); err != nil {
				return err
			}
		}
		// A new slice (cur's may be read again): one allocation, where a clone then an
		// insert took two.
		head.OrderIDs = append(append(make([]string, 0, len(head.OrderIDs)+1), orderID), head.OrderIDs...)
		data, err := kv.EncodeBuffer(&head)
		if err != nil {
			return fmt.Errorf("encode history of %s: %w", user, err)
		}
		if cur.rev == 0 {
			_, err = o.stores.UserOrders.Create(ctx, user, data.Bytes())
		} else {
			_, err = o.stores.UserOrders.Update(ctx, user, data.Bytes(), cur.rev)
		}
		data.Free()
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, kv.ErrConflict) && !errors.Is(err, kv.ErrExists):
			return fmt.Errorf("add order %s to the history of %s: %w", orderID, user, err)
		case attempt+1 == maxHistoryAttempts:
			return fmt.Errorf("add order %s to the history of %s: %d attempts: %w", orderID, user, attempt+1, err)
		}
		if err := kv.Backoff(ctx, attempt); err != nil {
			return err
		}
		cur = o.readHistory(ctx, user)
	}
}

// sealHistory writes the oldest IDs of a full head into chunks, as many whole chunks as it
// holds, and returns the head without them (not yet written: the caller's compare-and-set
// of the head is what makes the chunks part of the history). Writers that seal the same head
// concurrently write the same chunks: a head with Sealed = n and at least a chunk's worth
// of IDs has only ever one oldest chunk's worth.
func (o *Orders) sealHistory(ctx context.Context, user string, head historyHead) (historyHead, error) {
	n := len(head.OrderIDs) / historyChunkSize
	keep := len(head.OrderIDs) - n*historyChunkSize
	err := kv.Concurrently(n, func(i int) error {
		// Chunk Sealed+i holds the IDs at head positions keep+(n-1-i)*size onwards, newest
		// first there, oldest first in the chunk.
		from := keep + (n-1-i)*historyChunkSize
		chunk := historyChunk{OrderIDs: slices.Clone(head.OrderIDs[from : from+historyChunkSize])}
		slices.Reverse(chunk.OrderIDs)
		key := chunkKey(user, head.Sealed+i)
		_, err := kv.Create(ctx, o.stores.UserOrders, key, chunk)
		if !errors.Is(err, kv.ErrExists) {
			return err
		}
		had, _, err := kv.Get[historyChunk](ctx, o.stores.UserOrders, key)
		if err != nil {
			return err
		}
		if !slices.Equal(had.OrderIDs, chunk.OrderIDs) {
			return fmt.Errorf("chunk %d holds other orders than its head's", head.Sealed+i)
		}
		return nil
	})
	if err != nil {
		return historyHead{}, fmt.Errorf("seal the history of %s: %w", user, err)
	}
	return historyHead{OrderIDs: head.OrderIDs[:keep], Sealed: head.Sealed + n}, nil
}

// historyIDs returns the IDs of the orders with ordinals lo to hi-1 (within the history of
// head), newest first, reading the chunks that hold them.
func (o *Orders) historyIDs(ctx context.Context, user string, head historyHead, lo, hi uint64) ([]string, error) {
	sealed := uint64(head.Sealed) * historyChunkSize
	total := head.total()
	out := make([]string, 0, hi-lo)
	for ord := hi; ord > max(lo, sealed); ord-- {
		out = append(out, head.OrderIDs[total-ord])
	}
	if lo >= sealed {
		return out, nil
	}
	// The chunks that hold ordinals lo to min(hi, sealed)-1, newest first.
	last := int((min(hi, sealed) - 1) / historyChunkSize)
	keys := make([]string, 0, 2)
	for c := last; c >= int(lo/historyChunkSize); c-- {
		keys = append(keys, chunkKey(user, c))
	}
	chunks, found, err := kv.GetEach[historyChunk](ctx, o.stores.UserOrders, keys)
	if err != nil {
		return nil, fmt.Errorf("read the history of %s: %w", user, err)
	}
	for i, chunk := range chunks {
		c := uint64(last - i)
		if !found[i] || len(chunk.OrderIDs) != historyChunkSize {
			return nil, fmt.Errorf("read the history of %s: chunk %d is missing or not whole", user, c)
		}
		// Ordinal ord-1 is at index ord-1-start of the chunk, which is oldest first.
		start := c * historyChunkSize
		for ord := min(hi, start+historyChunkSize); ord > max(lo, start); ord-- {
			out = append(out, chunk.OrderIDs[ord-1-start])
		}
	}
	return out, nil
}

func (o *Orders) ListByUser(ctx context.Context, req ListRequest) (Page, error) {
	if err := ids.Check("user_id", req.UserID); err != nil {
		return Page{}, err
	}
	size, err := paging.Size(req.PageSize, DefaultPageSize)
	if err != nil {
		return Page{}, err
	}
	var below uint64 // the page lists the orders with ordinals below this, newest first
	if req.PageToken != "" {
		if below, err = paging.Position(req.PageToken, historyTokenKind); err != nil {
			return Page{}, err
		}
	}
	cur := o.readHistory(ctx, req.UserID)
	if cur.err != nil {
		return Page{}, fmt.Errorf("orders of %s: %w", req.UserID, cur.err)
	}
	total := cur.head.total()
	switch {
	case req.PageToken == "":
		below = total
	case below == 0 || below > total:
		// A token names the ordinal of the last order of a page that had more after it.
		return Page{}, paging.ErrBadToken()
	}

	// Gather size+1 orders, to know whether this page is the last. IDs of checkouts that
	// were never recorded (see historyHead) are passed over, reading further down.
	type listed struct {
		ord   uint64
		order Order
	}
	var found []listed
	for next := below; next > 0 && len(found) <= size; {
		lo := next - min(next, uint64(size+1-len(found)))
		orderIDs, err := o.historyIDs(ctx, req.UserID, cur.head, lo, next)
		if err != nil {
			return Page{}, err
		}
		recs, ok, err := kv.GetEach[Order](ctx, o.stores.Orders, orderIDs)
		if err != nil {
			return Page{}, fmt.Errorf("orders of %s: %w", req.UserID, err)
		}
		for i, rec := range recs {
			if ok[i] {
				found = append(found, listed{ord: next - 1 - uint64(i), order: rec})
			}
		}
		next = lo
	}
	page := Page{Orders: make([]Order, 0, min(size, len(found)))}
	for _, l := range found[:min(size, len(found))] {
		page.Orders = append(page.Orders, l.order)
	}
	if len(found) > size {
		page.NextPageToken = paging.Token(historyTokenKind, found[size-1].ord)
	}
	return page, nil
}
