package main

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// identities makes a CA for stack in a folder of its own and the identities of services.
func identities(t *testing.T, stack string, services ...string) map[string]string {
	t.Helper()
	ca, err := identity.OpenCA(t.TempDir(), stack)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := ca.EnsureAll(services)
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// startTLS starts the server as -tls dir configures it, on a loopback port.
func startTLS(t *testing.T, dir string) string {
	t.Helper()
	return startTLSEnv(t, dir, func(string) string { return "" })
}

// startTLSEnv starts the server with the identity -tls dir and the environment getenv give
// it, on a loopback port.
func startTLSEnv(t *testing.T, dir string, getenv func(string) string) string {
	t.Helper()
	id, err := tlsIdentity(getenv, dir)
	if err != nil || id == nil {
		t.Fatalf("tlsIdentity = %v, %v", id, err)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true}
	serveTLS(opts, id)
	ns := natsjstest.Serve(t, opts)
	return ns.Addr().String()
}

func client(t *testing.T, dir string, check identity.Check) *tls.Config {
	t.Helper()
	src, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return src.ClientConfig(check)
}

// With -tls, the stack's NATS lets in only clients that speak TLS with a certificate of the
// stack: not a plain client, not one without the stack's CA (whether it checks the server or
// not), not one of another stack; a service of the stack connects and publishes. And a
// service accepts no other server than the stack's NATS, even one of its own CA.
func TestTLSOnlyForTheStack(t *testing.T) {
	ids := identities(t, "one", identity.NATS, "cart", identity.Tooling)
	other := identities(t, "two", identity.NATS, "cart")
	addr := startTLS(t, ids[identity.NATS])
	tries := []struct {
		name string
		opts []nats.Option
	}{
		{"a plain client", nil},
		{"TLS without the stack's CA", []nats.Option{nats.Secure(&tls.Config{MinVersion: tls.VersionTLS13})}},
		{"TLS that trusts any server but has no certificate", []nats.Option{nats.Secure(&tls.Config{InsecureSkipVerify: true})}}, //nolint:gosec // the attacker's client
		{"the cart of another stack", []nats.Option{nats.Secure(client(t, other["cart"], nil))}},
	}
	for _, try := range tries {
		nc, err := nats.Connect("nats://"+addr, append(try.opts, nats.Timeout(5*time.Second), nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Errorf("%s was let in", try.name)
		}
	}
	for _, id := range []string{"cart", identity.Tooling} {
		nc, err := nats.Connect("tls://"+addr, nats.Secure(client(t, ids[id], identity.Is(identity.NATS))), nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatalf("%s of the stack: %v", id, err)
		}
		if err := nc.Publish("x", nil); err != nil {
			t.Error(err)
		}
		if err := nc.Flush(); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		nc.Close()
	}
	// A server of the stack's CA that is not its NATS (the cart's certificate serving).
	impostor := startTLS(t, ids["cart"])
	if nc, err := nats.Connect("tls://"+impostor, nats.Secure(client(t, ids["cart"], identity.Is(identity.NATS))),
		nats.Timeout(5*time.Second), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Error("a client took the cart's server for the stack's NATS")
	}
}

// pemEnv is the environment an ECS task's secrets give the server: the files of the identity
// folder dir as NATS_TLS_CERT_PEM, NATS_TLS_KEY_PEM and NATS_TLS_CA_PEM.
func pemEnv(t *testing.T, dir string) func(string) string {
	t.Helper()
	vars := identitytest.PEMVars(t, tlsEnv, dir)
	return func(k string) string { return vars[k] }
}

// With its identity as PEM in its environment (ECS), the server speaks TLS as with -tls: a
// service of the stack connects, a plain client and one of another stack do not. Given a
// folder too, it does not start; given neither, it speaks plain NATS.
func TestTLSFromEnvironment(t *testing.T) {
	if tlsEnv.Dir != topology.NATSTLSDirEnv {
		t.Fatalf("the server reads %s, the topology sets %s", tlsEnv.Dir, topology.NATSTLSDirEnv)
	}
	ids := identities(t, "one", identity.NATS, "cart")
	other := identities(t, "two", "cart")
	addr := startTLSEnv(t, "", pemEnv(t, ids[identity.NATS]))
	nc, err := nats.Connect("tls://"+addr, nats.Secure(client(t, ids["cart"], identity.Is(identity.NATS))), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("the cart of the stack: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Error(err)
	}
	nc.Close()
	for name, opts := range map[string][]nats.Option{
		"a plain client":            nil,
		"the cart of another stack": {nats.Secure(client(t, other["cart"], nil))},
	} {
		if nc, err := nats.Connect("nats://"+addr, append(opts, nats.Timeout(5*time.Second), nats.NoReconnect())...); err == nil {
			nc.Close()
			t.Errorf("%s was let in", name)
		}
	}
	if _, err := tlsIdentity(pemEnv(t, ids[identity.NATS]), ids[identity.NATS]); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("a folder and PEM: %v", err)
	}
	if id, err := tlsIdentity(func(string) string { return "" }, ""); id != nil || err != nil {
		t.Errorf("neither: %v, %v, want no TLS", id, err)
	}
}
