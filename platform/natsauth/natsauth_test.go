package natsauth_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/natsauth/natsauthtest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

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
	if _, err := natsjs.OpenBus(ctx, ajs, natsjs.StoreConfig{}, bounded.EventConsumers(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	// An order-paid of the admin's, as a stack shared with other tests holds: the check
	// reads past it.
	if _, err := ajs.Publish(ctx, events.OrderPaidSubject, []byte(`{"order_id":"ord-admin"}`)); err != nil {
		t.Fatal(err)
	}

	natsauthtest.CartIsConfined(t, func(opts ...nats.Option) (*nats.Conn, error) {
		return nats.Connect(ns.ClientURL(), append(opts, nats.UserInfo("cart", "cart-pw"))...)
	}, ajs)
}

// The permissions follow the table: a context's buckets, published events and consumers' reads
// are in its user's, another's are not.
func TestPermissionsFollowTheTable(t *testing.T) {
	for _, c := range bounded.Table() {
		g := bounded.Group{Contexts: []string{c.Name}}
		p := natsauth.Permissions(g)
		for _, o := range bounded.Table() {
			for _, b := range o.Buckets {
				has := anyHasPrefix(p.Publish.Allow, "$KV."+b+".>")
				if has != (o.Name == c.Name) {
					t.Errorf("%s may write %s: %v", c.Name, b, has)
				}
			}
			for _, s := range o.Publishes {
				if has := anyHasPrefix(p.Publish.Allow, s); has != anyHasPrefix(c.Publishes, s) {
					t.Errorf("%s may publish %s: %v", c.Name, s, has)
				}
			}
		}
		// A process makes its own consumers and those of the events it publishes
		// (natsjs.OpenBus); it reads only its own.
		for _, k := range bounded.EventConsumers() {
			makes := slices.ContainsFunc(g.EventConsumers(), func(o natsjs.Consumer) bool { return o.Name == k.Name })
			if has := slices.Contains(p.Publish.Allow, "$JS.API.CONSUMER.CREATE."+natsjs.StreamName+"."+k.Name); has != makes {
				t.Errorf("%s may create consumer %s: %v", c.Name, k.Name, has)
			}
			own := slices.ContainsFunc(c.Consumers, func(o bounded.Consumer) bool { return o.Name == k.Name })
			if has := slices.Contains(p.Publish.Allow, "$JS.API.CONSUMER.MSG.NEXT."+natsjs.StreamName+"."+k.Name); has != own {
				t.Errorf("%s may read consumer %s: %v", c.Name, k.Name, has)
			}
		}
		// Only a process that publishes or consumes events opens the event stream.
		if has := slices.Contains(p.Publish.Allow, "$JS.API.STREAM.UPDATE."+natsjs.StreamName); has != g.UsesEvents() {
			t.Errorf("%s may update the event stream: %v", c.Name, has)
		}
		if len(p.Subscribe.Allow) != 1 || p.Subscribe.Allow[0] != "_INBOX_"+c.Name+".>" {
			t.Errorf("%s subscribes to %v", c.Name, p.Subscribe.Allow)
		}
	}
	if p := natsauth.Permissions(bounded.Group{Edge: true}); anyHasPrefix(p.Publish.Allow, "$KV.") {
		t.Errorf("the gateway writes a bucket: %v", p.Publish.Allow)
	}
}

// anyHasPrefix says whether an entry of list starts with prefix.
func anyHasPrefix(list []string, prefix string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.HasPrefix(x, prefix) })
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
	var v natsauthtest.Violations
	cartConn, err := nats.Connect(topology.NATSURL(false, creds.Auth["cart"], addr), nats.ErrorHandler(v.Handler),
		nats.CustomInboxPrefix(bounded.Group{Contexts: []string{"cart"}}.InboxPrefix()))
	if err != nil {
		t.Fatalf("the cart: %v", err)
	}
	defer cartConn.Close()
	if err := cartConn.Publish(events.OrderPaidSubject, nil); err == nil {
		_ = cartConn.Flush()
	}
	v.Saw(t, events.OrderPaidSubject)
	if u, _ := natsauth.AdminURL(t.TempDir(), addr); u != "nats://"+addr {
		t.Errorf("AdminURL of a folder without users: %s", u)
	}
}
