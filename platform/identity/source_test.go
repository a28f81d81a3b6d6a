package identity_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/shop/logtest"
)

// echo serves TLS with cfg on a loopback port: each connection, once its handshake is done,
// answers every line it reads with the serial of the client's certificate, until it is
// closed. It returns the address.
func echo(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	return listenTLS(t, cfg, func(tc *tls.Conn) {
		if tc.Handshake() != nil {
			return
		}
		serial := tc.ConnectionState().PeerCertificates[0].SerialNumber
		r := bufio.NewReader(tc)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := fmt.Fprintf(tc, "%x\n", serial); err != nil {
				return
			}
		}
	})
}

// conn is a client's connection to an echo server.
type conn struct {
	*tls.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string, cfg *tls.Config) *conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &conn{Conn: c, r: bufio.NewReader(c)}
}

// server is the serial of the certificate the server presented on c.
func (c *conn) server() *big.Int { return c.ConnectionState().PeerCertificates[0].SerialNumber }

// client asks the server which certificate c presented, and returns its serial.
func (c *conn) client(t *testing.T) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("?\n")); err != nil {
		t.Fatalf("a call on a connection made before: %v", err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("a call on a connection made before: %v", err)
	}
	return strings.TrimSpace(line)
}

// renew gives service a new certificate of ca in dir as `mitosis up` does (CA.Renew) and
// returns its serial.
func renew(t *testing.T, ca *identity.CA, service, dir string) *big.Int {
	t.Helper()
	got, err := ca.Renew(service)
	if err != nil {
		t.Fatal(err)
	}
	if got != dir {
		t.Fatalf("%s renewed in %s, want %s", service, got, dir)
	}
	return leafOf(t, dir).SerialNumber
}

// replace writes b to path by renaming a new file over it.
func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	write(t, tmp, b)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A server and a client that read their identity once keep serving, and calling, while
// their files are rewritten under them: each new handshake presents the certificate the
// files hold now (read by its serial on the other end), a connection made before keeps
// working, a CA rotation with both CAs in the bundle lets an old certificate and a new one
// talk, and a file caught half written leaves the last good certificate in use, logged once.
func TestSourceFollowsItsFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.OpenCA(dir, "ht-a")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := ca.EnsureAll([]string{"catalog", "orders"})
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	server := load(t, dirs["catalog"])
	server.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	client := load(t, dirs["orders"])
	addr := echo(t, server.ServerConfig(nil))
	hex := func(n *big.Int) string { return fmt.Sprintf("%x", n) }

	a := leafOf(t, dirs["catalog"]).SerialNumber
	first := dial(t, addr, client.ClientConfig(nil))
	if first.server().Cmp(a) != 0 {
		t.Fatalf("the server presented %x, its files hold %x", first.server(), a)
	}
	clientA := first.client(t)

	// Renewed by the same CA: the next handshakes present the new certificates.
	b := renew(t, ca, "catalog", dirs["catalog"])
	clientB := hex(renew(t, ca, "orders", dirs["orders"]))
	if c := dial(t, addr, client.ClientConfig(nil)); c.server().Cmp(b) != 0 || c.client(t) != clientB {
		t.Errorf("after renewal: the server presented %x (want %x), the client %s (want %s)", c.server(), b, c.client(t), clientB)
	}
	if got := first.client(t); got != clientA || first.server().Cmp(a) != 0 {
		t.Errorf("the connection made before renewal: client %s, server %x", got, first.server())
	}
	if !strings.Contains(logs.String(), "identity renewed") || !strings.Contains(logs.String(), hex(b)) {
		t.Errorf("the renewal was not logged with its serial:\n%s", logs.String())
	}

	// Rewritten in place, same size, as fast as it goes: the stamp of a file written twice in
	// one clock tick may not change, its contents do.
	for range 3 {
		certPEM, keyPEM, err := ca.Issue("catalog", identity.LeafLifetime)
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dirs["catalog"], identity.KeyFile), keyPEM)
		write(t, filepath.Join(dirs["catalog"], identity.CertFile), certPEM)
		want := leafOf(t, dirs["catalog"]).SerialNumber
		conn := dial(t, addr, client.ClientConfig(nil))
		if got := conn.server(); got.Cmp(want) != 0 {
			t.Errorf("after a rewrite in place: the server presented %x, want %x", got, want)
		}
		// A TLS 1.3 client is done before its server: a round trip waits for the server's
		// end of the handshake, whose reading of the files must not meet the next write.
		conn.client(t)
	}

	// A CA rotation: the bundles first (both CAs), then the server's certificate of the new
	// CA while the client still holds one of the old, then the client's.
	rotated, err := identity.RotateCA(dir, "ht-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		replace(t, filepath.Join(d, identity.CAFile), rotated.Bundle())
	}
	old := hex(leafOf(t, dirs["orders"]).SerialNumber)
	c := renew(t, rotated, "catalog", dirs["catalog"])
	if conn := dial(t, addr, client.ClientConfig(nil)); conn.server().Cmp(c) != 0 || conn.client(t) != old {
		t.Errorf("a server of the new CA and a client of the old: server %x (want %x), client %s (want %s)", conn.server(), c, conn.client(t), old)
	}
	clientC := hex(renew(t, rotated, "orders", dirs["orders"]))
	if conn := dial(t, addr, client.ClientConfig(nil)); conn.client(t) != clientC {
		t.Errorf("the client's certificate of the new CA: %s, want %s", conn.client(t), clientC)
	}
	if err := leafOf(t, dirs["orders"]).CheckSignatureFrom(rotated.Certificate()); err != nil {
		t.Fatal(err)
	}

	// Half written: the certificate cut short in place. The server goes on presenting the
	// last good one, and says so once, however many handshakes find it so.
	certPath := filepath.Join(dirs["catalog"], identity.CertFile)
	whole := read(t, certPath)
	before := len(logs.String())
	write(t, certPath, []byte(whole[:len(whole)/2]))
	for range 3 {
		conn := dial(t, addr, client.ClientConfig(nil))
		if got := conn.server(); got.Cmp(c) != 0 {
			t.Errorf("with a half-written certificate the server presented %x, want the last good %x", got, c)
		}
		conn.client(t)
	}
	if n := strings.Count(logs.String()[before:], "identity files unreadable"); n != 1 {
		t.Errorf("the half-written file was logged %d times, want once:\n%s", n, logs.String()[before:])
	}
	// Then whole again: a renewal that completes is taken.
	d := renew(t, rotated, "catalog", dirs["catalog"])
	if got := dial(t, addr, client.ClientConfig(nil)).server(); got.Cmp(d) != 0 {
		t.Errorf("after the files were whole again: %x, want %x", got, d)
	}
}

