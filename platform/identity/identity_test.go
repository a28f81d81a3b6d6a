package identity_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/identity"
)

func TestParse(t *testing.T) {
	id, err := identity.Parse("spiffe://mitosis/ht-a/catalog-inventory")
	if err != nil || id != (identity.ID{Stack: "ht-a", Service: "catalog-inventory"}) {
		t.Fatalf("Parse = %v, %v", id, err)
	}
	if got := id.String(); got != "spiffe://mitosis/ht-a/catalog-inventory" {
		t.Errorf("String = %s", got)
	}
	for _, bad := range []string{"https://mitosis/a/b", "spiffe://other/a/b", "spiffe://mitosis/a", "spiffe://mitosis/a/b/c",
		"spiffe://mitosis/A/b", "spiffe://mitosis/a/b?x=1", "spiffe://u@mitosis/a/b", "spiffe://mitosis//b"} {
		if _, err := identity.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// pki makes a stack's CA in a temporary folder and the folders of services.
func pki(t *testing.T, stack string, services ...string) (*identity.CA, map[string]string) {
	t.Helper()
	ca, err := identity.OpenCA(t.TempDir(), stack)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for _, s := range services {
		if dirs[s], err = ca.Ensure(s); err != nil {
			t.Fatal(err)
		}
	}
	return ca, dirs
}

func load(t *testing.T, dir string) *identity.Source {
	t.Helper()
	s, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve accepts TLS connections on a loopback port with cfg, answering each with the
// client's identity, and returns the address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	return listenTLS(t, cfg, func(tc *tls.Conn) {
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if tc.Handshake() != nil {
			return
		}
		id, _ := identity.FromCert(tc.ConnectionState().PeerCertificates[0])
		_, _ = io.WriteString(tc, id.String())
	})
}

// listenTLS serves TLS with cfg on a loopback port until the test ends, each connection by
// handle (which closes it on return), and returns the address.
func listenTLS(t *testing.T, cfg *tls.Config, handle func(*tls.Conn)) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c.(*tls.Conn))
			}()
		}
	}()
	return ln.Addr().String()
}

// call dials addr with cfg and returns what the server said: the client's identity as it saw it.
func call(addr string, cfg *tls.Config) (string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", errors.New("the server closed the connection")
	}
	return string(b), nil
}

