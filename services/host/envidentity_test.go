package host_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/money"
)

// pemVars are the variables an ECS task's secrets fill: the identity folder dir's files as
// SHOP_TLS_CERT_PEM, SHOP_TLS_KEY_PEM and SHOP_TLS_CA_PEM.
func pemVars(t *testing.T, dir string) map[string]string {
	t.Helper()
	return identitytest.PEMVars(t, host.TLSEnv, dir)
}

// envSecurity is the Security a process whose environment is vars runs with.
func envSecurity(t *testing.T, vars map[string]string) host.Security {
	t.Helper()
	src, err := host.TLSEnv.Open(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return host.Security{Identity: src}
}

// A host whose identity comes as PEM in its environment (as on ECS, from Secrets Manager)
// serves mutual TLS over a real socket: a caller of the stack whose identity also comes from
// its environment is served what the access table allows and refused the rest; a caller of
// another CA, even under the same name, is refused at the handshake.
func TestIdentityFromEnvironmentOverGRPC(t *testing.T) {
	vars := pemVars(t, hosttest.IdentityDir(t, "catalog"))
	vars["SHOP_NATS_URL"] = hosttest.StartNATS(t).URL()
	h := hosttest.Start(t, "catalog", vars)
	h.Next(t)

	dial := func(sec host.Security) *catalogrpc.Client {
		conn, err := host.Dial(h.GRPCAddr, catalogrpc.ServiceConfig, 5*time.Second, sec.ClientCredentials("catalog"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return catalogrpc.NewClient(conn)
	}
	orders := dial(envSecurity(t, pemVars(t, hosttest.IdentityDir(t, "orders"))))
	p := catalog.Seed()[0]
	if _, err := orders.Get(t.Context(), p.ID); err != nil {
		t.Fatalf("orders reads the catalog: %v", err)
	}
	p.Price = money.Cents(1)
	if _, err := orders.Upsert(t.Context(), p); status.Code(err) != codes.PermissionDenied {
		t.Errorf("orders sets a price: %v, want PermissionDenied", err)
	}

	other, err := identity.OpenCA(t.TempDir(), hosttest.Stack) // the same names, another CA
	if err != nil {
		t.Fatal(err)
	}
	otherDir, err := other.Ensure("orders")
	if err != nil {
		t.Fatal(err)
	}
	foreign := dial(envSecurity(t, pemVars(t, otherDir)))
	if _, err := foreign.Get(t.Context(), p.ID); status.Code(err) != codes.Unavailable {
		t.Errorf("orders of another CA reads the catalog: %v, want Unavailable", err)
	}
}

// A process given its identity both ways, or half of it, does not start.
func TestConfigRefusesTwoIdentities(t *testing.T) {
	dir := hosttest.IdentityDir(t, "catalog")
	for name, vars := range map[string]map[string]string{
		"folder and PEM": func() map[string]string {
			v := pemVars(t, dir)
			v[host.TLSDirEnv] = dir
			return v
		}(),
		"no key": func() map[string]string {
			v := pemVars(t, dir)
			delete(v, host.TLSEnv.Key)
			return v
		}(),
	} {
		vars["SHOP_GROUP"], vars["SHOP_NATS_URL"] = "catalog", "nats://127.0.0.1:4222" // never dialed
		_, err := host.ConfigFrom(func(k string) string { return vars[k] }, bounded.Group{})
		if err == nil || !strings.Contains(err.Error(), host.TLSEnv.Cert) {
			t.Errorf("%s: %v, want an error naming %s", name, err, host.TLSEnv.Cert)
		}
	}
}
