package natsembed_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/natsembed"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/proctest"
)

// BenchmarkRoundTrip is the latency of one store round trip, one after another from a single
// goroutine (ns/op is the wall time of one; nothing overlaps), through natsjs.Bucket as the
// shop uses it, over the three ways a process reaches JetStream:
//   - inprocess: the embedded server's in-process connection (natsembed.Connect), as `go run
//     ./monolith` and the tests do;
//   - tcp: the same server over loopback TCP;
//   - tls: a server speaking TLS over loopback TCP, as the Podman stack's NATS pod does to the
//     monolith (the kernel's loopback, not the pods' bridge);
//   - process: the embedded server in another process (this test binary run as one, see
//     TestMain) over loopback TCP: every round trip wakes a thread of the other process and
//     then one of this one, as between the Podman stack's monolith and NATS pods; what is left
//     of the stack's figure once this is taken off is the network between pods and the
//     machine's other load.
//
// Each runs Get (a direct get of an existing key), Create (a new key) and Update (a new value
// for a key at its revision, the checkout's most common write):
//
//	go test -run '^$' -bench RoundTrip -benchtime 3000x ./natsembed
func BenchmarkRoundTrip(b *testing.B) {
	for _, via := range []string{"inprocess", "tcp", "tls", "process"} {
		b.Run("via="+via, func(b *testing.B) {
			bucket := benchBucket(b, via)
			ctx := context.Background()
			value := make([]byte, 512) // about a cart's or a reservation's record
			rev, err := bucket.Create(ctx, "k", value)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("op=get", func(b *testing.B) {
				for b.Loop() {
					if _, err := bucket.Get(ctx, "k"); err != nil {
						b.Fatal(err)
					}
				}
			})
			created := 0 // across the runs of op=create: each key is new
			b.Run("op=create", func(b *testing.B) {
				for b.Loop() {
					created++
					if _, err := bucket.Create(ctx, fmt.Sprintf("c-%d", created), value); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("op=update", func(b *testing.B) {
				for b.Loop() {
					if rev, err = bucket.Update(ctx, "k", value, rev); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkRoundTripAfterIdle is op=update of BenchmarkRoundTrip with the client idle for a
// while before each round trip; ns/roundtrip is the round trip alone (ns/op counts the pause
// too, so that the default -benchtime bounds the wall time): what a round trip costs when the
// threads of both ends have parked and their CPUs gone idle, as between the requests of a
// shop at a modest rate, and between the steps of a checkout that do work of their own.
// On a VM whose idle vCPUs halt, waking them is what a round trip then pays
// (monolith/LATENCY.md):
//
//	go test -run '^$' -bench RoundTripAfterIdle -benchtime 1000x ./natsembed
func BenchmarkRoundTripAfterIdle(b *testing.B) {
	for _, via := range []string{"inprocess", "tls", "process"} {
		b.Run("via="+via, func(b *testing.B) {
			bucket := benchBucket(b, via)
			ctx := context.Background()
			value := make([]byte, 512)
			rev, err := bucket.Create(ctx, "k", value)
			if err != nil {
				b.Fatal(err)
			}
			for _, idle := range []time.Duration{0, time.Millisecond, 10 * time.Millisecond} {
				b.Run("idle="+idle.String(), func(b *testing.B) {
					var spent time.Duration
					for b.Loop() {
						time.Sleep(idle)
						start := time.Now()
						if rev, err = bucket.Update(ctx, "k", value, rev); err != nil {
							b.Fatal(err)
						}
						spent += time.Since(start)
					}
					b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "ns/roundtrip")
				})
			}
		})
	}
}

// benchBucket opens a bucket on a fresh server reached via via.
func benchBucket(b *testing.B, via string) *natsjs.Bucket {
	b.Helper()
	var nc *nats.Conn
	switch via {
	case "inprocess", "tcp":
		listen := ""
		if via == "tcp" {
			listen = "127.0.0.1:-1"
		}
		srv, err := natsembed.Start(b.TempDir(), listen)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Shutdown)
		if via == "tcp" {
			nc, err = nats.Connect(srv.ClientURL())
		} else {
			nc, err = srv.Connect("bench")
		}
		if err != nil {
			b.Fatal(err)
		}
	case "tls":
		cfg := selfSigned(b)
		ns := natsjstest.Serve(b, &server.Options{
			Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(),
			NoSigs: true, NoLog: true, TLSConfig: cfg, TLSTimeout: 5,
		})
		var err error
		nc, err = nats.Connect(ns.ClientURL(), nats.Secure(&tls.Config{RootCAs: pool(cfg), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}))
		if err != nil {
			b.Fatal(err)
		}
	case "process":
		var err error
		if nc, err = nats.Connect(proctest.Start(b, serverEnv+"="+b.TempDir())); err != nil {
			b.Fatal(err)
		}
	default:
		b.Fatalf("no such way to the store: %s", via)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	bucket, err := natsjs.OpenBucket(context.Background(), js, natsjs.StoreConfig{}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return bucket
}

// selfSigned is a server TLS configuration with a fresh self-signed certificate for 127.0.0.1.
func selfSigned(b *testing.B) *tls.Config {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}, MinVersion: tls.VersionTLS13}
}

// pool trusts the certificate of cfg.
func pool(cfg *tls.Config) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(cfg.Certificates[0].Leaf)
	return p
}

// serverEnv, set to a directory, makes the test binary an embedded server storing its files
// there instead of running tests (proctest.Start).
const serverEnv = "MITOSIS_BENCH_NATS_DIR"

// TestMain runs the tests, or the server a benchmark asks for with proctest.Start.
func TestMain(m *testing.M) {
	if dir := os.Getenv(serverEnv); dir != "" {
		if err := runServer(dir); err != nil {
			fmt.Fprintln(os.Stderr, "nats server:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// runServer serves JetStream from dir on a port of 127.0.0.1 until its standard input
// closes. It prints its URL first.
func runServer(dir string) error {
	srv, err := natsembed.Start(dir, "127.0.0.1:-1")
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	proctest.Serve(srv.ClientURL())
	return nil
}
