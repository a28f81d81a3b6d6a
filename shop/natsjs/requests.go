package natsjs

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// requester sends requests on a connection and waits for their answers, as nats.Conn's
// Request does, on reply subjects it reuses: each request takes a slot (a reply subject
// under one wildcard subscription, the channel its answer comes on, a timer) from a free
// list and gives it back once answered.
//
// nats.go makes a new reply subject, channel and map entry for every request, and the
// server then meets a subject it has never seen in every answer it routes: a match in its
// subscription list and an entry in two caches (the connection's and the account's), which
// it prunes at random once full. A checkout sends some fifteen requests; with reply
// subjects that recur, the server's caches answer instead (a tenth of a checkout's
// allocations, server and client together, and the caches' pruning, 3% of its CPU).
//
// A slot is reused only after its one answer came: JetStream answers a request once (an
// acknowledgement, a message, or a status), so no answer meant for an earlier request can
// reach a later one. A slot whose request went unanswered (a timeout, a lost connection)
// or whose answer is in doubt (a failed publish) is dropped, never reused: an answer
// arriving late finds no slot and is discarded. As with nats.go's requests, those waiting
// when the connection is lost or closed fail at once (nats.ErrDisconnected,
// nats.ErrConnectionClosed) rather than at their timeout.
type requester struct {
	nc     *nats.Conn
	prefix string    // the reply subjects' common prefix: "_INBOX.<unique>."
	lost   *nats.Msg // what a slot receives when the connection is lost: no answer

	mu    sync.Mutex
	sub   *nats.Subscription // on prefix + "*", made by the first request
	slots map[string]*slot   // by token (the reply subject after prefix): every slot not dropped
	free  []*slot            // slots waiting for a request, at most maxFreeSlots
	next  uint64             // the token of the next slot made
}

// maxFreeSlots bounds the slots kept between requests: more than a process's concurrent
// requests to one bucket in any benchmark here; a burst beyond it makes and drops slots.
const maxFreeSlots = 512

// slot is one reply subject with what waits on it.
type slot struct {
	token string
	reply string
	ch    chan *nats.Msg // the answer; buffered, so that delivery never blocks
	timer *time.Timer
	busy  bool // a request waits on it (under the requester's mu)
}

func newRequester(nc *nats.Conn) *requester {
	return &requester{nc: nc, prefix: nc.NewInbox() + ".", lost: &nats.Msg{}, slots: map[string]*slot{}}
}

// start subscribes to the replies and starts failing the requests in flight whenever the
// connection is lost, until it is closed. r.mu is held.
func (r *requester) start() error {
	status := r.nc.StatusChanged(nats.DISCONNECTED, nats.CLOSED)
	sub, err := r.nc.Subscribe(r.prefix+"*", r.deliver)
	if err != nil {
		r.nc.RemoveStatusListener(status)
		return err
	}
	r.sub = sub
	go func() {
		defer r.nc.RemoveStatusListener(status)
		for st := range status {
			r.mu.Lock()
			for _, s := range r.slots {
				if s.busy {
					select {
					case s.ch <- r.lost:
					default: // its answer came first
					}
				}
			}
			r.mu.Unlock()
			if st == nats.CLOSED {
				return
			}
		}
	}()
	return nil
}

// take returns a free slot, or a new one, subscribing to the replies first if no request
// has yet.
func (r *requester) take() (*slot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		if r.nc.IsClosed() {
			return nil, nats.ErrConnectionClosed
		}
		if err := r.start(); err != nil {
			return nil, err
		}
	}
	if n := len(r.free); n > 0 {
		s := r.free[n-1]
		r.free = r.free[:n-1]
		s.busy = true
		return s, nil
	}
	r.next++
	token := strconv.FormatUint(r.next, 36)
	s := &slot{token: token, reply: r.prefix + token, ch: make(chan *nats.Msg, 1), timer: time.NewTimer(time.Hour), busy: true}
	s.timer.Stop()
	r.slots[token] = s
	return s, nil
}

// give puts a slot that got its answer back on the free list.
func (r *requester) give(s *slot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.busy = false
	select {
	case <-s.ch: // a loss signalled after the answer came: the next request must not see it
	default:
	}
	if len(r.free) >= maxFreeSlots {
		delete(r.slots, s.token)
		return
	}
	r.free = append(r.free, s)
}

// drop forgets a slot whose answer may still come.
func (r *requester) drop(s *slot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.busy = false
	delete(r.slots, s.token)
}

// deliver hands an answer to its slot; one for a dropped slot, or a second one, which
// JetStream never sends, is discarded.
func (r *requester) deliver(m *nats.Msg) {
	if len(m.Subject) <= len(r.prefix) {
		return
	}
	r.mu.Lock()
	s := r.slots[m.Subject[len(r.prefix):]]
	r.mu.Unlock()
	if s == nil {
		return
	}
	select {
	case s.ch <- m:
	default:
	}
}

// request sends m (its Reply is set here) and returns the answer, waiting up to timeout:
// nats.ErrTimeout without one, nats.ErrNoResponders when nothing listens on m's subject,
// as nats.Conn's RequestMsg returns them. m is the caller's again once it returns.
func (r *requester) request(m *nats.Msg, timeout time.Duration) (*nats.Msg, error) {
	s, err := r.take()
	if err != nil {
		return nil, err
	}
	m.Reply = s.reply
	err = r.nc.PublishMsg(m)
	m.Reply = ""
	if err != nil {
		r.drop(s)
		return nil, err
	}
	s.timer.Reset(timeout)
	select {
	case resp := <-s.ch:
		s.timer.Stop()
		if resp == r.lost {
			r.drop(s)
			if r.nc.IsClosed() {
				return nil, fmt.Errorf("%w: %w", errUnanswered, nats.ErrConnectionClosed)
			}
			return nil, fmt.Errorf("%w: %w", errUnanswered, nats.ErrDisconnected)
		}
		r.give(s)
		if len(resp.Data) == 0 && resp.Header.Get(statusHeader) == noRespondersStatus {
			return nil, nats.ErrNoResponders
		}
		return resp, nil
	case <-s.timer.C:
		r.drop(s)
		return nil, nats.ErrTimeout
	}
}

// errUnanswered marks a request that was sent and whose connection was lost before its
// answer came: the server may have done what it asked (stored a write) all the same.
var errUnanswered = errors.New("connection lost before the answer")

// noRespondersStatus is the status of the answer the server sends in place of one when
// nothing listens on a request's subject.
const noRespondersStatus = "503"
