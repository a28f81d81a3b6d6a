package main

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// -auth takes users in nats.conf's syntax with their passwords from the environment, as the
// Kubernetes base gives them: a server with them lets the user in with the environment's
// password only, and holds it to its permissions.
func TestAuthFromTheEnvironment(t *testing.T) {
	t.Setenv("NATS_PASSWORD_CART", "0a1b2c3d4e")
	users, err := readUsers("", `authorization { users = [
  { user: "cart", password: $NATS_PASSWORD_CART, permissions { publish { allow: ["shop.ok"] }, subscribe { allow: ["_INBOX_cart.>"] } } }
] }`)
	if err != nil {
		t.Fatal(err)
	}
	ns := natsjstest.Serve(t, &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, Users: users})
	if nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("cart", "$NATS_PASSWORD_CART"), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Error("the reference itself was taken for the password")
	}
	denied := make(chan error, 1)
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo("cart", "0a1b2c3d4e"), nats.Timeout(5*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case denied <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("the cart with the environment's password: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("shop.other", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-denied:
		t.Logf("refused as it should: %v", err)
	case <-time.After(5 * time.Second):
		t.Error("the cart published outside its permissions")
	}
	for _, bad := range []struct{ file, auth string }{
		{"x.json", "authorization { users = [] }"},
		{"", "authorization { users = [] }"},
		{"", "authorization { users = [ { user: a, password: $NOT_SET_ANYWHERE_HND } ] }"},
	} {
		if _, err := readUsers(bad.file, bad.auth); err == nil {
			t.Errorf("readUsers(%q, %q) took it", bad.file, bad.auth)
		}
	}
}
