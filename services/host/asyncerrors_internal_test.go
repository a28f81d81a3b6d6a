package host

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/shop/logtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// An error the NATS server sends apart from any call (here a subscription the user may not
// make) reaches the process's structured log, not stderr; once the generation is stopping,
// it is left out.
func TestAsyncNATSErrorsAreLogged(t *testing.T) {
	ns := natsjstest.Serve(t, &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Users: []*server.User{{Username: "u", Password: "p", Permissions: &server.Permissions{
			Subscribe: &server.SubjectPermission{Deny: []string{"denied.>"}},
		}}},
	})
	var logs logtest.Buffer
	var stopping atomic.Bool
	log := asyncErrors(slog.New(slog.NewJSONHandler(&logs, nil)), stopping.Load)
	handled := make(chan error, 2)
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("u", "p"), nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		log(nc, sub, err)
		handled <- err
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	deny := func(subject string) {
		t.Helper()
		if _, err := nc.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-handled:
			if !strings.Contains(err.Error(), subject) {
				t.Fatalf("asynchronous error %q, want the violation of %s", err, subject)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no asynchronous error for a subscription to %s", subject)
		}
	}

	deny("denied.one")
	if got := logs.String(); !strings.Contains(got, `"level":"WARN","msg":"NATS asynchronous error"`) || !strings.Contains(got, `Subscription to \"denied.one`) {
		t.Errorf("logged %q, want a warning with the server's error", got)
	}
	stopping.Store(true)
	before := logs.String()
	deny("denied.two")
	if got := logs.String(); got != before {
		t.Errorf("a stopping generation logged %q", strings.TrimPrefix(got, before))
	}
}
