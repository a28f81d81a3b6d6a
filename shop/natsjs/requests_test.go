package natsjs_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/shop/natsembed"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// echo starts a server with a responder on "echo" that answers every request with its own
// data, after holding it for hold(data) (the responder's latency), and records the reply
// subjects it answered. It returns a second connection, for the requester under test.
func echo(t *testing.T, hold func(data string) time.Duration) (*nats.Conn, func() []string) {
	t.Helper()
	srv, err := natsembed.Start(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	responder, err := srv.Connect("responder")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(responder.Close)
	var mu sync.Mutex
	var replies []string
	if _, err := responder.Subscribe("echo", func(m *nats.Msg) {
		mu.Lock()
		replies = append(replies, m.Reply)
		mu.Unlock()
		time.AfterFunc(hold(string(m.Data)), func() { _ = m.Respond(m.Data) })
	}); err != nil {
		t.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("requester")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), replies...)
	}
}

func noHold(string) time.Duration { return 0 }

// Requests one after another reuse one reply subject, and each gets its own answer.
func TestRequesterReusesReplySubjects(t *testing.T) {
	nc, replies := echo(t, noHold)
	r := natsjs.NewRequester(nc)
	for i := range 50 {
		want := fmt.Sprint(i)
		resp, err := r.Request(&nats.Msg{Subject: "echo", Data: []byte(want)}, 5*time.Second)
		if err != nil || string(resp.Data) != want {
			t.Fatalf("request %d: %v, %v", i, resp, err)
		}
	}
	got := replies()
	for _, s := range got {
		if s != got[0] {
			t.Fatalf("reply subjects %q and %q: one after another, requests should share one", got[0], s)
		}
	}
}

// Concurrent requests each get their own answer, never another's.
func TestRequesterConcurrent(t *testing.T) {
	nc, _ := echo(t, func(data string) time.Duration { return time.Duration(len(data)%3) * time.Millisecond })
	r := natsjs.NewRequester(nc)
	var wg sync.WaitGroup
	errs := make(chan error, 20*25)
	for g := range 20 {
		wg.Go(func() {
			for i := range 25 {
				want := fmt.Sprintf("g%d-%d", g, i)
				resp, err := r.Request(&nats.Msg{Subject: "echo", Data: []byte(want)}, 5*time.Second)
				switch {
				case err != nil:
					errs <- err
				case string(resp.Data) != want:
					errs <- fmt.Errorf("asked %s, answered %s", want, resp.Data)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A request that times out gives up its reply subject for good: its answer, arriving
// late, reaches no later request, which gets its own.
func TestRequesterDropsUnansweredSlots(t *testing.T) {
	const slow = 200 * time.Millisecond
	nc, replies := echo(t, func(data string) time.Duration {
		if data == "slow" {
			return slow
		}
		return 0
	})
	r := natsjs.NewRequester(nc)
	start := time.Now()
	if _, err := r.Request(&nats.Msg{Subject: "echo", Data: []byte("slow")}, 20*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("slow request: %v, want a timeout", err)
	}
	// Requests one after another until well past the slow answer (bounded: 5 s at most).
	for i := 0; time.Since(start) < 2*slow; i++ {
		if time.Since(start) > 5*time.Second {
			t.Fatal("requests too slow to outlast the slow answer")
		}
		want := fmt.Sprint(i)
		resp, err := r.Request(&nats.Msg{Subject: "echo", Data: []byte(want)}, 5*time.Second)
		if err != nil || string(resp.Data) != want {
			t.Fatalf("request %d after the timeout: %v, %v", i, resp, err)
		}
	}
	got := replies()
	for _, s := range got[1:] {
		if s == got[0] {
			t.Fatalf("the timed-out request's reply subject %q was used again", s)
		}
	}
}

// Nothing listening is nats.ErrNoResponders, at once; a closed connection fails the
// requests waiting on it at once, not at their timeout.
func TestRequesterFailures(t *testing.T) {
	nc, _ := echo(t, func(string) time.Duration { return time.Hour })
	r := natsjs.NewRequester(nc)
	if _, err := r.Request(&nats.Msg{Subject: "nobody"}, 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request to nobody: %v, want %v", err, nats.ErrNoResponders)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := r.Request(&nats.Msg{Subject: "echo", Data: []byte("x")}, time.Minute)
		done <- err
	}()
	// Close once the request is sent (the one to nobody was the first).
	for nc.Stats().OutMsgs < 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the request was never sent")
		}
		time.Sleep(time.Millisecond)
	}
	nc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrDisconnected) {
			t.Fatalf("request on a closed connection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request on a closed connection still waits")
	}
	if _, err := r.Request(&nats.Msg{Subject: "echo"}, time.Second); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("request after the close: %v, want %v", err, nats.ErrConnectionClosed)
	}
}
