package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Source is a process's identity read from its folder (cert.pem, key.pem, ca.pem): its
// certificate and what it trusts. Every handshake looks at the files (a stat of each, no
// read) and reads them again when one changed, so a renewed certificate or a rotated CA
// takes effect without a restart, whoever rewrote them: `mitosis up` renaming new files into
// place, or the kubelet swapping a Secret volume's files when cert-manager renews the Secret.
// Connections already made keep what they were made with. Files that cannot be read as a
// whole identity (half written, or a new key beside the old certificate) leave the last
// good one in use, logged once. A Source made from PEM text (FromPEM) has no folder and
// stays as it was made.
type Source struct {
	dir string // "" for FromPEM's

	mu     sync.Mutex
	logger *slog.Logger // nil: slog.Default()
	seen   [3]stamp     // the files as last looked at
	// fresh: seen was taken while a file was younger than freshness, when a rewrite in
	// place may leave its stamp as it was; the contents are compared again until it is not.
	fresh  bool
	raw    [3][]byte // what the identity in use was read from
	failed string    // the last failure logged, so that it is logged once
	cert   *tls.Certificate
	roots  *x509.CertPool
	id     ID
}

// stamp is what a stat tells of a file: a rename (mitosis up, the kubelet's symlink swap)
// changes its inode, a rewrite in place its size or its modification time.
type stamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// freshness is how long after a file changed its stamp is not trusted to change again: the
// kernel's modification times move in ticks of a few milliseconds, so two writes in place of
// the same size within one tick leave the same stamp (git's "racily clean" files).
const freshness = 2 * time.Second

// Load reads the identity in dir. Files that are not a whole identity while one of them is
// younger than freshness are read again until they are or it is not: a renewal (the key
// renamed into place, then the certificate) caught between its two writes is waited for, so
// a process or a tool that starts then does not fail for it.
func Load(dir string) (*Source, error) {
	s := &Source{dir: dir}
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(freshness)
	for {
		err := s.refresh()
		if err == nil {
			return s, nil
		}
		if !s.fresh || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(loadRetry)
	}
}

// loadRetry is how long Load waits before it reads young, unwhole files again: a renewal's
// second write follows its first within milliseconds.
const loadRetry = 20 * time.Millisecond

// SetLogger makes s tell l when it reads renewed files, or keeps the last good ones because
// the new ones cannot be read; slog.Default() until then.
func (s *Source) SetLogger(l *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logger = l
}

var files = [3]string{CertFile, KeyFile, CAFile}

// refresh reads the files again if they changed since they were last looked at. With s.mu
// held: handshakes that find the files changed wait for one read rather than each make one.
func (s *Source) refresh() error {
	if s.dir == "" {
		return nil // FromPEM's: nothing to read again
	}
	var now [3]stamp
	young := false
	for i, f := range files {
		st, err := os.Stat(filepath.Join(s.dir, f))
		if err != nil {
			return s.fail(fmt.Errorf("identity in %s: %w", s.dir, err))
		}
		now[i] = stamp{mod: st.ModTime(), size: st.Size()}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			now[i].ino = sys.Ino
		}
		young = young || time.Since(st.ModTime()) < freshness
	}
	if s.cert != nil && now == s.seen && !s.fresh {
		return nil
	}
	s.seen, s.fresh = now, young
	var raw [3][]byte
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join(s.dir, f))
		if err != nil {
			return s.fail(fmt.Errorf("identity in %s: %w", s.dir, err))
		}
		raw[i] = b
	}
	if s.cert != nil && bytes.Equal(raw[0], s.raw[0]) && bytes.Equal(raw[1], s.raw[1]) && bytes.Equal(raw[2], s.raw[2]) {
		s.failed = ""
		return nil
	}
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return s.fail(fmt.Errorf("identity in %s: %w", s.dir, err))
	}
	id, err := FromCert(cert.Leaf)
	if err != nil {
		return s.fail(fmt.Errorf("identity in %s: %w", s.dir, err))
	}
	cas, err := parseCerts(raw[2])
	if err != nil {
		return s.fail(fmt.Errorf("identity in %s: %s: %w", s.dir, CAFile, err))
	}
	if s.cert != nil && id != s.id {
		// A folder that now names another workload is a mistake (a Secret mounted in the
		// wrong pod); keep being who the process was started as.
		return s.fail(fmt.Errorf("identity in %s: now names %s, not %s", s.dir, id, s.id))
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	if s.cert != nil {
		s.log().LogAttrs(context.Background(), slog.LevelInfo, "identity renewed: new handshakes present the new certificate",
			slog.String("identity", id.String()), slog.String("dir", s.dir),
			slog.String("serial", fmt.Sprintf("%x", cert.Leaf.SerialNumber)),
			slog.Time("not_after", cert.Leaf.NotAfter), slog.Int("trusted_cas", len(cas)))
	}
	s.raw, s.failed = raw, ""
	s.cert, s.roots, s.id = &cert, roots, id
	return nil
}

// fail tells err once, when there is an identity in use that stays so; it returns err.
func (s *Source) fail(err error) error {
	if s.cert != nil && err.Error() != s.failed {
		s.failed = err.Error()
		s.log().LogAttrs(context.Background(), slog.LevelWarn, "identity files unreadable: keeping the certificate in use until they are whole",
			slog.String("identity", s.id.String()), slog.String("serial", fmt.Sprintf("%x", s.cert.Leaf.SerialNumber)),
			slog.Time("not_after", s.cert.Leaf.NotAfter), slog.Any("err", err))
	}
	return err
}

func (s *Source) log() *slog.Logger {
	if s.logger != nil {
		return s.logger
	}
	return slog.Default()
}

// current returns what the files hold now; if they cannot be read (caught between two
// writes), what they held last.
func (s *Source) current() (*tls.Certificate, *x509.CertPool, ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refresh() // on failure the last good read stands (logged), and the files are read again once they change
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
