package host_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// A process creates, when it opens the event stream, its own consumers and every consumer of
// the events it publishes, those of contexts it does not run too: the stream keeps an event
// only for the consumers that exist when it is published, and the process that consumes it
// may never have run yet. A process that neither publishes nor consumes opens no event stream.
func TestAPublisherCreatesItsEventsConsumers(t *testing.T) {
	ns := hosttest.StartNATS(t)
	js := natsjstest.Connect(t, ns.URL())
	env := map[string]string{"SHOP_NATS_URL": ns.URL()}

	hosttest.Start(t, "catalog", env)
	if _, err := js.Stream(t.Context(), natsjs.StreamName); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the event stream after catalog's process started: %v, want none", err)
	}

	hosttest.Start(t, "orders", env)
	var made []string
	for _, k := range bounded.EventConsumers() {
		c, err := js.Consumer(t.Context(), natsjs.StreamName, k.Name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("consumer %s: %v", k.Name, err)
		}
		made = append(made, k.Name)
		if got := c.CachedInfo().Config.FilterSubjects; len(got) == 0 || !slices.Equal(got[:len(got)-1], k.Subjects) {
			t.Errorf("consumer %s takes %v, want %v and its replays", k.Name, got, k.Subjects)
		}
		if own := k.Name == "orders"; !own && !slices.Contains(k.Subjects, events.OrderPaidSubject) {
			t.Errorf("orders' process made %s, which takes no order-paid", k.Name)
		}
	}
	// orders consumes order-shipped and publishes order-paid, which shipping and notify take.
	if want := []string{"orders", "shipping", "notify"}; !slices.Equal(made, want) {
		t.Errorf("after orders' process started the stream has consumers %v, want %v", made, want)
	}
}
