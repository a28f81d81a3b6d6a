package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Source is a process's identity read from its folder (cert.pem, key.pem, ca.pem): its
// certificate and what it trusts. It reads the files again when one of them changes, at the
// next handshake, so a renewed certificate or a rotated CA takes effect without a restart;
// connections already made keep what they were made with. A Source made from PEM text
// (FromPEM) has no folder and stays as it was made.
type Source struct {
	dir string // "" for FromPEM's

	mu    sync.Mutex
	stamp [3]time.Time // the files' modification times when last read
	cert  *tls.Certificate
	roots *x509.CertPool
	id    ID
}

// Load reads the identity in dir.
func Load(dir string) (*Source, error) {
	s := &Source{dir: dir}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

var files = [3]string{CertFile, KeyFile, CAFile}

func (s *Source) reload() error {
	if s.dir == "" {
		return nil // FromPEM's: nothing to read again
	}
	var stamp [3]time.Time
	for i, f := range files {
		st, err := os.Stat(filepath.Join(s.dir, f))
		if err != nil {
			return fmt.Errorf("identity in %s: %w", s.dir, err)
		}
		stamp[i] = st.ModTime()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && stamp == s.stamp {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(s.dir, CertFile), filepath.Join(s.dir, KeyFile))
	if err != nil {
		return fmt.Errorf("identity in %s: %w", s.dir, err)
	}
	id, err := FromCert(cert.Leaf)
	if err != nil {
		return fmt.Errorf("identity in %s: %w", s.dir, err)
	}
	cas, err := readCerts(filepath.Join(s.dir, CAFile))
	if err != nil {
		return fmt.Errorf("identity in %s: %w", s.dir, err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	s.stamp, s.cert, s.roots, s.id = stamp, &cert, roots, id
	return nil
}

// current returns what the files hold now; if they cannot be read (caught between two
// writes), what they held last.
func (s *Source) current() (*tls.Certificate, *x509.CertPool, ID) {
	_ = s.reload() // on failure the last good read stands, and the next handshake tries again
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, s.roots, s.id
}

// ID is the process's own identity.
func (s *Source) ID() ID {
	_, _, id := s.current()
	return id
}

// Leaf is the process's certificate.
func (s *Source) Leaf() (*x509.Certificate, error) {
	c, _, _ := s.current()
	if c == nil || c.Leaf == nil {
		return nil, errors.New("identity: no certificate")
	}
	return c.Leaf, nil
}

// Check decides whether a peer's verified identity is acceptable; nil accepts any of the
// stack.
type Check func(peer ID) error

// ServerConfig is the TLS of a server that requires every client to present a certificate
// of the stack's CA naming an identity of the same stack (and accepted by check, when not
// nil). TLS 1.3 only: every end is ours.
func (s *Source) ServerConfig(check Check) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, _, _ := s.current()
			return c, nil
		},
		// Verified below against the CA as it is at each handshake (ClientCAs would be fixed
		// when the server starts, and a rotated CA would lock every new client out).
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return s.verify(raw, x509.ExtKeyUsageClientAuth, check)
		},
	}
}

// ClientConfig is the TLS of a client that presents the process's certificate and accepts a
// server only with a certificate of the stack's CA naming an identity of the same stack
// (and accepted by check, when not nil). Host names are not checked: a server is trusted for
// the identity it proves, wherever it listens (127.0.0.1, a pod's name, a replica's address).
func (s *Source) ClientConfig(check Check) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, _, _ := s.current()
			return c, nil
		},
		// Go's verification would also match the host name against DNS names, which these
		// certificates do not carry; VerifyPeerCertificate does the chain and the identity
		// instead (what go-spiffe's tlsconfig does too). Nothing is skipped.
		InsecureSkipVerify: true, //nolint:gosec // verified by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return s.verify(raw, x509.ExtKeyUsageServerAuth, check)
		},
	}
}

// verify checks a peer's chain against the stack's CA for usage, then its identity.
func (s *Source) verify(raw [][]byte, usage x509.ExtKeyUsage, check Check) error {
	if len(raw) == 0 {
		return errors.New("identity: the peer presented no certificate")
	}
	_, roots, own := s.current()
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("identity: peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("identity: peer certificate: %w", err)
	}
	id, err := FromCert(certs[0])
	if err != nil {
		return err
	}
	if id.Stack != own.Stack {
		return fmt.Errorf("identity: peer %s is of another stack than %s", id, own.Stack)
	}
	if check != nil {
		return check(id)
	}
	return nil
}
