package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Lifetimes. A service's certificate lives a week and is renewed once half of it has passed,
// by every `mitosis up` and, while the stack runs, by its renewer (EnsureFound), so none
// expires; the processes read the renewed files without a restart. The CA lives ten years
// and changes only when rotated (`mitosis certs rotate`).
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	LeafLifetime = 7 * 24 * time.Hour
	// backdate covers clocks a little apart (a pod's and its host's).
	backdate = 5 * time.Minute
)

// Files of a stack's PKI folder and of each service's folder in it.
const (
	CAFile         = "ca.pem"          // the CA's certificate (in the PKI folder); in a service's folder, the trust bundle
	CAKeyFile      = "ca-key.pem"      // the CA's private key: never leaves the PKI folder
	PreviousCAFile = "ca-previous.pem" // the CA before the last rotation, trusted until it expires
	CertFile       = "cert.pem"        // a service's certificate
	KeyFile        = "key.pem"         // a service's private key
)

// CA is a stack's certificate authority.
type CA struct {
	dir      string
	stack    string
	cert     *x509.Certificate
	key      crypto.Signer
	previous *x509.Certificate // the one it replaced, still trusted; nil when none
}

// LoadCA returns the CA of stack kept in dir; an error wrapping fs.ErrNotExist when there is
// none. It never makes one: what only renews (platform/cmd/renewer) must not start a trust
// domain of its own.
func LoadCA(dir, stack string) (*CA, error) {
	if err := (ID{Stack: stack, Service: Tooling}).Check(); err != nil {
		return nil, err
	}
	return loadCA(dir, stack)
}

// OpenCA returns the CA of stack kept in dir, made (mode 0600 files) when there is none.
func OpenCA(dir, stack string) (*CA, error) {
	if err := (ID{Stack: stack, Service: Tooling}).Check(); err != nil {
		return nil, err
	}
	ca, err := loadCA(dir, stack)
	if errors.Is(err, fs.ErrNotExist) {
		return newCA(dir, stack, nil)
	}
	return ca, err
}

// RotateCA replaces the CA of stack in dir by a new one. The old one stays trusted (in every
// service's bundle) until the next rotation, so that processes holding certificates it
// issued keep talking to those holding new ones while a stack is renewed.
func RotateCA(dir, stack string) (*CA, error) {
	old, err := OpenCA(dir, stack)
	if err != nil {
		return nil, err
	}
	return newCA(dir, stack, old.cert)
}

