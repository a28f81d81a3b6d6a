// Package identitytest holds what tests share about identities (package identity): the PEM
// variables that carry an identity folder, as an ECS task's secrets fill them, the
// certificate a folder holds, and an aged one put in its place. For tests only.
package identitytest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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

// Age gives service a certificate of ca past half its life, as a week-old stack's would be,
// in place of its own: the key then the certificate renamed into its folder, each keeping
// the owner of the file it replaces (a container's user). It returns the aged certificate's
// serial, in hex.
func Age(t *testing.T, ca *identity.CA, service string) string {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(service, time.Minute) // backdated: half its life is gone
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		pem  []byte
	}{{identity.KeyFile, keyPEM}, {identity.CertFile, certPEM}} {
		path := filepath.Join(ca.Dir(service), f.name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if err := os.WriteFile(path+".new", f.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(os.Chown(path+".new", int(sys.Uid), int(sys.Gid)), os.Rename(path+".new", path)); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("%x", Leaf(t, ca.Dir(service)).SerialNumber)
}
