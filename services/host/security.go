package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Security is how a process's gRPC is protected. Secure (the default, and the only way a
// host runs unless told otherwise): mutual TLS with the process's workload identity
// (platform/identity), every server requiring and verifying its callers' certificates and
// every client its server's, and each call authorized by the access table
// (services/bounded.Allowed) for the caller's identity. Insecure: plaintext and no
// authorization, for measuring what security costs (SHOP_INSECURE) and nothing else.
//
// The zero Security is neither: it serves and dials nothing (every handshake fails), so
// that a process nobody configured is closed, not open.
type Security struct {
	Identity *identity.Source // the process's identity; nil when Insecure
	Insecure bool
}

// Secure returns the Security of the identity in dir (identity.Load).
func Secure(dir string) (Security, error) {
	src, err := identity.Load(dir)
	if err != nil {
		return Security{}, err
	}
	return Security{Identity: src}, nil
}

// natsTLS is the TLS of the connection to the NATS at url: for a tls:// URL, the process's
// certificate presented and only the stack's NATS server (identity.NATS) accepted, by its
// identity rather than its host name; a nats:// URL is left as it is (the runtime gives
// tls:// whenever its NATS has an identity).
func (s Security) natsTLS(url string) (nats.Option, error) {
	if !strings.HasPrefix(url, "tls://") {
		return func(*nats.Options) error { return nil }, nil
	}
	if s.Identity == nil {
		return nil, fmt.Errorf("NATS at %s speaks TLS, and this process has no identity (%s or %s)", redacted(url), TLSDirEnv, TLSEnv.Cert)
	}
	return nats.Secure(s.Identity.ClientConfig(identity.Is(identity.NATS))), nil
}

// errNoIdentity fails the handshakes of a process given no identity.
var errNoIdentity = errors.New("this process has no identity (SHOP_TLS_DIR or SHOP_TLS_*_PEM) and is not told to run insecure (SHOP_INSECURE=true)")

// tooling are the gRPC services any identity of the stack may call, tools included
// (identity.Tooling): health checks and reflection (grpcurl).
var tooling = []string{"/grpc.health.v1.Health/", "/grpc.reflection."}

func (s Security) serverCreds() credentials.TransportCredentials {
	switch {
	case s.Insecure:
		return insecure.NewCredentials()
	case s.Identity == nil:
		return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errNoIdentity }})
	}
	return identifyingCreds{credentials.NewTLS(s.Identity.ServerConfig(nil))}
}

// identifyingCreds are server credentials that read who a caller is once per connection, at
// the handshake, instead of once per call: the connection's AuthInfo is a *caller.
type identifyingCreds struct {
	credentials.TransportCredentials
}

func (c identifyingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	if tlsInfo, ok := info.(credentials.TLSInfo); ok {
		return conn, newCaller(tlsInfo), nil
	}
	return conn, info, nil
}

func (c identifyingCreds) Clone() credentials.TransportCredentials {
	return identifyingCreds{c.TransportCredentials.Clone()}
}

// caller is a connection's verified TLS state and who its certificate names, read at the
// handshake, and the access table's answer for each method the caller has called on it.
// The table and the certificate are fixed for the connection's life, so an answer never
// goes stale; the methods are those the server registered (gRPC answers Unimplemented to
// any other before an interceptor runs), so the memo is bounded.
type caller struct {
	credentials.TLSInfo // AuthType and the security level, as gRPC and callers expect
	id                  identity.ID
	err                 error // the certificate names no identity of the stack
	group               bounded.Group
	groupErr            error // the identity names no process of the shop
	allowed             sync.Map
}

// errNoCertificate is the error of a caller that presented no certificate.
var errNoCertificate = errors.New("no certificate")

func newCaller(info credentials.TLSInfo) *caller {
	c := &caller{TLSInfo: info}
	if len(info.State.PeerCertificates) == 0 {
		c.err = errNoCertificate
		return c
	}
	c.id, c.err = identity.FromCert(info.State.PeerCertificates[0])
	if c.err == nil {
		c.group, c.groupErr = bounded.ParseName(c.id.Service)
	}
	return c
}

// may reports whether the access table lets the caller call method.
func (c *caller) may(method string) bool {
	if ok, found := c.allowed.Load(method); found {
		return ok.(bool)
	}
	ok := c.groupErr == nil && bounded.Allowed(c.group, method)
	c.allowed.Store(method, ok)
	return ok
}

// ClientCredentials are the credentials of a connection to the context callee: the
// process's certificate, and a server accepted only with an identity of the stack whose
// process runs callee. "" accepts any process of the stack (tools, tests).
func (s Security) ClientCredentials(callee string) credentials.TransportCredentials {
	switch {
	case s.Insecure:
		return insecure.NewCredentials()
	case s.Identity == nil:
		return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, errNoIdentity }})
	}
	var check identity.Check
	if callee != "" {
		check = func(p identity.ID) error {
			g, err := bounded.ParseName(p.Service)
			if err != nil {
				return fmt.Errorf("server %s runs no context: %w", p, err)
			}
			if !slices.Contains(g.Contexts, callee) {
				return fmt.Errorf("server %s does not run %s", p, callee)
			}
			return nil
		}
	}
	return credentials.NewTLS(s.Identity.ClientConfig(check))
}

// authorize lets through the calls the access table allows the caller's identity, and
// health and reflection for any identity of the stack; anything else fails with
// PermissionDenied, logged with the caller's identity. The handshake already verified the
// certificate; this reads who it names.
func authorize(ctx context.Context, logger *slog.Logger, method string) error {
	c, err := callerOf(ctx)
	if err != nil {
		logger.LogAttrs(ctx, slog.LevelWarn, "grpc call refused", slog.String("method", method), slog.Any("err", err))
		return status.Error(codes.Unauthenticated, err.Error())
	}
	for _, prefix := range tooling {
		if strings.HasPrefix(method, prefix) {
			return nil
		}
	}
	if c.may(method) {
		return nil
	}
	logger.LogAttrs(ctx, slog.LevelWarn, "grpc call refused", slog.String("method", method), slog.String("caller", c.id.String()))
	return status.Errorf(codes.PermissionDenied, "%s may not call %s", c.id, method)
}

// callerOf reads the verified caller of the call in ctx: its connection's, read at the
// handshake (identifyingCreds), or read now from credentials that did not.
func callerOf(ctx context.Context) (*caller, error) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return nil, errors.New("no peer")
	}
	var c *caller
	switch info := p.AuthInfo.(type) {
	case *caller:
		c = info
	case credentials.TLSInfo:
		c = newCaller(info)
	default:
		return nil, fmt.Errorf("caller %s presented no certificate", p.Addr)
	}
	switch {
	case errors.Is(c.err, errNoCertificate):
		return nil, fmt.Errorf("caller %s presented no certificate", p.Addr)
	case c.err != nil:
		return nil, c.err
	}
	return c, nil
}

func (s Security) unaryAuthorization(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := authorize(ctx, logger, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func (s Security) streamAuthorization(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := authorize(ss.Context(), logger, info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
