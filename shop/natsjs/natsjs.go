// Package natsjs is the NATS JetStream side of the shop's persistence: kv.Bucket over a
// JetStream key-value bucket and the events bus over a JetStream stream with durable
// consumers, and the dead letters of those consumers (what they gave up on, kept in a
// stream of their own to be counted, listed and replayed). It is the only package of the
// domain module that speaks NATS; contexts see only kv.Bucket, events.Publisher and
// events.Subscriber.
//
// No event is lost silently. The event stream keeps an event until every durable consumer it
// is for has acknowledged it, however long its process is down, and drops it then (interest
// retention): it holds the consumers' backlogs and nothing else. A process creates the
// consumers of the events it publishes when it opens the bus (OpenBus), so none misses an
// event published before its own process first ran. When the stream is full of unprocessed events
// it refuses new ones: Publish fails with ErrFull, the caller knows. Backlogs and StreamUsage
// tell how close that is (`mitosis status` warns).
//
// A consumer dropped from the table of contexts keeps its durable consumer, and the stream
// keeps for it every event of its subjects, until an operator deletes it (`mitosis events
// forget`): nothing deletes one by itself, as a process of an older version may still run it
// while a deployment rolls. Backlogs lists it with its backlog, and `mitosis status` says it
// is no longer in the table.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Bucket is a kv.Bucket stored in a JetStream key-value bucket.
type Bucket struct {
	kv      jetstream.KeyValue
	req     *requester // writes (put) and direct gets go straight on the connection through it
	subject string     // the prefix of its keys' subjects: "$KV.<bucket>."
	puts    sync.Pool  // of *putMsg
	// directGet is the prefix of the subject Get reads a key's value from (the key's subject
	// follows it), "" when reads go through KeyValue.Get: a replicated bucket reads from its
	// leader (see leaderReads).
	directGet string

	// Per-message TTLs are allowed on the bucket's stream from the first write that carries
	// one (see OpenBucket): ttls says they are, ttlMu serializes turning them on.
	js     jetstream.JetStream
	stream string // the bucket's stream: "KV_<bucket>"
	ttls   atomic.Bool
	ttlMu  sync.Mutex
}

var _ kv.Bucket = (*Bucket)(nil)

// expiryMarkerTTL is how long the marker that JetStream leaves where a value expired (see
// kv.TTL) stays in the bucket. Watches learn of the expiry from the marker, as they learn of
// a Delete; nothing in the shop reads it later, so it goes after a minute rather than
// staying for good as a Delete's marker does.
const expiryMarkerTTL = time.Minute

// OpenBucket creates the bucket if it does not exist, or updates it to cfg's replicas and
// byte limit if it does, and returns it. Buckets keep only the latest value of a key: history
// lives in the domain's own records where it matters.
//
// Values may carry a TTL (kv.TTL), which takes per-message TTLs (nats-server 2.11 or later).
// A bucket's stream allows them from the first write that carries one (allowTTLs), a change
// JetStream does not undo, and not before: most buckets never take one, and a stream that
// allows them with none pending makes the server start a timer at every write, which fires
// at once and finds nothing to expire (fileStore.startAgeChk: two allocations and a
// goroutine a write; seven writes of a checkout). A bucket that allows them already is
// opened as it is.
//
// A full bucket refuses what would grow it (a new key, a longer value) with ErrFull, and keeps
// every value it holds: nats.go makes every key-value bucket's stream discard new messages,
// never old ones, whatever the configuration says (a stream that discards old would drop
// other keys' values to make room). On a single server, writes that do not grow it (a value
// no longer than the one it replaces, a delete) still go through; a replicated bucket checks
// before it knows what a write replaces, and refuses any that does not fit in what is left.
//
// A replicated bucket is read from its leader only, so that a read sees every write
// acknowledged before it (see leaderReads).
func OpenBucket(ctx context.Context, js jetstream.JetStream, cfg StoreConfig, name string) (*Bucket, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	stream := "KV_" + name
	kvc := jetstream.KeyValueConfig{
		Bucket:   name,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: cfg.replicas(),
		MaxBytes: cfg.Limit(name),
	}
	var b jetstream.KeyValue
	var ttls bool
	var err error
	for range 3 {
		if ttls, err = allowsTTLs(ctx, js, stream); err != nil {
			break
		}
		kvc.LimitMarkerTTL = 0
		if ttls {
			kvc.LimitMarkerTTL = expiryMarkerTTL // an update can never turn them off
		}
		if b, err = js.CreateOrUpdateKeyValue(ctx, kvc); err == nil || ttls {
			break
		}
		// Another process may have turned TTLs on since they were read: read them again.
		if now, aerr := allowsTTLs(ctx, js, stream); aerr != nil || !now {
			break
		}
	}
	if err == nil && cfg.replicas() > 1 {
		err = leaderReads(ctx, js, b)
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s (%d replicas, %d bytes): %w", name, cfg.replicas(), cfg.Limit(name), err)
	}
	bucket := &Bucket{kv: b, req: newRequester(js.Conn()), subject: "$KV." + name + ".", js: js, stream: stream}
	bucket.ttls.Store(ttls)
	if o := js.Options(); cfg.replicas() == 1 && o.Domain == "" && (o.APIPrefix == "" || o.APIPrefix == jetstream.DefaultAPIPrefix) {
		bucket.directGet = jetstream.DefaultAPIPrefix + "DIRECT.GET.KV_" + name + "." + bucket.subject
	}
	return bucket, nil
}

