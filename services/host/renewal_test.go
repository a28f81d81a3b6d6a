package host_test

import (
	"context"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/logtest"
)

// A gRPC server and its client, each given its identity folder once as a process is
// (host.Secure), go on serving and calling over real sockets while `mitosis up` (or
// cert-manager, in a Kubernetes Secret) rewrites their files: every new connection presents
// the certificate the files hold now (its serial, read on the client's end), connections made
// before keep working with theirs, a CA rotation is taken the same way, and a certificate
// caught half written leaves the last good one in use, logged.
func TestRenewalWithoutRestart(t *testing.T) {
	pki := t.TempDir()
	ca, err := identity.OpenCA(pki, hosttest.Stack)
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := ca.EnsureAll([]string{"catalog", "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	serverSec, err := host.Secure(dirs["catalog"])
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	serverSec.Identity.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	srv := host.NewServer(slog.New(slog.DiscardHandler), serverSec)
	healthpb.RegisterHealthServer(srv, grpchealth.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	clientSec, err := host.Secure(dirs["gateway"])
	if err != nil {
		t.Fatal(err)
	}
	connect := func() *grpc.ClientConn {
		t.Helper()
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(clientSec.ClientCredentials("catalog")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	// call checks health on conn and returns the serial of the certificate the server
	// presented on it.
	call := func(what string, conn *grpc.ClientConn) *big.Int {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		var p peer.Peer
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok || len(info.State.PeerCertificates) == 0 {
			t.Fatalf("%s: no TLS peer (%T)", what, p.AuthInfo)
		}
		return info.State.PeerCertificates[0].SerialNumber
	}
	serial := func() *big.Int {
		t.Helper()
		certs, err := os.ReadFile(filepath.Join(dirs["catalog"], identity.CertFile))
		if err != nil {
			t.Fatal(err)
		}
		src, err := identity.FromPEM(certs, []byte(readFile(t, filepath.Join(dirs["catalog"], identity.KeyFile))),
			[]byte(readFile(t, filepath.Join(dirs["catalog"], identity.CAFile))))
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := src.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber
	}

	a := serial()
	first := connect()
	if got := call("before renewal", first); got.Cmp(a) != 0 {
		t.Fatalf("the server presented %x, its files hold %x", got, a)
	}

	// Renewed as up renews (CA.Renew: each file written aside and renamed into place, the
	// key first).
	if _, err := ca.Renew("catalog"); err != nil {
		t.Fatal(err)
	}
	b := serial()
	if got := call("a new connection after renewal", connect()); got.Cmp(b) != 0 {
		t.Errorf("a new connection after renewal: the server presented %x, want %x", got, b)
	}
	if got := call("the connection made before renewal", first); got.Cmp(a) != 0 {
		t.Errorf("the connection made before renewal now shows %x, want %x", got, a)
	}

	// A CA rotation as `mitosis certs rotate` makes it: every bundle (both CAs), then every
	// certificate, of the new CA.
	rotated, err := identity.RotateCA(pki, hosttest.Stack)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.EnsureAll([]string{"catalog", "gateway"}); err != nil {
		t.Fatal(err)
	}
	c := serial()
	second := connect()
	if got := call("a new connection after rotation", second); got.Cmp(c) != 0 {
		t.Errorf("a new connection after rotation: the server presented %x, want %x", got, c)
	}
	call("the connection made before renewal, after rotation", first)

	// Half written in place: new connections still get the last good certificate.
	certPath := filepath.Join(dirs["catalog"], identity.CertFile)
	whole := readFile(t, certPath)
	if err := os.WriteFile(certPath, []byte(whole[:len(whole)/2]), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := call("a new connection with a half-written certificate", connect()); got.Cmp(c) != 0 {
		t.Errorf("with a half-written certificate the server presented %x, want the last good %x", got, c)
	}
	if !strings.Contains(logs.String(), "identity files unreadable") {
		t.Errorf("the half-written certificate was not logged:\n%s", logs.String())
	}
	call("the connection made after rotation, with a half-written certificate", second)
	call("the first connection, with a half-written certificate", first)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
