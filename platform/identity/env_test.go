package identity_test

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
)

func open(t *testing.T, env identity.Env, vars map[string]string) *identity.Source {
	t.Helper()
	src, err := env.Open(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestEnvFor(t *testing.T) {
	got := identity.EnvFor("SHOP_TLS_DIR")
	want := identity.Env{Dir: "SHOP_TLS_DIR", Cert: "SHOP_TLS_CERT_PEM", Key: "SHOP_TLS_KEY_PEM", CA: "SHOP_TLS_CA_PEM"}
	if got != want {
		t.Errorf("EnvFor = %+v, want %+v", got, want)
	}
}

// An identity given as PEM in the environment is the same identity as its folder's: a
// server and a client loaded from the environment talk mutual TLS, and each refuses a peer
// of another CA, even one with the same name, and a client without a certificate.
func TestIdentityFromEnvPEM(t *testing.T) {
	env := identity.EnvFor("SHOP_TLS_DIR")
	_, dirs := pki(t, "ht-a", "catalog", "orders")
	_, sameName := pki(t, "ht-a", "orders", "catalog")
	server := open(t, env, identitytest.PEMVars(t, env, dirs["catalog"]))
	if got := server.ID(); got != (identity.ID{Stack: "ht-a", Service: "catalog"}) {
		t.Fatalf("ID = %v", got)
	}
	leaf, err := server.Leaf()
	if err != nil || !leaf.Equal(leafOf(t, dirs["catalog"])) {
		t.Fatalf("Leaf = %v, %v: not the folder's certificate", leaf, err)
	}
	addr := serve(t, server.ServerConfig(nil))

	client := open(t, env, identitytest.PEMVars(t, env, dirs["orders"]))
	if got, err := call(addr, client.ClientConfig(identity.Is("catalog"))); err != nil || got != "spiffe://mitosis/ht-a/orders" {
		t.Fatalf("orders from its environment: %q, %v", got, err)
	}
	foreign := open(t, env, identitytest.PEMVars(t, env, sameName["orders"]))
	if _, err := call(addr, foreign.ClientConfig(nil)); err == nil {
		t.Error("a client of another CA, from its environment, was served")
	}
	if _, err := call(addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err == nil { //nolint:gosec // a client without a certificate
		t.Error("a client without a certificate was served")
	}
	rogue := serve(t, open(t, env, identitytest.PEMVars(t, env, sameName["catalog"])).ServerConfig(nil))
	if _, err := call(rogue, client.ClientConfig(nil)); err == nil {
		t.Error("a server of another CA was trusted")
	}
}

// The environment names one identity, whole, or none: a folder and PEM together, some PEM
// variables without the others, or PEM that is not a certificate and its key are refused
// with the variables named.
func TestEnvOpenRefuses(t *testing.T) {
	env := identity.EnvFor("NATS_TLS_DIR")
	_, dirs := pki(t, "ht-a", "catalog", "orders")
	whole := identitytest.PEMVars(t, env, dirs["catalog"])
	with := func(changes map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range whole {
			out[k] = v
		}
		for k, v := range changes {
			out[k] = v
		}
		return out
	}
	other := identitytest.PEMVars(t, env, dirs["orders"])
	for _, c := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"folder and PEM", with(map[string]string{env.Dir: dirs["catalog"]}), "both set"},
		{"no key", with(map[string]string{env.Key: ""}), "NATS_TLS_KEY_PEM"},
		{"no bundle", with(map[string]string{env.CA: ""}), "NATS_TLS_CA_PEM"},
		{"another's key", with(map[string]string{env.Key: other[env.Key]}), "NATS_TLS_CERT_PEM"},
		{"a bundle without a certificate", with(map[string]string{env.CA: whole[env.Key]}), "trust bundle"},
		{"not PEM", with(map[string]string{env.Cert: "cert"}), "NATS_TLS_CERT_PEM"},
		{"a missing folder", map[string]string{env.Dir: filepath.Join(t.TempDir(), "none")}, "NATS_TLS_DIR"},
	} {
		_, err := env.Open(func(k string) string { return c.vars[k] })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
	if _, err := env.Open(func(string) string { return "" }); !errors.Is(err, identity.ErrNoEnv) {
		t.Errorf("nothing set: %v, want ErrNoEnv", err)
	}
	// The folder alone is the folder's identity.
	if got := open(t, env, map[string]string{env.Dir: dirs["orders"]}).ID().Service; got != "orders" {
		t.Errorf("from the folder: %s", got)
	}
}