// allowsTTLs reads whether stream, if it exists, allows per-message TTLs.
func allowsTTLs(ctx context.Context, js jetstream.JetStream, stream string) (bool, error) {
	s, err := js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return s.CachedInfo().Config.AllowMsgTTL, nil
}

// allowTTLs turns per-message TTLs on for b's stream, with the markers that watches learn of
// an expiry from (expiryMarkerTTL), unless they are on already. It updates the stream as it
// is (a replicated bucket keeps its leader reads), once per process and bucket.
func (b *Bucket) allowTTLs(ctx context.Context) error {
	b.ttlMu.Lock()
	defer b.ttlMu.Unlock()
	if b.ttls.Load() {
		return nil
	}
	s, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return fmt.Errorf("allow TTLs on %s: %w", b.stream, err)
	}
	if sc := s.CachedInfo().Config; !sc.AllowMsgTTL {
		sc.AllowMsgTTL, sc.SubjectDeleteMarkerTTL = true, expiryMarkerTTL
		if _, err := b.js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("allow TTLs on %s: %w", b.stream, err)
		}
	}
	b.ttls.Store(true)
	return nil
}

// leaderReads makes b read from its stream's leader. nats.go creates every bucket with direct
// gets, which any copy answers, a follower too (the one nearest the client first), and a
// follower may not have applied the latest writes yet: a read-decide-write is safe anyway
// (the write's revision check fails), but a decision taken on a stale read alone is not. One
// such, seen in the failover test: a commit that found its reservation's hold already gone
// from a lagging copy, took it as sold, and left it held for good. So direct gets are turned
// off on the stream, and b's view of it refreshed, which is what its reads go by: from then on
// they are stream API requests, answered by the leader, whatever another process opening the
// bucket meanwhile does to the stream (CreateOrUpdateKeyValue turns direct gets back on until
// that process turns them off again).
func leaderReads(ctx context.Context, js jetstream.JetStream, b jetstream.KeyValue) error {
	for range 5 {
		st, err := b.Status(ctx) // refreshes b's view of its stream
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if !ok {
			return fmt.Errorf("status of type %T", st)
		}
		sc := bs.StreamInfo().Config
		if !sc.AllowDirect {
			return nil
		}
		sc.AllowDirect = false
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("turn direct gets off: %w", err)
		}
	}
	return errors.New("direct gets keep being turned back on")
}

