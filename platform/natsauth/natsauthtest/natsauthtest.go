// Package natsauthtest checks, against a real NATS server, that a stack's NATS users are
// confined to their own work: one check that the process tests (platform/natsauth) and the
// container suites (platform/integration) both run.
package natsauthtest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// CartIsConfined connects as the cart's process with connect (which adds the cart's
// credentials and whatever TLS the server asks for to the options it is given), and checks
// that the cart does its own work (its bucket read, written and watched; the bus opened)
// and nothing else: it cannot read the payments' charges (no API call on their stream, no
// direct get of a charge, no subscription to their subjects), read another process's
// replies, or publish an order-paid, which the event stream, read by admin, does not take.
// The charges bucket and the event stream must exist.
func CartIsConfined(t *testing.T, connect func(...nats.Option) (*nats.Conn, error), admin jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var v Violations
	cartGroup := bounded.Group{Contexts: []string{"cart"}}
	nc, err := connect(nats.CustomInboxPrefix(cartGroup.InboxPrefix()), nats.ErrorHandler(v.Handler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// Its own work.
	carts, err := natsjs.OpenBucket(ctx, js, natsjs.StoreConfig{}, cart.CartsBucket)
	if err != nil {
		t.Fatalf("the cart opens its bucket: %v", err)
	}
	user := ids.New("confined", time.Now())
	if _, err := carts.Create(ctx, user, []byte(`{}`)); err != nil {
		t.Fatalf("the cart writes its bucket: %v", err)
	}
	if _, err := carts.Get(ctx, user); err != nil {
		t.Fatalf("the cart reads its bucket: %v", err)
	}
	watch, err := carts.Watch(ctx)
	if err != nil {
		t.Fatalf("the cart watches its bucket: %v", err)
	}
	select {
	case <-watch:
	case <-ctx.Done():
		t.Fatal("the cart's watch delivered nothing")
	}
	if cartGroup.UsesEvents() {
		t.Fatal("the cart publishes or consumes events: this check's premise is gone")
	}

	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	// The charges: not through the API, not by a direct get, not by a subscription.
	c1, cancel1 := short()
	defer cancel1()
	if _, err := natsjs.OpenBucket(c1, js, natsjs.StoreConfig{}, payments.ChargesBucket); err == nil {
		t.Error("the cart opened the charges bucket")
	}
	v.Saw(t, "$JS.API.STREAM")
	if _, err := nc.Request("$JS.API.DIRECT.GET.KV_"+payments.ChargesBucket+".$KV."+payments.ChargesBucket+".ch-1", nil, time.Second); err == nil {
		t.Error("the cart read a charge by a direct get")
	}
	v.Saw(t, "$JS.API.DIRECT.GET.KV_"+payments.ChargesBucket)
	if _, err := nc.SubscribeSync("$KV." + payments.ChargesBucket + ".>"); err == nil {
		_ = nc.Flush()
	}
	v.Saw(t, "$KV."+payments.ChargesBucket)
	// Another process's replies.
	if _, err := nc.SubscribeSync(bounded.Group{Contexts: []string{"payments"}}.InboxPrefix() + ".>"); err == nil {
		_ = nc.Flush()
	}
	v.Saw(t, "_INBOX_payments")
	// Another context's consumer of events the cart does not publish: it could redirect
	// them (a filter that matches nothing, and the stream would stop keeping them for it).
	others := bounded.EventConsumers()
	if len(cartGroup.EventConsumers()) != 0 || len(others) == 0 {
		t.Fatalf("the cart makes consumers %v of %v: it publishes and consumes nothing", cartGroup.EventConsumers(), others)
	}
	c3, cancel3 := short()
	defer cancel3()
	if _, err := js.CreateOrUpdateConsumer(c3, natsjs.StreamName, jetstream.ConsumerConfig{Durable: others[0].Name,
		FilterSubjects: []string{"shop.events.nothing"}, AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Errorf("the cart changed %s's consumer", others[0].Name)
	}
	v.Saw(t, "$JS.API.CONSUMER.CREATE."+natsjs.StreamName+"."+others[0].Name)
	// The event stream itself: the cart, which neither publishes nor consumes events, may not
	// open it, and so may not change it (an age limit would drop what consumers have not read).
	c4, cancel4 := short()
	defer cancel4()
	if _, err := natsjs.OpenBus(c4, js, natsjs.StoreConfig{}, nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("the cart opened the event stream")
	}
	v.Saw(t, "$JS.API.STREAM.INFO."+natsjs.StreamName)
	// An order-paid: refused, and the stream takes none. (A stack the check shares with
	// other tests holds their order-paid events: the cart's is told by its order ID.)
	forged := []byte(`{"order_id":"` + ids.New("forged", time.Now()) + `"}`)
	c2, cancel2 := short()
	defer cancel2()
	if _, err := js.Publish(c2, events.OrderPaidSubject, forged); err == nil {
		t.Error("the cart published an order-paid")
	}
	v.Saw(t, events.OrderPaidSubject)
	if n := holding(ctx, t, admin, events.OrderPaidSubject, forged); n != 0 {
		t.Errorf("the event stream holds the cart's order-paid (%d of them)", n)
	}
}

// holding counts the messages on subject in the event stream whose body is data, reading
// every one of them (an ordered consumer of the admin's, bounded by the stream's count).
func holding(ctx context.Context, t *testing.T, admin jetstream.JetStream, subject string, data []byte) int {
	t.Helper()
	st, err := admin.Stream(ctx, natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for read := uint64(0); read < info.State.Msgs; {
		batch, err := c.Fetch(int(min(100, info.State.Msgs-read)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if string(msg.Data()) == string(data) {
				found++
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("read %d of the %d messages on %s, then nothing", read, info.State.Msgs, subject)
		}
		read += uint64(n)
	}
	return found
}

// Violations collects the permission violations the server reports on a connection: give
// its Handler to nats.ErrorHandler.
type Violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *Violations) Handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.errs = append(v.errs, err.Error())
		v.mu.Unlock()
	}
}

// Saw waits until a violation naming subject was reported, or fails the test.
func (v *Violations) Saw(t *testing.T, subject string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(e, subject) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		time.Sleep(10 * time.Millisecond) // polling the handler's record, bounded by the deadline
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t.Errorf("no permission violation for %s reported (got %v)", subject, v.errs)
}
