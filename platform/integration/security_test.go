package integration_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/natsauth/natsauthtest"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestServicesSecurity: in containers, every service of the microservices (their identity
// folders mounted read-only) refuses a client without a certificate and one of another
// stack's CA, answers health to the stack's tooling identity, and refuses the cart's
// identity calling PaymentsService/Charge with PermissionDenied, while orders' gets through.
func TestServicesSecurity(t *testing.T) {
	requireEngine(t)
	s := servicesStack(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	creds := func(dir string) credentials.TransportCredentials {
		t.Helper()
		src, err := identity.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return credentials.NewTLS(src.ClientConfig(nil))
	}
	other, err := identity.OpenCA(t.TempDir(), s.Name)
	if err != nil {
		t.Fatal(err)
	}
	otherDir, err := other.Ensure("orders")
	if err != nil {
		t.Fatal(err)
	}
	call := func(addr string, c credentials.TransportCredentials, method string) codes.Code {
		if method == "" {
			return stacktest.HealthCode(ctx, t, addr, c)
		}
		return stacktest.GRPCCode(ctx, t, addr, c, method, &emptypb.Empty{}, &emptypb.Empty{})
	}
	noCert := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) //nolint:gosec // the attacker's client
	var payments string
	for _, svc := range s.Arch.Services {
		if svc.Identity() == "" || svc.Probe.Kind != topology.GRPC {
			continue
		}
		addr, err := s.HostAddr(ctx, svc.Name, svc.Probe.Port)
		if err != nil {
			t.Fatal(err)
		}
		if svc.Name == "payments" {
			payments = addr
		}
		if got := call(addr, noCert, ""); got != codes.Unavailable {
			t.Errorf("%s without a certificate: %s, want Unavailable", svc.Name, got)
		}
		if got := call(addr, creds(otherDir), ""); got != codes.Unavailable {
			t.Errorf("%s with another CA's certificate: %s, want Unavailable", svc.Name, got)
		}
		if got := call(addr, creds(s.Identity(identity.Tooling)), ""); got != codes.OK {
			t.Errorf("%s health with the tooling identity: %s, want OK", svc.Name, got)
		}
	}
	if payments == "" {
		t.Fatal("no payments service")
	}
	const charge = "/mitosis.payments.v1.PaymentsService/Charge"
	if got := call(payments, creds(s.Identity("cart")), charge); got != codes.PermissionDenied {
		t.Errorf("Charge as cart: %s, want PermissionDenied", got)
	}
	if got := call(payments, creds(s.Identity("orders")), charge); got != codes.InvalidArgument {
		t.Errorf("Charge as orders with an empty request: %s, want InvalidArgument (allowed, bad input)", got)
	}
}

// TestServicesNATSUsers: in containers, the cart's NATS user, with the password and the
// identity its container is given, does the cart's work and nothing else: the check the
// process tests run (natsauthtest.CartIsConfined), against the services' NATS container.
func TestServicesNATSUsers(t *testing.T) {
	requireEngine(t)
	s := servicesStack(t)
	ctx := t.Context()
	cartURL, cartTLS, err := s.NATSURLAs(ctx, "cart")
	if err != nil {
		t.Fatal(err)
	}
	adminURL, err := s.NATSURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	adminTLS, err := s.NATSTLS()
	if err != nil {
		t.Fatal(err)
	}
	natsauthtest.CartIsConfined(t, func(opts ...nats.Option) (*nats.Conn, error) {
		return nats.Connect(cartURL, append(opts, cartTLS)...)
	}, natsjstest.Connect(t, adminURL, adminTLS))
}
