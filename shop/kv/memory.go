package kv

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"
)

// Memory is an in-memory Bucket with the same semantics as the JetStream one: one revision
// sequence per bucket, compare-and-set writes, watches that never block writers, values
// that expire (TTL) on the wall clock as JetStream's do.
type Memory struct {
	mu       sync.Mutex
	seq      uint64
	entries  map[string]Entry
	watchers map[*memWatcher]struct{}
	expiries expiryHeap  // one per write with a TTL; stale once its key was written again
	timer    *time.Timer // fires at the earliest expiry; nil when none is pending
	timerAt  time.Time
}

// NewMemory returns an empty in-memory bucket.
func NewMemory() *Memory {
	return &Memory{entries: map[string]Entry{}, watchers: map[*memWatcher]struct{}{}}
}

var _ Bucket = (*Memory)(nil)

func (m *Memory) Get(ctx context.Context, key string) (Entry, error) {
	if err := CheckKey(key); err != nil {
		return Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire()
	e, ok := m.entries[key]
	if !ok {
		return Entry{}, ErrNotFound
	}
	e.Value = slices.Clone(e.Value)
	return e, nil
}

func (m *Memory) Create(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire()
	if _, ok := m.entries[key]; ok {
		return 0, ErrExists
	}
	return m.put(key, value, TTLOf(opts)), nil
}

func (m *Memory) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...WriteOption) (uint64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire()
	if e, ok := m.entries[key]; !ok || e.Revision != rev {
		return 0, ErrConflict
	}
	return m.put(key, value, TTLOf(opts)), nil
}

func (m *Memory) Delete(ctx context.Context, key string, rev uint64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire()
	e, ok := m.entries[key]
	if rev > 0 && (!ok || e.Revision != rev) {
		return ErrConflict
	}
	if !ok {
		return nil
	}
	m.remove(key)
	return nil
}

func (m *Memory) Keys(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire()
	keys := make([]string, 0, len(m.entries))
	for k := range m.entries {
		keys = append(keys, k)
	}
	return keys, nil
}

func (m *Memory) Watch(ctx context.Context) (<-chan Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &memWatcher{out: make(chan Entry), wake: make(chan struct{}, 1)}
	m.mu.Lock()
	m.expire()
	for _, e := range m.entries {
		w.queue = append(w.queue, e)
	}
	slices.SortFunc(w.queue, func(a, b Entry) int { return cmp.Compare(a.Revision, b.Revision) })
	w.queue = append(w.queue, Entry{})
	m.watchers[w] = struct{}{}
	m.mu.Unlock()
	go func() {
		defer close(w.out)
		defer func() {
			m.mu.Lock()
			delete(m.watchers, w)
			m.mu.Unlock()
		}()
		w.run(ctx)
	}()
	w.signal()
	return w.out, nil
}

// put stores value under key with the next revision, to expire after ttl (0: never); m.mu
// is held.
func (m *Memory) put(key string, value []byte, ttl time.Duration) uint64 {
	m.seq++
	e := Entry{Key: key, Value: slices.Clone(value), Revision: m.seq}
	m.entries[key] = e
	m.notify(e)
	if ttl > 0 {
		heap.Push(&m.expiries, expiry{at: time.Now().Add(ttl), key: key, rev: m.seq})
		m.schedule()
	}
	return m.seq
}

// remove deletes key as Delete does; m.mu is held.
func (m *Memory) remove(key string) {
	delete(m.entries, key)
	m.seq++
	m.notify(Entry{Key: key, Revision: m.seq, Deleted: true})
}

// expire removes the values whose TTL has passed. Every operation calls it first, so that
// none sees an expired value whatever the timer's delay; the timer removes them when nobody
// calls, so that watchers learn of the expiry as JetStream's learn of it. m.mu is held.
func (m *Memory) expire() {
	now := time.Now()
	for len(m.expiries) > 0 && !m.expiries[0].at.After(now) {
		x := heap.Pop(&m.expiries).(expiry)
		if e, ok := m.entries[x.key]; ok && e.Revision == x.rev {
			m.remove(x.key)
		}
	}
}

// schedule sets the timer to the earliest pending expiry; m.mu is held.
func (m *Memory) schedule() {
	if len(m.expiries) == 0 {
		return
	}
	at := m.expiries[0].at
	if m.timer != nil && !m.timerAt.After(at) {
		return // it fires first and reschedules
	}
	if m.timer != nil {
		m.timer.Stop()
	}
	m.timerAt = at
	var t *time.Timer
	t = time.AfterFunc(time.Until(at), func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.timer != t {
			return // stopped too late to keep it from firing: its successor does the work
		}
		m.timer = nil
		m.expire()
		m.schedule()
	})
	m.timer = t
}

// expiry is when the value written at rev under key expires.
type expiry struct {
	at  time.Time
	key string
	rev uint64
}

// expiryHeap orders expiries soonest first (container/heap).
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// notify queues e for every watcher; m.mu is held.
func (m *Memory) notify(e Entry) {
	for w := range m.watchers {
		w.mu.Lock()
		w.queue = append(w.queue, Entry{Key: e.Key, Value: slices.Clone(e.Value), Revision: e.Revision, Deleted: e.Deleted})
		w.mu.Unlock()
		w.signal()
	}
}

// memWatcher decouples a watch's reader from writers with an unbounded queue.
type memWatcher struct {
	mu    sync.Mutex
	queue []Entry
	wake  chan struct{}
	out   chan Entry
}

func (w *memWatcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *memWatcher) run(ctx context.Context) {
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, e := range batch {
			select {
			case w.out <- e:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		}
	}
}
