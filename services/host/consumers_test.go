package host_test

import (
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// A process creates every consumer of the table when it opens the event stream, those of the
// contexts it does not run too: the stream keeps an event only for the consumers that exist
// when it is published, and whichever process starts first may publish before the one that
// runs a consumer has ever run.
func TestAProcessCreatesEveryConsumerOfTheTable(t *testing.T) {
	ns := hosttest.StartNATS(t)
	hosttest.Start(t, "catalog", map[string]string{"SHOP_NATS_URL": ns.URL()})
	js := natsjstest.Connect(t, ns.URL())
	want := bounded.EventConsumers()
	if len(want) == 0 {
		t.Fatal("the table has no consumers")
	}
	for _, k := range want {
		c, err := js.Consumer(t.Context(), natsjs.StreamName, k.Name)
		if err != nil {
			t.Errorf("consumer %s after catalog's process started: %v", k.Name, err)
			continue
		}
		if got := c.CachedInfo().Config.FilterSubjects; len(got) == 0 || !slices.Equal(got[:len(got)-1], k.Subjects) {
			t.Errorf("consumer %s takes %v, want %v and its replays", k.Name, got, k.Subjects)
		}
	}
}