func TestMutualTLS(t *testing.T) {
	_, dirs := pki(t, "ht-a", "catalog", "orders", identity.Tooling)
	_, other := pki(t, "ht-b", "orders")
	_, sameName := pki(t, "ht-a", "orders") // the same names under another CA
	server := load(t, dirs["catalog"])
	addr := serve(t, server.ServerConfig(nil))

	got, err := call(addr, load(t, dirs["orders"]).ClientConfig(nil))
	if err != nil || got != "spiffe://mitosis/ht-a/orders" {
		t.Fatalf("orders of the stack: %q, %v", got, err)
	}
	if _, err := call(addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err == nil { //nolint:gosec // a client without a certificate
		t.Error("a client without a certificate was served")
	}
	// A tool that checks the server by name, as grpcurl -cacert ca.pem -cert ... -servername
	// catalog does, with the tooling certificate.
	tool := toolConfig(t, dirs, "catalog")
	if got, err := call(addr, tool); err != nil || got != "spiffe://mitosis/ht-a/tooling" {
		t.Errorf("a tool with the stack's tooling certificate: %q, %v", got, err)
	}
	if _, err := call(addr, toolConfig(t, dirs, "payments")); err == nil {
		t.Error("a tool expecting payments trusted catalog's certificate")
	}
	if _, err := call(addr, load(t, other["orders"]).ClientConfig(nil)); err == nil {
		t.Error("a client of another stack's CA was served")
	}
	if _, err := call(addr, load(t, sameName["orders"]).ClientConfig(nil)); err == nil {
		t.Error("a client of another CA with the same identity was served")
	}
	// The client refuses a server of another CA, and one its check rejects.
	rogue := serve(t, load(t, sameName["orders"]).ServerConfig(nil))
	if _, err := call(rogue, load(t, dirs["orders"]).ClientConfig(nil)); err == nil {
		t.Error("a server of another CA was trusted")
	}
	picky := load(t, dirs["orders"]).ClientConfig(func(p identity.ID) error {
		if p.Service != "payments" {
			return errors.New("not payments")
		}
		return nil
	})
	if _, err := call(addr, picky); err == nil || !strings.Contains(err.Error(), "not payments") {
		t.Errorf("a server the check rejects: %v", err)
	}
}

func TestEnsureReusesAndRenews(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.OpenCA(dir, "ht-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{identity.CAFile, identity.CAKeyFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", f, st.Mode(), err)
		}
	}
	svc, err := ca.Ensure("cart")
	if err != nil {
		t.Fatal(err)
	}
	first := read(t, filepath.Join(svc, identity.CertFile))
	// Another up: the same CA and the same certificate.
	again, err := identity.OpenCA(dir, "ht-a")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate().Equal(ca.Certificate()) {
		t.Fatal("the CA was not reused")
	}
	if _, err := again.Ensure("cart"); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(svc, identity.CertFile)) != first {
		t.Fatal("a certificate with most of its life left was replaced")
	}
	for _, f := range []string{identity.CertFile, identity.KeyFile, identity.CAFile} {
		if st, _ := os.Stat(filepath.Join(svc, f)); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", f, st.Mode().Perm())
		}
	}
	// A certificate past half its life is renewed.
	certPEM, keyPEM, err := ca.Issue("cart", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(svc, identity.CertFile), certPEM)
	write(t, filepath.Join(svc, identity.KeyFile), keyPEM)
	if _, err := again.Ensure("cart"); err != nil {
		t.Fatal(err)
	}
	renewed := load(t, svc)
	leaf := leafOf(t, svc)
	if time.Until(leaf.NotAfter) < identity.LeafLifetime-time.Hour {
		t.Errorf("renewed certificate expires at %v", leaf.NotAfter)
	}
	if renewed.ID() != (identity.ID{Stack: "ht-a", Service: "cart"}) {
		t.Errorf("identity %v", renewed.ID())
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.OpenCA(dir, "ht-a")
	if err != nil {
		t.Fatal(err)
	}
	catalogDir, _ := ca.Ensure("catalog")
	ordersDir, _ := ca.Ensure("orders")
	server := load(t, catalogDir)
	addr := serve(t, server.ServerConfig(nil))
	oldOrders := load(t, ordersDir)
	if _, err := call(addr, oldOrders.ClientConfig(nil)); err != nil {
		t.Fatal(err)
	}
	before := leafOf(t, ordersDir)

	rotated, err := identity.RotateCA(dir, "ht-a")
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Certificate().Equal(ca.Certificate()) {
		t.Fatal("rotate kept the CA")
	}
	// Both are renewed while they run: each reads its new files at its next handshake.
	if _, err := rotated.EnsureAll([]string{"orders", "catalog"}); err != nil {
		t.Fatal(err)
	}
	if leafOf(t, ordersDir).Equal(before) {
		t.Fatal("a certificate of the old CA was kept after rotation")
	}
	if err := leafOf(t, ordersDir).CheckSignatureFrom(rotated.Certificate()); err != nil {
		t.Fatalf("renewed by the new CA: %v", err)
	}
	got, err := call(addr, oldOrders.ClientConfig(nil)) // the same Source, reading the new files
	if err != nil || got != "spiffe://mitosis/ht-a/orders" {
		t.Fatalf("a renewed client against a renewed server that has not restarted: %q, %v", got, err)
	}
	// A second rotation drops the first CA from the bundle: a certificate it issued is refused.
	stale := t.TempDir()
	certPEM, keyPEM, _ := ca.Issue("orders", time.Hour)
	write(t, filepath.Join(stale, identity.CertFile), certPEM)
	write(t, filepath.Join(stale, identity.KeyFile), keyPEM)
	write(t, filepath.Join(stale, identity.CAFile), rotated.Bundle())
	if _, err := call(addr, load(t, stale).ClientConfig(nil)); err != nil {
		t.Fatalf("a certificate of the previous CA, before the next rotation: %v", err)
	}
	again, err := identity.RotateCA(dir, "ht-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Ensure("catalog"); err != nil {
		t.Fatal(err)
	}
	if _, err := call(addr, load(t, stale).ClientConfig(nil)); err == nil {
		t.Error("a certificate of a CA rotated twice was still trusted")
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := identity.Load(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of an empty folder: %v", err)
	}
}

// A process started while a renewal is between its two writes (the new key beside the old
// certificate) waits for the second rather than failing; the same files left so, no
// longer young, fail at once.
func TestLoadWaitsForARenewalInProgress(t *testing.T) {
	ca, dirs := pki(t, "ht-a", "catalog")
	dir := dirs["catalog"]
	certPEM, keyPEM, err := ca.Issue("catalog", identity.LeafLifetime)
	if err != nil {
		t.Fatal(err)
	}
	replace(t, filepath.Join(dir, identity.KeyFile), keyPEM)
	written := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		written <- os.WriteFile(filepath.Join(dir, identity.CertFile), certPEM, 0o600)
	}()
	s, err := identity.Load(dir)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Load during a renewal: %v", err)
	}
	if got, want := leafOf(t, dir).SerialNumber, mustLeaf(t, s).SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("Load took serial %x, the renewed files hold %x", want, got)
	}

	// A key that matches no certificate, written an hour ago: nothing is in progress.
	_, otherKey, err := ca.Issue("catalog", identity.LeafLifetime)
	if err != nil {
		t.Fatal(err)
	}
	replace(t, filepath.Join(dir, identity.KeyFile), otherKey)
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{identity.CertFile, identity.KeyFile, identity.CAFile} {
		if err := os.Chtimes(filepath.Join(dir, f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := identity.Load(dir); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("Load of a mismatched key and certificate: %v, want the mismatch", err)
	}
}

func mustLeaf(t *testing.T, s *identity.Source) *x509.Certificate {
	t.Helper()
	c, err := s.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
