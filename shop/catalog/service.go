//go:build !mitosis_group || mitosis_catalog

// Part of the implementation: only the binaries that run catalog link it (bounded.Group.BuildTags).

package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// service is the catalog over a kv.Bucket of products keyed by ID. Writes go to the bucket;
// reads come from an in-memory snapshot that a watch on the bucket keeps current, so that the
// product list, the shop's hottest path, costs no store round trip and no lock.
type service struct {
	products kv.Bucket
	log      *slog.Logger
	view     atomic.Pointer[snapshot]

	mu    sync.Mutex        // serialises writers of view: the watch and Upserts
	tombs map[string]uint64 // revision at which an ID was deleted; guarded by mu

	done chan struct{} // closed when the watch goroutine has ended
}

// Tuning of the watch.
const (
	maxBatch       = 1024                   // most watch updates folded into one new snapshot
	rewatchDelay   = 500 * time.Millisecond // pause before re-opening a watch that ended
	maxPutAttempts = 100                    // Upsert retries on revision conflicts
)

// New returns the catalog over the products bucket. If the bucket is empty it writes the seed
// catalog first. It returns once the in-memory view holds everything in the bucket, so the
// first List sees the whole catalog; a goroutine then keeps the view current until ctx ends.
// log receives the seeding and the watch's failures (nil: slog.Default()).
func New(ctx context.Context, products kv.Bucket, log *slog.Logger) (Service, error) {
	return newService(ctx, products, log)
}

