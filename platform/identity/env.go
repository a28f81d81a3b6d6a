package identity

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// FromPEM returns the identity held in PEM text: the process's certificate, its key, and the
// trust bundle (the stack's CA, and the previous one after a rotation). It is what a process
// has where no file can be mounted (ECS on Fargate, whose task definitions fill variables
// from Secrets Manager, not files): it stays as it was made, so a renewed certificate takes
// effect in a new process (on ECS, a new task: a deployment), not in a running one.
func FromPEM(certPEM, keyPEM, caPEM []byte) (*Source, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id, err := FromCert(cert.Leaf)
	if err != nil {
		return nil, err
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: trust bundle: %w", err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	return &Source{cert: &cert, roots: roots, id: id}, nil
}

// Env names the variables a process takes its identity from: Dir, a folder (Load), or the
// three PEM texts (FromPEM), never both.
type Env struct {
	Dir, Cert, Key, CA string
}

// EnvFor are the variables of the identity whose folder variable is dir, which ends in _DIR:
// SHOP_TLS_DIR gives SHOP_TLS_CERT_PEM, SHOP_TLS_KEY_PEM and SHOP_TLS_CA_PEM.
func EnvFor(dir string) Env {
	base := strings.TrimSuffix(dir, "_DIR")
	return Env{Dir: dir, Cert: base + "_CERT_PEM", Key: base + "_KEY_PEM", CA: base + "_CA_PEM"}
}

// PEMVars are the PEM variables, in the order certificate, key, bundle.
func (e Env) PEMVars() [3]string { return [3]string{e.Cert, e.Key, e.CA} }

// ErrNoEnv is Open's answer for an environment that names no identity.
var ErrNoEnv = errors.New("identity: none given")

// Open reads the identity the environment names: the folder in e.Dir, or the PEM texts in
// the other three variables. A folder and PEM both set is refused rather than one chosen, so
// that nobody believes a process runs as an identity it does not; so are some of the PEM
// variables without the others. With none set, it returns ErrNoEnv.
func (e Env) Open(getenv func(string) string) (*Source, error) {
	dir := getenv(e.Dir)
	var set, unset []string
	for _, k := range e.PEMVars() {
		if getenv(k) != "" {
			set = append(set, k)
		} else {
			unset = append(unset, k)
		}
	}
	switch {
	case dir != "" && len(set) > 0:
		return nil, fmt.Errorf("identity: %s and %s are both set: give the folder or the PEM, not both", e.Dir, strings.Join(set, ", "))
	case dir != "":
		src, err := Load(dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Dir, err)
		}
		return src, nil
	case len(set) == 0:
		return nil, ErrNoEnv
	case len(unset) > 0:
		return nil, fmt.Errorf("identity: %s set without %s: the certificate, its key and the trust bundle go together",
			strings.Join(set, ", "), strings.Join(unset, ", "))
	}
	src, err := FromPEM([]byte(getenv(e.Cert)), []byte(getenv(e.Key)), []byte(getenv(e.CA)))
	if err != nil {
		return nil, fmt.Errorf("%s, %s, %s: %w", e.Cert, e.Key, e.CA, err)
	}
	return src, nil
}

// parseCerts reads the certificates of PEM text, at least one.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}
