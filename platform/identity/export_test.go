package identity_test

import (
	"crypto/tls"
	"crypto/x509"
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