func (b *Bucket) Get(ctx context.Context, key string) (kv.Entry, error) {
	if err := kv.CheckKey(key); err != nil {
		return kv.Entry{}, err
	}
	if b.directGet != "" {
		if e, handled, err := b.getDirect(ctx, key); handled {
			return e, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	e, err := b.kv.Get(ctx, escape(key))
	if err != nil {
		return kv.Entry{}, mapErr(err)
	}
	return kv.Entry{Key: key, Value: e.Value(), Revision: e.Revision()}, nil
}

// getDirect reads key's latest value with a direct get, the request KeyValue.Get sends to
// a bucket that allows them, made here without what nats.go adds to each read: a context
// with its own timer, an encoding/json request body it does not send, a formatted subject
// and a parsed timestamp (a checkout reads four or five times; about fifteen allocations a
// read). The request's timeout is readTimeout, or less if ctx ends sooner; a caller whose
// context is canceled without a deadline waits for the read (milliseconds) to return.
// handled is false for any answer it does not know (a status other than 404, a missing header, no
// responder), which Get leaves to KeyValue.Get.
func (b *Bucket) getDirect(ctx context.Context, key string) (e kv.Entry, handled bool, err error) {
	if err := ctx.Err(); err != nil {
		return kv.Entry{}, true, err
	}
	limit := readTimeout
	if d, has := ctx.Deadline(); has {
		limit = min(limit, time.Until(d))
	}
	p, _ := b.puts.Get().(*putMsg)
	if p == nil {
		p = &putMsg{hdr: nats.Header{}}
	}
	p.msg = nats.Msg{Subject: p.subjectOf(b.directGet, key)}
	resp, err := b.req.request(&p.msg, limit)
	p.msg = nats.Msg{}
	b.puts.Put(p)
	switch {
	case errors.Is(err, nats.ErrTimeout):
		return kv.Entry{}, true, fmt.Errorf("read %q: no answer in %s: %w", key, limit, context.DeadlineExceeded)
	case err != nil:
		return kv.Entry{}, false, nil
	}
	if status := resp.Header.Get(statusHeader); status != "" {
		if status == notFoundStatus && len(resp.Data) == 0 {
			return kv.Entry{}, true, kv.ErrNotFound
		}
		return kv.Entry{}, false, nil
	}
	switch op, reason := resp.Header.Get(kvOperationHeader), resp.Header.Get(jetstream.MarkerReasonHeader); {
	case op == "DEL" || op == "PURGE" || reason == "MaxAge" || reason == "Purge" || reason == "Remove":
		// A delete or purge marker, or the marker of an expired value: no value.
		return kv.Entry{}, true, kv.ErrNotFound
	case op != "" || reason != "":
		return kv.Entry{}, false, nil
	}
	rev, perr := strconv.ParseUint(resp.Header.Get(jetstream.SequenceHeader), 10, 64)
	if perr != nil || rev == 0 {
		return kv.Entry{}, false, nil
	}
	return kv.Entry{Key: key, Value: resp.Data, Revision: rev}, true, nil
}

// Headers of a direct get's answer that nats.go names only privately.
const (
	statusHeader      = "Status"       // "404": no message; only in answers without data
	notFoundStatus    = "404"          //
	kvOperationHeader = "KV-Operation" // "DEL" or "PURGE" on a key's markers, none on a value
)

// readTimeout bounds a read, as writeTimeout a write's acknowledgement: a store that answers
// at all answers in milliseconds. A replicated bucket between two leaders does not (its reads
// go to the leader, see leaderReads), and its reads then fail in this time instead of holding
// their caller until its own deadline (a checkout's roll-forward has 30 s).
const readTimeout = 5 * time.Second

// writeTimeout bounds the wait for a write's acknowledgement once it is sent; ackGrace is
// how far past its caller's deadline that wait may go. A store that answers at all answers
// in milliseconds, so the grace costs nothing unless the store hangs, and then it bounds how
// late a request that hit its deadline mid-write returns.
const (
	writeTimeout = 5 * time.Second
	ackGrace     = time.Second
)

// sending returns the context a write is sent and awaited with. Once sent, a write is
// stored whether or not anyone waits for its acknowledgement, so the wait must not end
// with the caller's context: a caller told "canceled" about a write that lands compensates
// as if nothing happened, and what it wrote stays (a stock hold whose reservation has been
// released). A caller already done sends nothing. Only a store that does not answer in
// time can still leave a write's outcome unknown.
func sending(ctx context.Context) (context.Context, context.CancelFunc, error) {
	limit, err := ackLimit(ctx)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
	return ctx, cancel, nil
}

// ackLimit is how long a write sent now on behalf of ctx waits for its acknowledgement (see
// sending), or ctx's error if ctx is done and nothing must be sent.
func ackLimit(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	limit := writeTimeout
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d)+ackGrace)
	}
	return limit, nil
}

