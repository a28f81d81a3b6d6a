// Package identitytest holds what tests share about identities (package identity): the PEM
// variables that carry an identity folder, as an ECS task's secrets fill them, and the
// certificate a folder holds. For tests only.
package identitytest

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/identity"
)

// PEMVars returns the variables of env that carry the identity folder dir (its certificate,
// key and bundle, identity.Env.PEMVars), each holding its file's PEM text.
func PEMVars(t *testing.T, env identity.Env, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i, f := range []string{identity.CertFile, identity.KeyFile, identity.CAFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[env.PEMVars()[i]] = string(b)
	}
	return out
}

// Leaf is the certificate in the identity folder dir.
func Leaf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	src, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := src.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
