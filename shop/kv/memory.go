package kv

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// Memory is an in-memory Bucket with the same semantics as the JetStream one: one revision
// sequence per bucket, compare-and-set writes, watches that never block writers.
type Memory struct {
	mu       sync.Mutex
	seq      uint64
	entries  map[string]Entry
	watchers map[*memWatcher]struct{}
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
	e, ok := m.entries[key]
	if !ok {
		return Entry{}, ErrNotFound
	}
	e.Value = slices.Clone(e.Value)
	return e, nil
}

func (m *Memory) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[key]; ok {
		return 0, ErrExists
	}
	return m.put(key, value), nil
}

func (m *Memory) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[key]; !ok || e.Revision != rev {
		return 0, ErrConflict
	}
	return m.put(key, value), nil
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
	e, ok := m.entries[key]
	if rev > 0 && (!ok || e.Revision != rev) {
		return ErrConflict
	}
	if !ok {
		return nil
	}
	delete(m.entries, key)
	m.seq++
	m.notify(Entry{Key: key, Revision: m.seq, Deleted: true})
	return nil
}

func (m *Memory) Keys(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
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

// put stores value under key with the next revision; m.mu is held.
func (m *Memory) put(key string, value []byte) uint64 {
	m.seq++
	e := Entry{Key: key, Value: slices.Clone(value), Revision: m.seq}
	m.entries[key] = e
	m.notify(e)
	return m.seq
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