func loadCA(dir, stack string) (*CA, error) {
	certs, err := readCerts(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("CA of %s: %w", stack, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA of %s: %w", stack, err)
	}
	ca := &CA{dir: dir, stack: stack, cert: certs[0], key: key}
	if prev, err := readCerts(filepath.Join(dir, PreviousCAFile)); err == nil {
		ca.previous = prev[0]
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return ca, nil
}

func newCA(dir, stack string, previous *x509.Certificate) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA of %s: %w", stack, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"mitosis"}, CommonName: "mitosis " + stack + " CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: TrustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("CA of %s: %w", stack, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA of %s: %w", stack, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("CA of %s: %w", stack, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("CA of %s: %w", stack, err)
	}
	// The key first: a certificate without its key would be a CA that cannot issue.
	if err := writeFile(filepath.Join(dir, CAKeyFile), pemBlock("PRIVATE KEY", keyDER)); err != nil {
		return nil, err
	}
	if previous != nil {
		if err := writeFile(filepath.Join(dir, PreviousCAFile), pemBlock("CERTIFICATE", previous.Raw)); err != nil {
			return nil, err
		}
	}
	if err := writeFile(filepath.Join(dir, CAFile), pemBlock("CERTIFICATE", der)); err != nil {
		return nil, err
	}
	return &CA{dir: dir, stack: stack, cert: cert, key: key, previous: previous}, nil
}

// Certificate is the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Bundle is what the stack's processes trust, in PEM: the CA, and the one before it while
// that has not expired.
func (ca *CA) Bundle() []byte {
	b := pemBlock("CERTIFICATE", ca.cert.Raw)
	if ca.previous != nil && time.Now().Before(ca.previous.NotAfter) {
		b = append(b, pemBlock("CERTIFICATE", ca.previous.Raw)...)
	}
	return b
}

// Issue makes a certificate for service of the CA's stack, valid for lifetime from now, and
// its key, in PEM. It is good for both ends of a connection (server and client).
func (ca *CA) Issue(service string, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	id := ID{Stack: ca.stack, Service: service}
	if err := id.Check(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: %w", id, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"mitosis"}, CommonName: service},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
		DNSNames:     dnsNames(service),
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter // a certificate cannot outlive its issuer
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: %w", id, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue %s: %w", id, err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

// dnsNames are the host names a certificate of service names besides its URI: the service's
// name, for tools that check a server by host name (grpcurl -servername <service>; the
// processes go by the URI, X.509-SVIDs allow both), and for the NATS server the names its
// cluster's nodes dial each other by (nats-<i>.nats, the StatefulSet's pods behind its
// headless Service), which nats-server checks on its TLS routes.
func dnsNames(service string) []string {
	if service == NATS {
		return []string{service, "*.nats"}
	}
	return []string{service}
}

// EnsureAll is Ensure for each of services, and returns their folders by service. Every
// bundle is written before any certificate, so that after a rotation no process is handed a
// certificate of the new CA while a peer does not trust it yet.
func (ca *CA) EnsureAll(services []string) (map[string]string, error) {
	for _, s := range services {
		if err := ca.writeBundle(s); err != nil {
			return nil, err
		}
	}
	out := make(map[string]string, len(services))
	for _, s := range services {
		dir, err := ca.Ensure(s)
		if err != nil {
			return nil, err
		}
		out[s] = dir
	}
	return out, nil
}

// Ensure makes sure service has a certificate of the CA in its folder, <CA folder>/<service>
// (cert.pem, key.pem, and ca.pem, the trust bundle), and returns the folder. A certificate
// found there is kept while the current CA issued it for that identity and more than half of
// its life is left; else a new one replaces it. Every file is mode 0600, written aside and
// renamed into place, so a process reading the folder sees the old pair or the new one.
func (ca *CA) Ensure(service string) (string, error) {
	_, err := ca.ensure(service)
	return ca.Dir(service), err
}

// ensure is Ensure, saying whether it issued a new certificate.
func (ca *CA) ensure(service string) (renewed bool, err error) {
	if err := ca.writeBundle(service); err != nil {
		return false, err
	}
	if ca.current(ca.Dir(service), service) {
		return false, nil
	}
	_, err = ca.Renew(service)
	return err == nil, err
}

// EnsureFound is Ensure for every identity with a folder in the CA's folder, the tools'
// included: what the stack's renewer does (platform/cmd/renewer), so that a stack left
// running never sees a certificate expire. It returns the identities it gave a new
// certificate, and goes on past a folder it cannot renew, to report them all at the end.
func (ca *CA) EnsureFound() (renewed []string, err error) {
	found, err := Found(ca.dir)
	if err != nil {
		return nil, fmt.Errorf("CA of %s: %w", ca.stack, err)
	}
	var errs []error
	for _, service := range found {
		if (ID{Stack: ca.stack, Service: service}).Check() != nil {
			continue
		}
		done, err := ca.ensure(service)
		if done {
			renewed = append(renewed, service)
		}
		errs = append(errs, err)
	}
	return renewed, errors.Join(errs...)
}

// Found lists the identities with a folder holding a certificate in the PKI folder dir.
func Found(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), CertFile)); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Renew gives service a new certificate of the CA now, whatever is left of the one in its
// folder (Ensure calls it once a certificate is due), and returns the folder. Its bundle
// must be there already (Ensure, EnsureAll).
func (ca *CA) Renew(service string) (string, error) {
	dir := ca.Dir(service)
	certPEM, keyPEM, err := ca.Issue(service, LeafLifetime)
	if err != nil {
		return "", err
	}
	// The key before the certificate: a reader that sees the new certificate with the old
	// key fails one handshake and reads again (Source), never the other way round for long.
	if err := writeFile(filepath.Join(dir, KeyFile), keyPEM); err != nil {
		return "", err
	}
	if err := writeFile(filepath.Join(dir, CertFile), certPEM); err != nil {
		return "", err
	}
	return dir, nil
}

// Chown gives service's folder and its files to uid and gid: a container's user that must
// read them. Renewals keep the owner (writeFile).
func (ca *CA) Chown(service string, uid, gid int) error {
	dir := ca.Dir(service)
	for _, p := range []string{dir, filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CAFile)} {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("certificate of %s: %w", service, err)
		}
	}
	return nil
}