func (b *Bucket) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	if err := kv.CheckKey(key); err != nil {
		return 0, err
	}
	ttl := kv.TTLOf(opts)
	rev, err := b.put(ctx, key, value, 0, ttl)
	if err != nil && isWrongSequence(err) {
		// The key has a value, or a marker of one deleted or expired, which counts as none:
		// KeyValue.Create tells them apart (a read) and writes over the marker. Only a
		// Create that finds the key taken pays that second round trip.
		var createOpts []jetstream.KVCreateOpt
		if ttl > 0 {
			createOpts = append(createOpts, jetstream.KeyTTL(ttl))
		}
		sendCtx, cancel, serr := sending(ctx)
		if serr != nil {
			return 0, serr
		}
		defer cancel()
		rev, err = b.kv.Create(sendCtx, escape(key), value, createOpts...)
		err = lostMayHaveLanded(err)
		if isWrongSequence(err) {
			// Another writer created the key over the marker first. KeyValue.Create returns
			// that write's refusal as it is, which on a replicated bucket (code 10164, unlike
			// 10071) matches no ErrKeyExists, and would be a conflict.
			return 0, fmt.Errorf("%w: %v", kv.ErrExists, err)
		}
	}
	if err != nil {
		return 0, mapErr(err)
	}
	return rev, nil
}

func (b *Bucket) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	if err := kv.CheckKey(key); err != nil {
		return 0, err
	}
	rev, err := b.put(ctx, key, value, rev, kv.TTLOf(opts))
	if err != nil {
		// The server's "wrong last sequence" matches jetstream.ErrKeyExists too, which
		// means a conflict here, as KeyValue.Update reports it.
		return 0, mapErr(mapWrongSequence(err))
	}
	return rev, nil
}

// put writes value to key if the key's last revision is rev (0: it has none), to expire
// after ttl if ttl > 0: the message KeyValue.Create and Update send (a publish to the key's
// subject expecting its last revision), sent here as one request on the connection with
// its acknowledgement decoded by kv.Decode. The profile of a checkout, which writes about
// sixteen times, justifies it: jetstream's publish options, header setters and
// encoding/json decoding of the acknowledgement took about ten allocations a write, and
// the decoding alone 2% of the checkout's CPU. The wait for the acknowledgement is the
// request's own timeout (ackLimit), on the requester's timers, instead of a context
// detached from ctx as sending makes (five allocations and a timer a write); the request
// goes on a reply subject that recurs (requester). Errors are the
// ones js.PublishMsg returns (a timeout is context.DeadlineExceeded, as there), and a stream
// with no responder yet (a leader being elected) is retried as it does.
func (b *Bucket) put(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	limit, err := ackLimit(ctx)
	if err != nil {
		return 0, err
	}
	if ttl > 0 && !b.ttls.Load() {
		if err := b.allowTTLs(ctx); err != nil {
			return 0, err
		}
	}
	p, _ := b.puts.Get().(*putMsg)
	if p == nil {
		p = &putMsg{hdr: nats.Header{}}
	}
	defer b.puts.Put(p)
	p.seq[0] = strconv.FormatUint(rev, 10)
	p.hdr[jetstream.ExpectedLastSubjSeqHeader] = p.seq[:]
	if ttl > 0 {
		p.ttl[0] = ttl.String()
		p.hdr[jetstream.MsgTTLHeader] = p.ttl[:]
	} else {
		delete(p.hdr, jetstream.MsgTTLHeader)
	}
	p.msg = nats.Msg{Subject: p.subjectOf(b.subject, key), Header: p.hdr, Data: value}
	return p.send(ctx, b.req, limit)
}

