package natsjs_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsembed"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// A consumer's Stop returns at once when its server is gone. Its drain needs the server, and
// a process stopping while NATS stops beside it (kube down removes every pod at once, a
// rolling restart may take NATS too) sat in Stop for 30 s, past Podman's 10 s and most of
// Kubernetes' grace period, until it was killed: reproduced with `mitosis kube down` of the
// services, whose notify was killed 10 s after SIGTERM every time.
// Stop waits for the handler in flight while the server is there, and stops waiting when
// the server goes, before or during the wait.
func TestStopReturnsWhenTheServerIsGone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		during bool // the server goes while Stop waits, not before Stop
	}{{"gone before Stop", false}, {"gone while Stop waits", true}} {
		during := tc.during
		t.Run(tc.name, func(t *testing.T) {
			srv := natsjstest.New(t)
			bus := srv.Bus(t, natsjs.Consumer{Name: "stopping", Subjects: []string{events.OrderPaidSubject}})
			ctx := context.Background()
			entered, release := make(chan struct{}), make(chan struct{})
			defer close(release)
			sub, err := bus.Subscribe(ctx, "stopping", []string{events.OrderPaidSubject}, func(ctx context.Context, _ events.Message) error {
				close(entered)
				select {
				case <-release:
				case <-ctx.Done(): // Stop gave up on it
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := bus.Publish(ctx, events.OrderPaidSubject, "o1", events.OrderPaid{OrderID: "o1"}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("no delivery in 10 s")
			}
			nc := srv.JetStream().Conn()
			gone := func() {
				srv.Close()
				waitDisconnected(t, nc)
			}
			if !during {
				gone()
			}
			stopped := make(chan struct{})
			go func() {
				sub.Stop()
				close(stopped)
			}()
			if during {
				select {
				case <-stopped:
					t.Fatal("Stop returned with the handler in flight and the server there")
				case <-time.After(200 * time.Millisecond):
				}
				gone()
			}
			select {
			case <-stopped:
			case <-time.After(10 * time.Second):
				t.Fatalf("Stop still waits 10 s after its server went away (connection %s)", nc.Status())
			}
		})
	}
}

// A watch's channel closes as soon as its context ends, also when the server is gone: the
// watcher's stop deletes its consumer on the server, which then waits out JetStream's API
// timeout (5 s), and inventory's sweeper, which follows a bucket, held its process's stop
// that long, past kube down's 5 s and into SIGKILL. Over TCP, as a process connects.
func TestWatchEndsWhenTheServerIsGone(t *testing.T) {
	srv, err := natsembed.Start(t.TempDir(), "127.0.0.1:-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	js := natsjstest.Connect(t, srv.ClientURL())
	b, err := natsjs.OpenBucket(context.Background(), js, natsjs.StoreConfig{}, "watched")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-ch; e.Key != "" {
		t.Fatalf("first entry of an empty bucket's watch: %+v, want the end of the initial values", e)
	}
	nc := js.Conn()
	srv.Shutdown()
	waitDisconnected(t, nc)
	cancel()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("the watch's channel still open 2 s after its context ended (connection %s)", nc.Status())
		}
	}
}

// waitDisconnected waits until nc sees that its server is gone.
func waitDisconnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); nc.IsConnected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client still calls itself connected 10 s after its server stopped")
		}
	}
}
