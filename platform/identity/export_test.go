package identity_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/identity"
)

// leafOf reads the certificate in a service's folder.
func leafOf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, identity.CertFile), filepath.Join(dir, identity.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// toolConfig is what a generic TLS tool does with the tooling folder: the bundle as roots,
// the server checked by the name serverName.
func toolConfig(t *testing.T, dirs map[string]string, serverName string) *tls.Config {
	t.Helper()
	dir := dirs[identity.Tooling]
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, identity.CertFile), filepath.Join(dir, identity.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, identity.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS13}
}
