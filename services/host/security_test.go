package host_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/logtest"
	"github.com/mitosis-dev/mitosis/shop/money"

	cartv1 "github.com/mitosis-dev/mitosis/services/gen/cart/v1"
	catalogv1 "github.com/mitosis-dev/mitosis/services/gen/catalog/v1"
	inventoryv1 "github.com/mitosis-dev/mitosis/services/gen/inventory/v1"
	notifyv1 "github.com/mitosis-dev/mitosis/services/gen/notify/v1"
	ordersv1 "github.com/mitosis-dev/mitosis/services/gen/orders/v1"
	paymentsv1 "github.com/mitosis-dev/mitosis/services/gen/payments/v1"
	shippingv1 "github.com/mitosis-dev/mitosis/services/gen/shipping/v1"
)

// descs are the shop's gRPC services.
var descs = []grpc.ServiceDesc{cartv1.CartService_ServiceDesc, catalogv1.CatalogService_ServiceDesc,
	inventoryv1.InventoryService_ServiceDesc, notifyv1.NotifyService_ServiceDesc, ordersv1.OrdersService_ServiceDesc,
	paymentsv1.PaymentsService_ServiceDesc, shippingv1.ShippingService_ServiceDesc}

// Every service of the shop, over a real socket with mutual TLS: a client without a
// certificate, or with one of another stack's CA, is refused at the handshake; a process of
// the stack may call exactly the methods the access table gives it, and gets PermissionDenied
// for any other; tools reach health and nothing of the shop.
func TestEveryServiceRefusesWhomTheTableDoesNot(t *testing.T) {
	contexts := strings.Join(bounded.Names(), "+")
	h := hosttest.Start(t, contexts, map[string]string{"SHOP_NATS_URL": hosttest.StartNATS(t).URL(), "SHOP_GRPC_ADDR": "127.0.0.1:0"})
	h.Next(t)

	other, err := identity.OpenCA(t.TempDir(), hosttest.Stack) // the same names, another CA
	if err != nil {
		t.Fatal(err)
	}
	otherDir, err := other.Ensure("gateway")
	if err != nil {
		t.Fatal(err)
	}
	otherSec, err := host.Secure(otherDir)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(creds credentials.TransportCredentials) *grpc.ClientConn {
		conn, err := grpc.NewClient(h.GRPCAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	noCert := dial(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})) //nolint:gosec // the attacker's client
	foreign := dial(otherSec.ClientCredentials(""))
	conns := map[string]*grpc.ClientConn{}
	as := func(service string) *grpc.ClientConn {
		if conns[service] == nil {
			conns[service] = dial(hosttest.Security(t, service).ClientCredentials(""))
		}
		return conns[service]
	}
	call := func(conn *grpc.ClientConn, method string) codes.Code {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return status.Code(conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{}))
	}

	access := bounded.Access()
	callers := []string{"gateway", "orders", "cart", "payments", "shipping", "notify", "catalog-inventory", identity.Tooling}
	for _, d := range descs {
		c := contextOf(t, d.ServiceName)
		for _, m := range d.Methods {
			method := "/" + d.ServiceName + "/" + m.MethodName
			if got := call(noCert, method); got != codes.Unavailable {
				t.Errorf("%s without a certificate: %s, want Unavailable", method, got)
			}
			if got := call(foreign, method); got != codes.Unavailable {
				t.Errorf("%s with another CA's certificate: %s, want Unavailable", method, got)
			}
			for _, caller := range callers {
				g, err := bounded.ParseName(caller)
				allowed := false
				if err == nil {
					for _, name := range append(g.Contexts, map[bool]string{true: bounded.EdgeName}[g.Edge]) {
						for _, allowedMethod := range access[[2]string{name, c}] {
							allowed = allowed || allowedMethod == m.MethodName
						}
					}
				}
				got := call(as(caller), method)
				switch {
				case !allowed && got != codes.PermissionDenied:
					t.Errorf("%s as %s: %s, want PermissionDenied", method, caller, got)
				case allowed && (got == codes.PermissionDenied || got == codes.Unavailable || got == codes.Unauthenticated):
					t.Errorf("%s as %s, which the table allows: %s", method, caller, got)
				}
			}
		}
	}
	// The examples of the issue, by name.
	for _, c := range []struct {
		caller, method string
	}{
		{"cart", "/mitosis.payments.v1.PaymentsService/Charge"},
		{"orders", "/mitosis.catalog.v1.CatalogService/Upsert"},
		{"catalog-inventory", "/mitosis.orders.v1.OrdersService/MarkShipped"},
		{"gateway", "/mitosis.payments.v1.PaymentsService/Refund"},
	} {
		if got := call(as(c.caller), c.method); got != codes.PermissionDenied {
			t.Errorf("%s as %s: %s, want PermissionDenied", c.method, c.caller, got)
		}
	}
	// Health answers any identity of the stack, tools included, and nobody else.
	check := func(conn *grpc.ClientConn) codes.Code {
		_, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
		return status.Code(err)
	}
	if got := check(as(identity.Tooling)); got != codes.OK {
		t.Errorf("health as tooling: %s", got)
	}
	if got := check(noCert); got != codes.Unavailable {
		t.Errorf("health without a certificate: %s", got)
	}
}