// A folder that names another identity after a rewrite (another service's Secret mounted by
// mistake) is refused: the process stays who it started as.
func TestSourceKeepsItsIdentity(t *testing.T) {
	_, dirs := pki(t, "ht-a", "catalog", "orders")
	var logs logtest.Buffer
	s := load(t, dirs["catalog"])
	s.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	for _, f := range []string{identity.CertFile, identity.KeyFile} {
		replace(t, filepath.Join(dirs["catalog"], f), []byte(read(t, filepath.Join(dirs["orders"], f))))
	}
	if got := s.ID(); got.Service != "catalog" {
		t.Errorf("the source became %v", got)
	}
	if !strings.Contains(logs.String(), "now names spiffe://mitosis/ht-a/orders") {
		t.Errorf("not logged:\n%s", logs.String())
	}
}

// Files rewritten in place to the same size within one tick of the clock keep their stamp
// (inode, size, modification time): while they are that young, their contents are compared
// too, so the rewrite is still seen.
func TestSourceSeesARewriteThatKeepsTheStamp(t *testing.T) {
	ca, dirs := pki(t, "ht-a", "catalog")
	dir := dirs["catalog"]
	certPath, keyPath := filepath.Join(dir, identity.CertFile), filepath.Join(dir, identity.KeyFile)
	// Written just now, as seen by the source: it remembers them as young until it looks again.
	mod := time.Now()
	for _, p := range []string{certPath, keyPath} {
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	s := load(t, dir)
	oldCert, oldKey := read(t, certPath), read(t, keyPath)
	var certPEM, keyPEM []byte
	for range 100 { // a certificate of the same length: its signature's varies by a byte or two
		c, k, err := ca.Issue("catalog", identity.LeafLifetime)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) == len(oldCert) && len(k) == len(oldKey) {
			certPEM, keyPEM = c, k
			break
		}
	}
	if certPEM == nil {
		t.Fatal("no certificate of the same length in 100")
	}
	for p, b := range map[string][]byte{certPath: certPEM, keyPath: keyPEM} {
		f, err := os.OpenFile(p, os.O_WRONLY, 0) // in place: the same inode
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// As if both writes fell in the tick of the first.
	for _, p := range []string{certPath, keyPath} {
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	leaf, err := s.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	if want := leafOf(t, dir).SerialNumber; leaf.SerialNumber.Cmp(want) != 0 {
		t.Errorf("the source still holds %x, the files %x", leaf.SerialNumber, want)
	}
}