// ChownCA gives the CA's folder and files to uid and gid: the user of a container that
// renews the stack's certificates (platform/cmd/renewer) and mounts the folder. Rotations
// keep the owner (writeFile).
func (ca *CA) ChownCA(uid, gid int) error {
	for _, p := range []string{ca.dir, filepath.Join(ca.dir, CAFile), filepath.Join(ca.dir, CAKeyFile), filepath.Join(ca.dir, PreviousCAFile)} {
		if err := os.Chown(p, uid, gid); err != nil && !(p == filepath.Join(ca.dir, PreviousCAFile) && errors.Is(err, fs.ErrNotExist)) {
			return fmt.Errorf("CA of %s: %w", ca.stack, err)
		}
	}
	return nil
}

// Dir is the folder of service's identity.
func (ca *CA) Dir(service string) string { return filepath.Join(ca.dir, service) }

// writeBundle writes the trust bundle into service's folder, unless it holds it already.
func (ca *CA) writeBundle(service string) error {
	if err := (ID{Stack: ca.stack, Service: service}).Check(); err != nil {
		return err
	}
	dir := ca.Dir(service)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certificate of %s: %w", service, err)
	}
	bundle := ca.Bundle()
	if old, err := os.ReadFile(filepath.Join(dir, CAFile)); err == nil && bytes.Equal(old, bundle) {
		return nil
	}
	return writeFile(filepath.Join(dir, CAFile), bundle)
}

// current reports whether dir holds a certificate of the CA for service with more than half
// of its life left.
func (ca *CA) current(dir, service string) bool {
	certs, err := readCerts(filepath.Join(dir, CertFile))
	if err != nil {
		return false
	}
	c := certs[0]
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil {
		return false
	}
	if id, err := FromCert(c); err != nil || id != (ID{Stack: ca.stack, Service: service}) {
		return false
	}
	if c.CheckSignatureFrom(ca.cert) != nil || !slices.Equal(c.DNSNames, dnsNames(service)) {
		return false
	}
	return time.Now().Before(RenewAt(c))
}

// RenewEvery is how often the stack's renewer looks for certificates due
// (platform/cmd/renewer): at most this long past RenewAt, a certificate is renewed.
const RenewEvery = time.Hour

// Overdue tells whether c should have been renewed by now: it is past RenewAt by RenewEvery,
// when the renewer would have had its pass, or, for a certificate shorter-lived than a few
// hours, by half of what was left at RenewAt. A certificate merely past RenewAt is due, and
// waits for the renewer's next pass; one overdue says the renewer does not run.
func Overdue(c *x509.Certificate, now time.Time) bool {
	at := RenewAt(c)
	return !now.Before(at.Add(min(RenewEvery, c.NotAfter.Sub(at)/2)))
}

// RenewAt is when a certificate is due for renewal: once half of its life has passed
// (Ensure, and so every `mitosis up`, renews it from then on), which leaves a stack brought
// up again within that half a certificate that never expires.
func RenewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand does not fail on Linux
	}
	return n
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

// readCerts reads the certificates of a PEM file, at least one.
func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, err := parseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PKCS #8 private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", k)
	}
	return s, nil
}

// writeFile writes b to path, mode 0600, whole or not at all. A file it replaces keeps its
// owner, and a new one takes its folder's: a folder handed to a container's user
// (platform/podmanrt, the compose files' renewer) stays readable by it after a renewal or a
// rotation.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o600)
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		st, err = os.Stat(filepath.Dir(path))
	}
	if werr == nil && err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid()) {
			werr = os.Chown(tmp.Name(), int(sys.Uid), int(sys.Gid))
		}
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
