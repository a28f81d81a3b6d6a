package orders

import (
	"context"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Internals of the order history for the package's external tests.

// HistoryChunkSize and HistoryTokenKind are historyChunkSize and historyTokenKind.
const (
	HistoryChunkSize = historyChunkSize
	HistoryTokenKind = historyTokenKind
)

// AddToHistory adds orderID to user's history as a checkout does once it has charged.
func (o *Orders) AddToHistory(ctx context.Context, user, orderID string) error {
	return o.addToHistory(ctx, user, orderID, o.readHistory(ctx, user))
}

// HistoryHead returns the IDs a user's history head holds and how many chunks are sealed.
func (o *Orders) HistoryHead(ctx context.Context, user string) ([]string, int, error) {
	cur := o.readHistory(ctx, user)
	return cur.head.OrderIDs, cur.head.Sealed, cur.err
}

// HistoryIDs returns a user's whole history, newest first, read by the ranges of ordinals
// that ListByUser reads, but without reading the orders.
func (o *Orders) HistoryIDs(ctx context.Context, user string) ([]string, error) {
	cur := o.readHistory(ctx, user)
	if cur.err != nil {
		return nil, cur.err
	}
	var out []string
	for hi := cur.head.total(); hi > 0; {
		lo := hi - min(hi, DefaultPageSize+1)
		ids, err := o.historyIDs(ctx, user, cur.head, lo, hi)
		if err != nil {
			return nil, err
		}
		out = append(out, ids...)
		hi = lo
	}
	return out, nil
}

// SagaState returns the state of the saga record of an idempotency key, so that a test can
// wait for a background recovery to finish a checkout, not only to publish its event.
func (o *Orders) SagaState(ctx context.Context, key string) (string, error) {
	rec, _, err := kv.Get[saga](ctx, o.stores.Sagas, key)
	return rec.State, err
}

// StateDone is the state of a finished checkout's saga record.
const StateDone = stateDone
