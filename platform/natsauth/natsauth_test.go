package natsauth_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// violations collects the permission violations the server reports on a connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		v.mu.Lock()
		v.errs = append(v.errs, err.Error())
		v.mu.Unlock()
	}
}

// saw waits until a violation naming subject was reported, or fails.
func (v *violations) saw(t *testing.T, subject string) {
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
	t.Errorf("no permission violation for %s reported (got %v)", subject, v.errs)
}

// A real nats-server with the stack's users: the cart's credentials do the cart's work and
// nothing else. They cannot read the payments' charges (no API call on its stream, no
// direct get, no subscription to its subjects), publish an order-paid, or read the replies
// of another process.
func TestCartCannotReadChargesNorPublishOrderPaid(t *testing.T) {
	cartGroup := bounded.Group{Contexts: []string{"cart"}}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users: []*server.User{natsauth.User(cartGroup, "cart-pw"), {Username: "admin", Password: "admin-pw"}}}
	ns := natsjstest.Serve(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The admin (the stack's own tools) makes the charges bucket and the event stream.
	admin, err := nats.Connect(ns.ClientURL(), nats.UserInfo("admin", "admin-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	charges, err := natsjs.OpenBucket(ctx, ajs, natsjs.StoreConfig{}, payments.ChargesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := charges.Create(ctx, "ch-1", []byte(`{"card":"4242"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := natsjs.OpenBus(ctx, ajs, natsjs.StoreConfig{}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	var v violations
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("cart", "cart-pw"), nats.CustomInboxPrefix(natsauth.InboxPrefix(cartGroup)),
		nats.ErrorHandler(v.handler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Its own work: its bucket, read, written and watched, and the bus.
	carts, err := natsjs.OpenBucket(ctx, js, natsjs.StoreConfig{}, cart.CartsBucket)
	if err != nil {
		t.Fatalf("the cart opens its bucket: %v", err)
	}
	if _, err := carts.Create(ctx, "ada", []byte(`{}`)); err != nil {
		t.Fatalf("the cart writes its bucket: %v", err)
	}
	if _, err := carts.Get(ctx, "ada"); err != nil {
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
	if _, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("the cart opens the bus: %v", err)
	}

	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	// The charges: not through the API, not by a direct get, not by a subscription.
	c1, cancel1 := short()
	defer cancel1()
	if _, err := natsjs.OpenBucket(c1, js, natsjs.StoreConfig{}, payments.ChargesBucket); err == nil {
		t.Error("the cart opened the charges bucket")
	}
	v.saw(t, "$JS.API.STREAM")
	if _, err := nc.Request("$JS.API.DIRECT.GET.KV_"+payments.ChargesBucket+".$KV."+payments.ChargesBucket+".ch-1", nil, time.Second); err == nil {
		t.Error("the cart read a charge by a direct get")
	}
	v.saw(t, "$JS.API.DIRECT.GET.KV_"+payments.ChargesBucket)
	if _, err := nc.SubscribeSync("$KV." + payments.ChargesBucket + ".>"); err == nil {
		_ = nc.Flush()
	}
	v.saw(t, "$KV."+payments.ChargesBucket)
	// Another process's replies.
	if _, err := nc.SubscribeSync(natsauth.InboxPrefix(bounded.Group{Contexts: []string{"payments"}}) + ".>"); err == nil {
		_ = nc.Flush()
	}
	v.saw(t, "_INBOX_payments")
	// An order-paid: refused, and the stream holds none.
	c2, cancel2 := short()
	defer cancel2()
	if _, err := js.Publish(c2, events.OrderPaidSubject, []byte(`{"order_id":"ord-1"}`)); err == nil {
		t.Error("the cart published an order-paid")
	}
	v.saw(t, events.OrderPaidSubject)
	st, err := ajs.Stream(ctx, natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.OrderPaidSubject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Msgs; n != 0 {
		t.Errorf("the event stream holds %d messages after the cart's attempt", n)
	}
}

// The permissions follow the table: a context's buckets and published events are in its
// user's, another's are not.
func TestPermissionsFollowTheTable(t *testing.T) {
	for _, c := range bounded.Table() {
		p := natsauth.Permissions(bounded.Group{Contexts: []string{c.Name}})
		for _, o := range bounded.Table() {
			for _, b := range o.Buckets {
				has := contains(p.Publish.Allow, "$KV."+b+".>")
				if has != (o.Name == c.Name) {
					t.Errorf("%s may write %s: %v", c.Name, b, has)
				}
			}
			for _, s := range o.Publishes {
				if has := contains(p.Publish.Allow, s); has != contains(c.Publishes, s) {
					t.Errorf("%s may publish %s: %v", c.Name, s, has)
				}
			}
		}
		if len(p.Subscribe.Allow) != 1 || p.Subscribe.Allow[0] != "_INBOX_"+c.Name+".>" {
			t.Errorf("%s subscribes to %v", c.Name, p.Subscribe.Allow)
		}
	}
	if p := natsauth.Permissions(bounded.Group{Edge: true}); contains(p.Publish.Allow, "$KV.") {
		t.Errorf("the gateway writes a bucket: %v", p.Publish.Allow)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.HasPrefix(x, s) {
			return true
		}
	}
	return false
}

// Setup makes one user per group of a topology and the admin, keeps their passwords across
// calls, and writes the file the stack's nats-server reads; AdminURL reaches that server as
// the admin, and a service's URL as that service only.
func TestSetupServesTheStacksNATS(t *testing.T) {
	topo, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	pki := t.TempDir()
	creds, err := natsauth.Setup(pki, topo)
	if err != nil {
		t.Fatal(err)
	}
	again, err := natsauth.Setup(pki, topo)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"monolith", "gateway", "payments", "cart", natsauth.Admin} {
		if creds.Auth[name] == nil || creds.Auth[name].String() != again.Auth[name].String() {
			t.Errorf("user %s: %q then %q", name, creds.Auth[name], again.Auth[name])
		}
	}
	path := creds.Path()
	if again.Path() != path {
		t.Errorf("the same users in another file: %s, then %s", path, again.Path())
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("users file: %v, %v", st, err)
	}
	users, err := natsauth.ReadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	ns := natsjstest.Serve(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true, Users: users})
	addr := ns.Addr().String()
	if _, err := nats.Connect("nats://" + addr); err == nil {
		t.Error("a connection without credentials was let in")
	}
	admin, err := natsauth.AdminURL(pki, addr)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(admin)
	if err != nil {
		t.Fatalf("the admin: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := natsjs.OpenBucket(t.Context(), js, natsjs.StoreConfig{}, payments.ChargesBucket); err != nil {
		t.Errorf("the admin opens any bucket: %v", err)
	}
	var v violations
	cartConn, err := nats.Connect(topology.NATSURL(false, creds.Auth["cart"], addr), nats.ErrorHandler(v.handler),
		nats.CustomInboxPrefix(natsauth.InboxPrefix(bounded.Group{Contexts: []string{"cart"}})))
	if err != nil {
		t.Fatalf("the cart: %v", err)
	}
	defer cartConn.Close()
	if err := cartConn.Publish(events.OrderPaidSubject, nil); err == nil {
		_ = cartConn.Flush()
	}
	v.saw(t, events.OrderPaidSubject)
	if u, _ := natsauth.AdminURL(t.TempDir(), addr); u != "nats://"+addr {
		t.Errorf("AdminURL of a folder without users: %s", u)
	}
}