func newService(ctx context.Context, products kv.Bucket, log *slog.Logger) (*service, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &service{
		products: products,
		log:      log.With("context", "catalog"),
		tombs:    map[string]uint64{},
		done:     make(chan struct{}),
	}
	s.view.Store(&snapshot{byID: map[string]int{}})
	if err := s.seed(ctx); err != nil {
		return nil, err
	}
	updates, err := products.Watch(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: watch products: %w", err)
	}
	ready := make(chan error, 1)
	go s.run(ctx, updates, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

// seed writes the seed catalog into an empty bucket. Create, not Update, so that processes
// starting together over one bucket all succeed and the first writer of each product wins.
func (s *service) seed(ctx context.Context) error {
	keys, err := s.products.Keys(ctx)
	if err != nil {
		return fmt.Errorf("catalog: list products: %w", err)
	}
	if len(keys) > 0 {
		return nil
	}
	products := Seed()
	for _, p := range products {
		if _, err := kv.Create(ctx, s.products, p.ID, p); err != nil && !errors.Is(err, kv.ErrExists) {
			return fmt.Errorf("catalog: seed %s: %w", p.ID, err)
		}
	}
	s.log.Info("seeded an empty catalog", "products", len(products))
	return nil
}

// run keeps the view current until ctx ends. It reports on ready once the first watch is up
// to date, or why it never got there. A watch that ends while ctx is live (the store went
// away) is re-opened: its replay brings the view back up to date, and the revision check in
// apply makes replayed entries harmless.
func (s *service) run(ctx context.Context, updates <-chan kv.Entry, ready chan<- error) {
	defer close(s.done)
	if !s.follow(ctx, updates, func() { ready <- nil }) {
		if err := ctx.Err(); err != nil {
			ready <- fmt.Errorf("catalog: load products: %w", err)
		} else {
			ready <- errors.New("catalog: load products: watch ended before it was up to date")
		}
		return
	}
	for ctx.Err() == nil {
		s.log.Warn("product watch ended; re-opening it", "after", rewatchDelay)
		t := time.NewTimer(rewatchDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		updates, err := s.products.Watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("re-open product watch", "err", err)
			continue
		}
		s.follow(ctx, updates, nil)
	}
}

// follow applies one watch's updates to the view until its channel closes, and reports
// whether the watch got up to date. The initial replay becomes one snapshot at the marker;
// later updates are applied as they come, a burst of them at once.
func (s *service) follow(ctx context.Context, updates <-chan kv.Entry, onReady func()) bool {
	var batch []change
	upToDate := false
	for {
		e, ok := <-updates
		if !ok {
			s.publish(batch)
			return upToDate
		}
		if e.Key == "" { // the "up to date" marker
			s.publish(batch)
			batch = batch[:0]
			upToDate = true
			if onReady != nil {
				onReady()
			}
			continue
		}
		if c, ok := s.decode(e); ok {
			batch = append(batch, c)
		}
		if !upToDate {
			continue
		}
		closed := false
	drain:
		for len(batch) < maxBatch {
			select {
			case e, ok := <-updates:
				if !ok {
					closed = true
					break drain
				}
				if c, ok := s.decode(e); ok {
					batch = append(batch, c)
				}
			case <-ctx.Done():
				break drain
			default:
				break drain
			}
		}
		s.publish(batch)
		batch = batch[:0]
		if closed {
			return true
		}
	}
}

// decode turns a watch entry into a change of the view; a value that is not a product is
// logged and skipped rather than taking the catalog down.
func (s *service) decode(e kv.Entry) (change, bool) {
	if e.Deleted {
		return change{id: e.Key, rev: e.Revision, deleted: true}, true
	}
	var p Product
	if err := kv.Decode(e.Value, &p); err != nil {
		s.log.Warn("skip undecodable product", "key", e.Key, "revision", e.Revision, "err", err)
		return change{}, false
	}
	if p.ID != e.Key {
		// The key is what Get and Upsert address; keep the view consistent with it.
		s.log.Warn("product stored under another ID", "key", e.Key, "id", p.ID)
		p.ID = e.Key
	}
	return change{id: e.Key, product: p, rev: e.Revision}, true
}

// publish folds changes into a new snapshot and makes it the one reads see.
func (s *service) publish(changes []change) {
	if len(changes) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view.Store(apply(s.view.Load(), changes, s.tombs))
}

// Get returns the product with id from the view.
func (s *service) Get(_ context.Context, id string) (Product, error) {
	snap := s.view.Load()
	if i, ok := snap.byID[id]; ok {
		return snap.products[i], nil
	}
	return Product{}, fmt.Errorf("product %s: %w", id, ErrNotFound)
}

// List returns one page of the view.
func (s *service) List(_ context.Context, req ListRequest) (Page, error) {
	size := req.PageSize
	switch {
	case size == 0:
		size = DefaultPageSize
	case size < 1 || size > MaxPageSize:
		return Page{}, validation.Errorf("page_size", "must be 1 to %d", MaxPageSize)
	}
	var buf [ids.MaxLen]byte
	var after []byte
	if req.PageToken != "" {
		n, err := decodeToken(req.PageToken, &buf)
		if err != nil {
			return Page{}, err
		}
		after = buf[:n]
	}
	return s.view.Load().page(fold(req.Query), size, after), nil
}

// Upsert writes p to the bucket and then to this process's view at once, so that the caller
// reads its own write; other processes see it when their watch delivers it.
func (s *service) Upsert(ctx context.Context, p Product) (Product, error) {
	if err := validateProduct(p); err != nil {
		return Product{}, err
	}
	data, err := kv.Encode(p)
	if err != nil {
		return Product{}, fmt.Errorf("upsert product %s: encode: %w", p.ID, err)
	}
	rev, err := s.put(ctx, p.ID, data)
	if err != nil {
		return Product{}, fmt.Errorf("upsert product %s: %w", p.ID, err)
	}
	s.publish([]change{{id: p.ID, product: p, rev: rev}})
	return p, nil
}

// put writes data under id whatever is there (last writer wins, as an admin replacing a
// product expects) and returns the revision written. kv.Mutate would do the same but does
// not return the revision, which the view needs to order this write against the watch's.
func (s *service) put(ctx context.Context, id string, data []byte) (uint64, error) {
	for attempt := 1; ; attempt++ {
		var rev uint64
		cur, err := s.products.Get(ctx, id)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			rev, err = s.products.Create(ctx, id, data)
		case err != nil:
			return 0, err
		default:
			rev, err = s.products.Update(ctx, id, data, cur.Revision)
		}
		if err == nil {
			return rev, nil
		}
		// Every round some writer of id wins, so conflicts end once the competing writers
		// have written; the bound only guards against a store that keeps refusing.
		if !errors.Is(err, kv.ErrConflict) && !errors.Is(err, kv.ErrExists) || attempt == maxPutAttempts {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}
