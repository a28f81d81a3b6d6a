package processrt_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/natsauth/natsauthtest"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestSecurityAsProcesses runs the microservices as processes with their identities (about
// a minute on 2 cores: go test -run TestSecurityAsProcesses ./platform/processrt):
//
//   - the shop works (a checkout through the gateway) over mutual TLS, each process with its
//     NATS user; the stack's NATS lets in no connection without credentials, and the cart's
//     user cannot read the payments' charges nor publish an order-paid;
//   - payments refuses a client without a certificate and one of another CA, and answers
//     the cart's identity calling Charge with PermissionDenied, while orders' passes; every
//     other process that serves gRPC refuses the same two and answers the tools' health;
//   - a second up reuses every certificate and restarts nothing; a certificate past half its
//     life is renewed by the next up, and the running process serves the new one without a
//     restart.
func TestSecurityAsProcesses(t *testing.T) {
	topo, err := topology.Get("", topology.Options{Split: "catalog,cart,inventory,payments,orders,shipping+notify",
		Edges: map[string]string{topology.SplitName: stacktest.AnyPort}, Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	name := hsStack(t)
	rt := newRuntime(t, processrt.Options{Stack: name, AnyPorts: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	pki := t.TempDir()
	opts := stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: &progress, PKI: pki}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	edge := stacktest.EdgeAddr(t, rt, topo, topology.SplitName)
	stacktest.Checkout(t, "http://"+edge, "test-token", "ada")

	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	var payments, natsAddr string
	for _, s := range sts {
		pids[s.Service] = s.PID
		if s.Service == "payments" {
			payments = s.Addr
		}
		if a, ok := s.Ports[topology.NATSPort]; ok {
			natsAddr = a
		}
	}
	// The stack's NATS lets in its users only: the admin, not a stranger.
	if nc, err := nats.Connect("nats://" + natsAddr); err == nil {
		nc.Close()
		t.Error("the stack's NATS let in a connection without credentials")
	}
	admin, err := natsauth.AdminURL(pki, natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	// Nor its admin's password without the stack's certificate: NATS speaks TLS only.
	if nc, err := nats.Connect(admin, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Error("the stack's NATS let in its admin's password without TLS")
	}
	tlsOpt, err := natsauth.AdminTLS(pki)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(admin, tlsOpt)
	if err != nil {
		t.Fatalf("the stack's NATS refused its admin: %v", err)
	}
	nc.Close()
	// The cart's NATS user, with the password and the identity its process is given, does
	// the cart's work and nothing else, on the stack's nats-server process.
	cartPW, err := natsauth.Passwords(pki, []string{"cart"})
	if err != nil {
		t.Fatal(err)
	}
	cartID, err := identity.Load(filepath.Join(pki, "cart"))
	if err != nil {
		t.Fatal(err)
	}
	cartURL := topology.NATSURL(false, url.UserPassword("cart", cartPW["cart"]), natsAddr)
	natsauthtest.CartIsConfined(t, func(opts ...nats.Option) (*nats.Conn, error) {
		return nats.Connect(cartURL, append(opts, nats.Secure(cartID.ClientConfig(identity.Is(identity.NATS))))...)
	}, natsjstest.Connect(t, admin, tlsOpt))
	if payments == "" {
		t.Fatalf("no payments in %v", sts)
	}
	ca, err := identity.OpenCA(pki, name)
	if err != nil {
		t.Fatal(err)
	}
	folder := func(ca *identity.CA, service string) string {
		dir, err := ca.Ensure(service)
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	other, err := identity.OpenCA(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	creds := func(dir string) credentials.TransportCredentials {
		src, err := identity.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return credentials.NewTLS(src.ClientConfig(nil))
	}
	type caller struct {
		who   string
		creds credentials.TransportCredentials
		want  codes.Code
	}
	noCert := caller{"no certificate", credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}), codes.Unavailable} //nolint:gosec // the attacker's client
	foreign := caller{"another CA's orders", creds(folder(other, "orders")), codes.Unavailable}
	for _, c := range []caller{
		noCert, foreign,
		{"cart", creds(folder(ca, "cart")), codes.PermissionDenied},
		{"tooling", creds(folder(ca, identity.Tooling)), codes.PermissionDenied},
		{"orders", creds(folder(ca, "orders")), codes.InvalidArgument}, // allowed; an empty charge is bad input
	} {
		if got := stacktest.GRPCCode(ctx, t, payments, c.creds, "/mitosis.payments.v1.PaymentsService/Charge", &emptypb.Empty{}, &emptypb.Empty{}); got != c.want {
			t.Errorf("Charge as %s: %s, want %s", c.who, got, c.want)
		}
	}
	// Every process that serves gRPC, not payments only, refuses both strangers at the
	// handshake, and answers the stack's tools its health.
	servers := 0
	for _, st := range sts {
		i := slices.IndexFunc(topo.Archs, func(a topology.Arch) bool { return a.Name == st.Arch })
		if i < 0 {
			continue
		}
		if svc, ok := topo.Archs[i].Service(st.Service); !ok || svc.Probe.Kind != topology.GRPC {
			continue
		}
		servers++
		for _, c := range []caller{noCert, foreign, {"tooling", creds(folder(ca, identity.Tooling)), codes.OK}} {
			if got := stacktest.HealthCode(ctx, t, st.Addr, c.creds); got != c.want {
				t.Errorf("%s's health as %s: %s, want %s", st.Service, c.who, got, c.want)
			}
		}
	}
	if servers != 6 { // catalog, cart, inventory, payments, orders, shipping+notify
		t.Errorf("%d processes serve gRPC, want the split's 6: %+v", servers, sts)
	}

	// Reused across ups: the same certificate, nothing restarted.
	certPath := filepath.Join(pki, "payments", identity.CertFile)
	before, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("second up: %v\n%s", err, progress.String())
	}
	if after, _ := os.ReadFile(certPath); !bytes.Equal(after, before) {
		t.Error("a second up replaced a fresh certificate")
	}
	// Renewed before it expires: payments' certificate, issued for a minute (most of its life
	// gone, as it backdates by minutes), is replaced at the next up, and the process serves
	// the new one at its next handshake, still the same process.
	identitytest.Age(t, ca, "payments")
	if got := servedUntil(t, payments, folder(ca, identity.Tooling)); time.Until(got) > time.Minute {
		t.Fatalf("payments serves a certificate until %s, want the short one it was just given", got)
	}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("third up: %v\n%s", err, progress.String())
	}
	if got := servedUntil(t, payments, folder(ca, identity.Tooling)); time.Until(got) < identity.LeafLifetime-time.Hour {
		t.Errorf("after up, payments serves a certificate until %s, want a renewed one", got)
	}
	sts, err = rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if pids[s.Service] != s.PID {
			t.Errorf("%s restarted (pid %d, was %d): renewal needs no restart", s.Service, s.PID, pids[s.Service])
		}
	}
	stacktest.Checkout(t, "http://"+edge, "test-token", "bob")
}

// servedUntil is when the certificate the server at addr presents expires.
func servedUntil(t *testing.T, addr, toolDir string) time.Time {
	t.Helper()
	src, err := identity.Load(toolDir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, src.ClientConfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].NotAfter
}