// send sends p's message to a stream and returns the sequence the stream stored it at, once
// acknowledged, waiting up to limit, and retrying while no stream answers, as js.PublishMsg
// does, with its errors (a timeout is context.DeadlineExceeded, as there). It leaves p's
// message empty, so that the pool keeps no caller's data.
func (p *putMsg) send(ctx context.Context, req *requester, limit time.Duration) (uint64, error) {
	defer func() { p.msg = nats.Msg{} }()
	resp, err := req.request(&p.msg, limit)
	for r := 0; errors.Is(err, nats.ErrNoResponders) && r < jetstream.DefaultPubRetryAttempts; r++ {
		// Nothing was stored: the caller's end may stop the retries.
		if kv.Sleep(ctx, jetstream.DefaultPubRetryWait) != nil {
			break
		}
		resp, err = req.request(&p.msg, limit)
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return 0, jetstream.ErrNoStreamResponse
	case errors.Is(err, nats.ErrTimeout):
		return 0, fmt.Errorf("no acknowledgement in %s: %w", limit, context.DeadlineExceeded)
	case errors.Is(err, errUnanswered):
		return 0, mayHaveLanded(err)
	case err != nil:
		return 0, err
	}
	ack := &p.ack
	ack.Error, ack.Stream, ack.Seq = nil, ack.Stream[:0], 0
	if err := kv.Decode(resp.Data, ack); err != nil {
		return 0, fmt.Errorf("%w: %v", jetstream.ErrInvalidJSAck, err)
	}
	if ack.Error != nil {
		return 0, fmt.Errorf("nats: %w", ack.Error)
	}
	if len(ack.Stream) <= len(`""`) { // absent, null or ""
		return 0, jetstream.ErrInvalidJSAck
	}
	return ack.Seq, nil
}

// putMsg is what put (and the bus's PublishRaw) sends and decodes its acknowledgement into,
// and what getDirect sends, kept in the bucket's (the bus's) pool between requests: nats.go
// copies the message out before PublishMsg returns, so a message, its subject, its header
// map and the acknowledgement's buffers serve one request after another, which saves six
// allocations a write.
type putMsg struct {
	msg     nats.Msg
	subject []byte // the message's subject (subjectOf)
	hdr     nats.Header
	seq     [1]string // the header's values
	ttl     [1]string
	ack     struct {
		Error  *jetstream.APIError `json:"error"`
		Stream jsontext.Value      `json:"stream"` // only checked for presence: raw, its buffer reused
		Seq    uint64              `json:"seq"`
	}
}

// subjectOf returns the subject of key under prefix, written in p's own buffer: a string
// that stays valid until p's next use. nats.go copies a message's subject out before
// PublishMsg returns and the requester keeps none, so the subject needs no allocation of
// its own (one every write and direct read made).
func (p *putMsg) subjectOf(prefix, key string) string {
	p.subject = append(append(p.subject[:0], prefix...), escape(key)...)
	return unsafe.String(unsafe.SliceData(p.subject), len(p.subject))
}

func (b *Bucket) Delete(ctx context.Context, key string, rev uint64) error {
	if err := kv.CheckKey(key); err != nil {
		return err
	}
	var opts []jetstream.KVDeleteOpt
	if rev > 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	ctx, cancel, err := sending(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	if err := b.kv.Delete(ctx, escape(key), opts...); err != nil {
		return mapErr(lostMayHaveLanded(err))
	}
	return nil
}

// Keys reads the keys with a watch of the bucket's latest entries up to its "up to date"
// marker, as KeyValue.ListKeys does; but ListKeys ends its list alike at the marker and when
// the watch stops short (ctx done, the connection lost), so a listing cut short would pass
// for a complete one.
func (b *Bucket) Keys(ctx context.Context) ([]string, error) {
	w, err := b.kv.WatchAll(ctx, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return nil, mapErr(err)
	}
	defer w.Stop()
	var keys []string
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list keys: %w", ctx.Err())
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return nil, fmt.Errorf("list keys: the watch ended before the last key (%d read)", len(keys))
			case e == nil:
				return keys, nil
			}
			key, err := unescape(e.Key())
			if err != nil {
				return nil, err
			}
			keys = append(keys, key)
		}
	}
}

