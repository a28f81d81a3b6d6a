package notify

import (
	"context"
	"errors"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Internals of the notification lists for the package's external tests.

// ChunkSize and TokenKind are inboxChunkSize and tokenKind.
const (
	ChunkSize = inboxChunkSize
	TokenKind = tokenKind
)

// Inbox returns how many notifications a user's inbox holds and how many chunks are sealed.
func Inbox(ctx context.Context, svc Service, userID string) (held, sealed int, err error) {
	box, _, err := kv.Get[inbox](ctx, svc.(*service).inboxes, userID)
	if errors.Is(err, kv.ErrNotFound) {
		err = nil
	}
	return len(box.Notifications), box.Sealed, err
}

// Remembered says whether the service's cache of the bucket remembers key (kv.Peek).
func Remembered(svc Service, key string) bool {
	_, _, found := kv.Peek[struct{}](svc.(*service).inboxes, key)
	return found
}

// ChunkKey and ReceiptKey are chunkKey and receiptKey: the records a sealed inbox leaves.
var (
	ChunkKey   = chunkKey
	ReceiptKey = receiptKey
)
