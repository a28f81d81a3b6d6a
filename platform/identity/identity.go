// Package identity gives every process of a stack a workload identity and the TLS that
// proves it: a certificate authority per stack, kept in the stack's state folder, issues each
// service a short-lived certificate whose only name is a SPIFFE-style URI,
// spiffe://mitosis/<stack>/<service>. Servers require and verify their callers'
// certificates, callers verify their servers', both against the stack's CA and by that URI
// rather than by host name (SPIFFE's X.509-SVID rules), so that a process is trusted for what
// it is, not for where it listens.
//
// The files are plain PEM in one folder per service (cert.pem, key.pem, ca.pem), mounted
// read-only into a pod, passed to a process by path, or taken from a Kubernetes Secret; a
// process reads them again when they change, so renewal and rotation need no restart.
// go-spiffe is built around the SPIFFE Workload API (an agent on a socket); with files it
// would add a dependency to do what crypto/x509 and crypto/tls do here in a few lines.
//
// It decides nothing about who may call what: services/bounded's access table does, and
// services/host enforces it.
package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// TrustDomain is the SPIFFE trust domain of every identity mitosis issues.
const TrustDomain = "mitosis"

// Tooling is the service name of the identity given to people's tools (grpcurl, the CLI):
// it may call health and reflection, and nothing of the shop (services/bounded).
const Tooling = "tooling"

// NATS is the service name of the identity of a stack's NATS server: it serves TLS with it,
// and its clients accept no other server. Not "nats": platform/natsauth keeps the users'
// file in the PKI folder's nats/.
const NATS = "nats-server"

// Is accepts only the peer service (of the stack: Source checks that first).
func Is(service string) Check {
	return func(peer ID) error {
		if peer.Service != service {
			return fmt.Errorf("identity: peer %s is not %s", peer, service)
		}
		return nil
	}
}

// ID is a workload identity: a service of a stack.
type ID struct {
	Stack   string
	Service string
}

// segment is what a stack or service name may be: SPIFFE path segments allow letters,
// digits, '.', '-' and '_'; mitosis's names use fewer.
var segment = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Check says what is wrong with id, if anything.
func (id ID) Check() error {
	if !segment.MatchString(id.Stack) {
		return fmt.Errorf("identity: stack %q: want lower-case letters, digits, '.', '-' or '_'", id.Stack)
	}
	if !segment.MatchString(id.Service) {
		return fmt.Errorf("identity: service %q: want lower-case letters, digits, '.', '-' or '_'", id.Service)
	}
	return nil
}

// URI is the identity as a certificate carries it: spiffe://mitosis/<stack>/<service>.
func (id ID) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: "/" + id.Stack + "/" + id.Service}
}

// String is URI's text.
func (id ID) String() string { return id.URI().String() }

// Parse reads an identity from its URI.
func Parse(uri string) (ID, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return ID{}, fmt.Errorf("identity %q: %w", uri, err)
	}
	return fromURL(u)
}

func fromURL(u *url.URL) (ID, error) {
	if u.Scheme != "spiffe" || u.Host != TrustDomain || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return ID{}, fmt.Errorf("identity %q: want spiffe://%s/<stack>/<service>", u, TrustDomain)
	}
	stack, service, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok {
		return ID{}, fmt.Errorf("identity %q: want spiffe://%s/<stack>/<service>", u, TrustDomain)
	}
	id := ID{Stack: stack, Service: service}
	if err := id.Check(); err != nil {
		return ID{}, fmt.Errorf("identity %q: %w", u, err)
	}
	return id, nil
}

// ErrNoIdentity is returned for a certificate that names no identity, or more than one.
var ErrNoIdentity = errors.New("identity: the certificate names no single spiffe:// identity")

// FromCert reads the identity of a certificate: its one URI name (an X.509-SVID has exactly
// one).
func FromCert(c *x509.Certificate) (ID, error) {
	if len(c.URIs) != 1 {
		return ID{}, ErrNoIdentity
	}
	return fromURL(c.URIs[0])
}