func (b *Bucket) Watch(ctx context.Context) (<-chan kv.Entry, error) {
	w, err := b.kv.WatchAll(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make(chan kv.Entry)
	go func() {
		// The reader learns of the end first: the watcher's stop deletes its consumer on
		// the server, which takes JetStream's API timeout (5 s) when the server is gone, and
		// a process stopping beside its NATS would wait that long for its loops to end.
		defer w.Stop()
		defer close(out)
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case e, ok = <-w.Updates():
				if !ok {
					return
				}
			}
			var ke kv.Entry
			if e != nil { // nil marks the end of the initial values
				key, err := unescape(e.Key())
				if err != nil {
					continue // not written by this package; nothing to map it to
				}
				ke = kv.Entry{Key: key, Value: e.Value(), Revision: e.Revision(),
					Deleted: e.Operation() != jetstream.KeyValuePut}
			}
			select {
			case out <- ke:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// mayHaveLanded marks the error of a write whose connection was lost after it was sent
// (nats.ErrConnectionClosed, nats.ErrDisconnected) as the unknown outcome it is, as a write
// that was not acknowledged in time: context.DeadlineExceeded (see kv.Bucket). The store may
// have stored it; a caller told a plain error would take it as not written and undo what
// it did (a checkout whose pivot landed would refund the charge of an order that recovery
// then ships).
func mayHaveLanded(err error) error {
	return fmt.Errorf("%w, so the write may have landed: %w", err, context.DeadlineExceeded)
}

// lostMayHaveLanded is mayHaveLanded for the writes sent by nats.go (KeyValue.Create and
// Delete), which do not say whether the connection was lost before or after the write went
// out: either is taken as after.
func lostMayHaveLanded(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) {
		return mayHaveLanded(err)
	}
	return err
}

// mapWrongSequence marks a "wrong last sequence" answer to a publish as the revision
// mismatch it is.
func mapWrongSequence(err error) error {
	if isWrongSequence(err) {
		return fmt.Errorf("%w: %w", jetstream.ErrKeyRevisionMismatch, err)
	}
	return err
}

// isWrongSequence tells a write refused because the key's last revision was not the one it
// expected (codes 10071, and 10164 on a replicated stream).
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ErrFull is a write that a bucket or the event stream refused because it would pass its
// byte limit (StoreConfig): nothing was written, and nothing it held was dropped. It is no
// error of the request's, so the edge answers it as any store failure: 503.
var ErrFull = errors.New("natsjs: bucket or stream full (byte limit reached)")

// errCodeStoreFailed is the JetStream error of a message refused at a stream's limit (the
// server's JSStreamStoreFailedF; nats.go names no constant for it). The shop's streams set
// no limit on messages, per-subject counts or message sizes, so for them it means bytes.
const errCodeStoreFailed jetstream.ErrorCode = 10077

func mapErr(err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return kv.ErrNotFound
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("%w: %v", kv.ErrConflict, err)
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%w: %v", kv.ErrExists, err)
	}
	if isWrongSequence(err) {
		return fmt.Errorf("%w: %v", kv.ErrConflict, err)
	}
	return fullErr(err)
}

// fullErr marks err as ErrFull when JetStream refused the write at a limit.
func fullErr(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStoreFailed {
		return fmt.Errorf("%w: %v", ErrFull, err)
	}
	return err
}

// escape maps any key onto NATS's key alphabet: letters, digits, '-' and '_' stay, every
// other byte becomes "=XX". Dots are escaped too, so keys never become subject hierarchies.
func escape(key string) string {
	const hexdigits = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(key); i++ {
		if !plain(key[i]) {
			clean = false
			break
		}
	}
	if clean {
		return key
	}
	var sb strings.Builder
	sb.Grow(len(key) + 8)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if plain(c) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('=')
		sb.WriteByte(hexdigits[c>>4])
		sb.WriteByte(hexdigits[c&15])
	}
	return sb.String()
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bad escaped key %q", s)
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("bad escaped key %q", s)
		}
		out = append(out, byte(hi<<4|lo))
		i += 2
	}
	return string(out), nil
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Ping reports whether the JetStream API answers: the readiness check of every process.
func Ping(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	if !nc.IsConnected() {
		return fmt.Errorf("nats: %s", nc.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}
