package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestEventsReplayAndStatusReachEachArchitecturesNATS runs the monolith architecture's NATS
// (alone: it is all the CLI talks to) with the process runtime, as `up` does, and gets an
// event dead-lettered there by a consumer whose handler fails. Then, through the CLI: status
// counts it on the NATS line, events dead-letters lists it, events replay gives it back to
// its consumer, which handles it, and status counts 0.
func TestEventsReplayAndStatusReachEachArchitecturesNATS(t *testing.T) {
	root, state, name := repoRoot(t), t.TempDir(), stacktest.StackName(t)
	topo, err := topology.Get(topology.Monolith, topology.Options{Collector: topology.NoCollector, MonolithEdge: stacktest.AnyPort})
	if err != nil {
		t.Fatal(err)
	}
	topo.Archs[0].Services = slices.DeleteFunc(topo.Archs[0].Services, func(s topology.Service) bool {
		return !slices.Contains(s.Ports, topology.NATSPort)
	})
	topo.Renewer = nil // NATS alone
	rt := processrt.New(processrt.Options{Root: root, State: filepath.Join(state, "run"), Stack: name, AnyPorts: true})
	t.Cleanup(func() {
		if _, err := rt.Down(context.Background(), stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The PKI folder `mitosis up` gives: the CLI finds the NATS admin's password there.
	if err := rt.Up(ctx, topo, stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute,
		PKI: stack.PKIDir(state, name)}); err != nil {
		t.Fatalf("up: %v", err)
	}
	common := []string{"--runtime", "process", "--root", root, "--state", state, "--stack", name}

	// A consumer of the stack's NATS, as the monolith runs it, whose handler fails.
	js := stackJetStream(t, rt, stack.PKIDir(state, name))
	bus, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, nil, slog.New(slog.DiscardHandler), natsjs.WithRedelivery(2, func(int) time.Duration { return 10 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	broken, handled := true, 0
	sub, err := bus.Subscribe(ctx, "shipping", []string{events.OrderPaidSubject}, func(context.Context, events.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return errors.New("the warehouse is closed")
		}
		handled++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if err := bus.Publish(ctx, events.OrderPaidSubject, "order-paid.o-1", events.OrderPaid{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 15*time.Second, func() (bool, string) {
		c, err := natsjs.CountDeadLetters(ctx, js)
		return err == nil && c.Total == 1, fmt.Sprintf("%+v %v", c, err)
	})

	deadLettersOnNATSLine := func() *deadLetterCell {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"status", "--json"}, common...)...)
		if code != exitOK {
			t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
		}
		var rows []struct {
			Service     string          `json:"service"`
			DeadLetters *deadLetterCell `json:"dead_letters"`
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Service != "nats" || rows[0].DeadLetters == nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return rows[0].DeadLetters
	}
	c := deadLettersOnNATSLine()
	if c.Total != 1 || c.ByConsumer["shipping"] != 1 || c.Err != "" {
		t.Fatalf("status counts %+v, want 1 of shipping", c)
	}
	// Its one event is a dead letter now, no longer waiting for it.
	if len(c.Backlogs) != 1 || c.Backlogs[0].Consumer != "shipping" || c.Backlogs[0].Waiting != 0 {
		t.Errorf("status's backlogs %+v, want shipping's with nothing waiting", c.Backlogs)
	}
	if c.Stream == nil || c.Stream.MaxBytes != (natsjs.StoreConfig{}).Limit(natsjs.StreamName) || c.Stream.Full() >= fullWorth {
		t.Errorf("status's event stream %+v, want its byte limit and far from full", c.Stream)
	}
	code, out, _ := runCLI(t, append([]string{"status"}, common...)...)
	if code != exitOK || !strings.Contains(out, "DEAD LETTERS") || !strings.Contains(out, "1 (shipping 1)") ||
		!strings.Contains(out, "mitosis events replay -t monolith") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	code, out, errOut := runCLI(t, append([]string{"events", "dead-letters"}, common...)...)
	if code != exitOK || !strings.Contains(out, "order-paid.o-1") || !strings.Contains(out, "the warehouse is closed") ||
		!strings.Contains(out, natsjs.ReasonMaxDeliveries) || !strings.Contains(out, "1 dead letter(s)") {
		t.Errorf("events dead-letters: exit %d\n%s\n%s", code, out, errOut)
	}

	// Bad usage first: a consumer name that is none, an architecture that is not up.
	if code, _, errOut := runCLI(t, append([]string{"events", "replay", "--consumer", "ship.ping"}, common...)...); code != exitUsage {
		t.Errorf("replay --consumer ship.ping: exit %d, want %d (%s)", code, exitUsage, errOut)
	}
	if code, _, errOut := runCLI(t, append([]string{"events", "replay", "-t", "services"}, common...)...); code != exitNothing {
		t.Errorf("replay -t services with only the monolith up: exit %d, want %d (%s)", code, exitNothing, errOut)
	}

	mu.Lock()
	broken = false
	mu.Unlock()
	code, out, errOut = runCLI(t, append([]string{"events", "replay", "--consumer", "shipping", "-t", "monolith"}, common...)...)
	if code != exitOK || !strings.Contains(out, "replayed 1 dead letter(s) (shipping 1)") {
		t.Fatalf("events replay: exit %d\n%s\n%s", code, out, errOut)
	}
	stacktest.WaitFor(t, 15*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return handled == 1, fmt.Sprintf("handled %d", handled)
	})
	if c := deadLettersOnNATSLine(); c.Total != 0 || c.Err != "" {
		t.Errorf("status after the replay counts %+v, want 0", c)
	}
	if code, out, _ := runCLI(t, append([]string{"events", "replay"}, common...)...); code != exitOK || !strings.Contains(out, "replayed 0") {
		t.Errorf("second replay: exit %d\n%s", code, out)
	}

	// A consumer an older version had: the stream keeps what it has not processed until
	// forget deletes it; a consumer of the table is refused.
	if _, err := js.CreateOrUpdateConsumer(ctx, natsjs.StreamName, jetstream.ConsumerConfig{Durable: "retired",
		FilterSubjects: []string{events.OrderPaidSubject}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, events.OrderPaidSubject, "order-paid.o-2", events.OrderPaid{OrderID: "o-2"}); err != nil {
		t.Fatal(err)
	}
	streamMsgs := func() uint64 {
		t.Helper()
		st, err := js.Stream(ctx, natsjs.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	stacktest.WaitFor(t, 15*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return handled == 2, fmt.Sprintf("handled %d", handled)
	})
	// Shipping's acknowledgement follows its handler; retired's interest keeps o-2 after it.
	stacktest.WaitFor(t, 15*time.Second, func() (bool, string) {
		n := streamMsgs()
		return n == 1, fmt.Sprintf("the stream keeps %d event(s) once shipping processed o-2, want 1: retired's", n)
	})
	if code, _, errOut := runCLI(t, append([]string{"events", "forget", "shipping"}, common...)...); code != exitUsage || !strings.Contains(errOut, "consumer of this version's table") {
		t.Errorf("forget shipping: exit %d, want %d\n%s", code, exitUsage, errOut)
	}
	code, out, errOut = runCLI(t, append([]string{"events", "forget", "retired"}, common...)...)
	if code != exitOK || !strings.Contains(out, "consumer retired deleted") {
		t.Fatalf("forget retired: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := js.Consumer(ctx, natsjs.StreamName, "retired"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("retired after forget: %v, want %v", err, jetstream.ErrConsumerNotFound)
	}
	stacktest.WaitFor(t, 15*time.Second, func() (bool, string) {
		n := streamMsgs()
		return n == 0, fmt.Sprintf("the stream keeps %d event(s) after forget", n)
	})
	if code, _, errOut := runCLI(t, append([]string{"events", "forget", "retired"}, common...)...); code != exitNothing {
		t.Errorf("forget retired again: exit %d, want %d\n%s", code, exitNothing, errOut)
	}
}

// stackJetStream connects to the NATS that rt runs, where the CLI finds it: its status line's
// published client port.
func stackJetStream(t *testing.T, rt stack.Runtime, pki string) jetstream.JetStream {
	t.Helper()
	sts, err := rt.Status(t.Context())
	if err != nil || len(sts) != 1 {
		t.Fatalf("status: %+v, %v", sts, err)
	}
	addr, ok := sts[0].Ports[topology.NATSPort]
	if !ok {
		t.Fatalf("NATS's status publishes no client port: %+v", sts[0])
	}
	url, err := natsauth.AdminURL(pki, addr)
	if err != nil {
		t.Fatal(err)
	}
	tlsOpt, err := natsauth.AdminTLS(pki)
	if err != nil {
		t.Fatal(err)
	}
	return natsjstest.Connect(t, url, tlsOpt)
}

// Status mentions a consumer whose events wait for more than a minute (it does not warn of
// their age: the stream keeps them until they are processed), a consumer the table no longer
// has, whatever it holds, and warns once the event stream is half full: when full it refuses
// new events.
func TestEventLines(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	known := []string{"idle", "busy", "notify", "shipping"}
	backlogs := []natsjs.Backlog{
		{Consumer: "idle"},
		{Consumer: "busy", Waiting: 40, Oldest: now.Add(-2 * time.Second)},
		{Consumer: "notify", Waiting: 3, Oldest: now.Add(-5 * time.Minute)},
		{Consumer: "retired"},
		{Consumer: "shipping", Waiting: 900, Oldest: now.Add(-50 * time.Hour)},
		{Consumer: "withdrawn", Waiting: 7, Oldest: now.Add(-3 * time.Hour)},
	}
	const limit = 1 << 30
	for _, tc := range []struct {
		name  string
		usage *natsjs.Usage
		warn  bool
	}{
		{"no stream", nil, false},
		{"empty", &natsjs.Usage{MaxBytes: limit}, false},
		{"just under half", &natsjs.Usage{Messages: 1000, Bytes: limit/2 - 1, MaxBytes: limit}, false},
		{"half", &natsjs.Usage{Messages: 1000, Bytes: limit / 2, MaxBytes: limit}, true},
		{"full", &natsjs.Usage{Messages: 2000, Bytes: limit, MaxBytes: limit}, true},
		{"no limit", &natsjs.Usage{Messages: 2000, Bytes: limit, MaxBytes: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := eventLines(tc.usage, backlogs, known, now)
			want := []string{
				"notify has 3 event(s) waiting, the oldest for 5m0s (is its process up?)",
				"retired is no consumer of this version's table: the event stream keeps 0 event(s) for it, and every new one of its subjects, until it is deleted (mitosis events forget retired, once no process of an older version runs it)",
				"shipping has 900 event(s) waiting, the oldest for 50h0m0s (is its process up?)",
				"withdrawn is no consumer of this version's table: the event stream keeps 7 event(s) for it, the oldest for 3h0m0s, and every new one of its subjects, until it is deleted (mitosis events forget withdrawn, once no process of an older version runs it)",
			}
			if tc.warn {
				u := tc.usage
				want = append([]string{fmt.Sprintf("WARNING: the event stream SHOP_EVENTS is %.0f%% full (%s of 1024.0MiB, %d event(s) not yet processed by every consumer); "+
					"once full it refuses new events and the checkouts that publish them fail: start the consumers that fall behind", 100*u.Full(), mib(int64(u.Bytes)), u.Messages)}, want...)
			}
			if !slices.Equal(got, want) {
				t.Errorf("event lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// The consumers status knows are the table's.
func TestTableConsumers(t *testing.T) {
	if got := tableConsumers(); !slices.Equal(got, []string{"orders", "shipping", "notify"}) {
		t.Errorf("table consumers %v", got)
	}
}
