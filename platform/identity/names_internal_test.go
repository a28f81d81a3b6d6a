package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"testing"
)

// The NATS identity is good for the names its cluster's routes dial (nats-<i>.nats) and its
// own; a NATS certificate issued before it named them is not current, so Ensure renews it.
func TestNATSCertificateNamesItsRoutes(t *testing.T) {
	ca, err := OpenCA(t.TempDir(), "ht-n")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := ca.Ensure(NATS)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := readCerts(filepath.Join(dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, name := range []string{"nats-0.nats", "nats-2.nats", NATS} {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := certs[0].VerifyHostname("nats.other"); err == nil {
		t.Error("the NATS identity names any host")
	}
	if cartDir, err := ca.Ensure("cart"); err != nil {
		t.Fatal(err)
	} else if c, _ := readCerts(filepath.Join(cartDir, CertFile)); c[0].VerifyHostname("nats-0.nats") == nil {
		t.Error("the cart's identity names the NATS routes")
	}

	// An older one: the same identity, its name only.
	old := *certs[0]
	old.DNSNames = []string{NATS}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	old.SerialNumber = serial()
	der, err := x509.CreateCertificate(rand.Reader, &old, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, KeyFile), pemBlock("PRIVATE KEY", keyDER)); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, CertFile), pemBlock("CERTIFICATE", der)); err != nil {
		t.Fatal(err)
	}
	if ca.current(dir, NATS) {
		t.Fatal("a NATS certificate without the routes' names is current")
	}
	if _, err := ca.Ensure(NATS); err != nil {
		t.Fatal(err)
	}
	renewed, err := readCerts(filepath.Join(dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	if renewed[0].VerifyHostname("nats-1.nats") != nil {
		t.Errorf("not renewed: %v", renewed[0].DNSNames)
	}
}