func contextOf(t *testing.T, service string) string {
	t.Helper()
	for _, c := range bounded.Table() {
		if c.Service == service {
			return c.Name
		}
	}
	t.Fatalf("no context serves %s", service)
	return ""
}

// A refused call is logged with the caller's identity and the method, every time.
func TestRefusalIsLoggedWithTheCaller(t *testing.T) {
	var logs logtest.Buffer
	impl, addr := serveCatalog(t, slog.New(slog.NewJSONHandler(&logs, nil)), "catalog")
	conn, err := host.Dial(addr, catalogrpc.ServiceConfig, 5*time.Second, hosttest.Security(t, "orders").ClientCredentials("catalog"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := catalogrpc.NewClient(conn)
	p := catalog.Seed()[0]
	p.Price = money.Cents(1)
	// Twice on one connection: the second answers come from the connection's memo.
	for i := range 2 {
		if _, err := client.Get(t.Context(), catalog.Seed()[0].ID); err != nil {
			t.Fatalf("orders reads the catalog (call %d): %v", i+1, err)
		}
		if _, err := client.Upsert(t.Context(), p); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("orders sets a price (call %d): %v, want PermissionDenied", i+1, err)
		}
	}
	out := logs.String()
	if strings.Count(out, `"caller":"spiffe://mitosis/hosttest/orders"`) != 2 || strings.Count(out, "CatalogService/Upsert") != 2 {
		t.Errorf("the refusals' log, want both: %s", out)
	}
	if got, _ := impl.Get(t.Context(), p.ID); got.Price == p.Price {
		t.Error("the refused call changed the price")
	}
}

// A client refuses a server whose identity does not run the context it dials: a process of
// the stack cannot pose as payments to orders.
func TestClientRefusesAServerOfAnotherContext(t *testing.T) {
	_, addr := serveCatalog(t, slog.New(slog.DiscardHandler), "cart") // cart's identity serving a catalog
	conn, err := host.Dial(addr, catalogrpc.ServiceConfig, 5*time.Second, hosttest.Security(t, "orders").ClientCredentials("catalog"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := catalogrpc.NewClient(conn).Get(t.Context(), "sku-0001"); err == nil || !strings.Contains(err.Error(), "does not run catalog") {
		t.Errorf("a call to cart posing as the catalog: %v", err)
	}
}

// A Security nobody configured is closed, not open: its server completes no handshake, and
// its client none either.
func TestZeroSecurityIsClosed(t *testing.T) {
	srv := host.NewServer(slog.New(slog.DiscardHandler), host.Security{})
	healthpb.RegisterHealthServer(srv, deadlineProbe{deadlines: make(chan time.Duration, 1)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	check := func(creds credentials.TransportCredentials, addr string) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check(hosttest.Security(t, identity.Tooling).ClientCredentials(""), ln.Addr().String()); status.Code(err) != codes.Unavailable {
		t.Errorf("a server without identity answered: %v", err)
	}
	h := hosttest.Start(t, "catalog", map[string]string{"SHOP_NATS_URL": hosttest.StartNATS(t).URL()})
	if err := check(host.Security{}.ClientCredentials("catalog"), h.GRPCAddr); status.Code(err) != codes.Unavailable {
		t.Errorf("a client without identity was answered: %v", err)
	}
	if err := check(hosttest.Security(t, identity.Tooling).ClientCredentials("catalog"), h.GRPCAddr); err != nil {
		t.Errorf("the tooling identity: %v", err)
	}
}

// serveCatalog serves a catalog over gRPC on a port of 127.0.0.1, logging to log, with the
// certificate of the identity named as, until the test ends; it returns the catalog and the
// address.
func serveCatalog(t *testing.T, log *slog.Logger, as string) (catalog.Service, string) {
	t.Helper()
	impl, err := catalog.New(t.Context(), kv.NewMemory(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := host.NewServer(log, hosttest.Security(t, as))
	catalogrpc.Register(srv, impl)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return impl, ln.Addr().String()
}
