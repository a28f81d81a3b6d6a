package natsjs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsembed"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// cutProxy relays one NATS client connection to a server, and once the client sends
// marker it stops relaying the server's answers: what the client sent reaches the server,
// and nothing the server says afterwards reaches the client, as when a connection breaks
// between a write and its acknowledgement.
type cutProxy struct {
	ln     net.Listener
	server string
	marker []byte
	cut    atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, server string, marker []byte) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, server: server, marker: marker}
	t.Cleanup(p.close)
	go p.accept()
	return p
}

func (p *cutProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("tcp", p.server)
		if err != nil {
			client.Close()
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, upstream)
		p.mu.Unlock()
		go func() { // server to client, until the cut
			buf := make([]byte, 32<<10)
			for {
				n, err := upstream.Read(buf)
				if p.cut.Load() {
					_, _ = io.Copy(io.Discard, upstream)
					return
				}
				if n > 0 {
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() { // client to server, cutting the other way once marker goes through
			buf := make([]byte, 32<<10)
			var tail []byte // the end of the previous read, for a marker split between reads
			for {
				n, err := client.Read(buf)
				if n > 0 {
					seen := append(tail, buf[:n]...)
					if bytes.Contains(seen, p.marker) {
						p.cut.Store(true)
					}
					tail = append([]byte(nil), seen[max(0, len(seen)-len(p.marker)):]...)
					if _, werr := upstream.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// drop closes every relayed connection: the client sees its connection lost.
func (p *cutProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.drop()
}

// A write whose connection closes for good after the write reached the store, but before
// its acknowledgement came back, landed: the caller must not be told it failed. kv.Bucket
// promises that an error means the write did not happen, except for a write whose store
// did not answer in time (context.DeadlineExceeded), which may have landed; a caller that
// takes a plain error as "not written" undoes what it did (the checkout refunds a charge
// whose pivot write landed, and recovery later ships the order).
func TestAWriteLostWithItsConnectionMayHaveLanded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		write  func(ctx context.Context, b kv.Bucket, rev uint64) error
		landed func(e kv.Entry, err error) bool
	}{
		{"Update", func(ctx context.Context, b kv.Bucket, rev uint64) error {
			_, err := b.Update(ctx, "k", []byte("after"), rev)
			return err
		}, func(e kv.Entry, err error) bool { return err == nil && string(e.Value) == "after" }},
		{"Delete", func(ctx context.Context, b kv.Bucket, rev uint64) error {
			return b.Delete(ctx, "k", rev)
		}, func(_ kv.Entry, err error) bool { return errors.Is(err, kv.ErrNotFound) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testLostWrite(t, tc.write, tc.landed)
		})
	}
}

func testLostWrite(t *testing.T, write func(ctx context.Context, b kv.Bucket, rev uint64) error, landed func(kv.Entry, error) bool) {
	srv, err := natsembed.Start(t.TempDir(), "127.0.0.1:-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx := context.Background()

	// The reader, on a connection of its own.
	rc, err := srv.Connect("reader")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	rjs, err := jetstream.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	const name = "lost"
	reader, err := natsjs.OpenBucket(ctx, rjs, natsjs.StoreConfig{}, name)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := reader.Create(ctx, "k", []byte("before"))
	if err != nil {
		t.Fatal(err)
	}

	// The writer, through the proxy, on a connection that does not reconnect: it closes
	// for good when the proxy drops it.
	proxy := newCutProxy(t, srv.ClientURL()[len("nats://"):], []byte("PUB $KV."+name+".k "))
	wc, err := nats.Connect("nats://"+proxy.ln.Addr().String(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wc.Close)
	wjs, err := jetstream.New(wc)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := natsjs.OpenBucket(ctx, wjs, natsjs.StoreConfig{}, name)
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- write(ctx, writer, rev) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, err := reader.Get(ctx, "k")
		if landed(e, err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write did not land within 10s: %q %v", e.Value, err)
		}
		if err := kv.Sleep(ctx, time.Millisecond); err != nil { // polling the store
			t.Fatal(err)
		}
	}
	proxy.drop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a write that landed returned %v: an error that says it did not, want nil or one that wraps context.DeadlineExceeded", err)
		}
		t.Logf("write: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the write did not return within 10s of its connection's close")
	}
}
