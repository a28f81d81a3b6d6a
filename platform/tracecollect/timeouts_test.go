package tracecollect

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// short are timeouts a test can wait out; the collector runs with defaultTimeouts.
var short = timeouts{header: 300 * time.Millisecond, read: 600 * time.Millisecond, write: 600 * time.Millisecond, idle: 500 * time.Millisecond,
	age: time.Second}

func startShort(t *testing.T) *Collector {
	t.Helper()
	c, err := start(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"}, short)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// TestSlowClientsLoseTheirConnection: a client that stops partway through its headers or its
// body, idles after a request, or never sends gRPC's preface finds its connection closed by
// the collector once the timeout of that stage has passed, not before (it is the timeout
// that closes it, not an error), on the OTLP/HTTP, query and OTLP/gRPC servers alike.
func TestSlowClientsLoseTheirConnection(t *testing.T) {
	c := startShort(t)
	cases := []struct {
		name string
		addr string
		send string
		// after is the timeout that must close the connection.
		after time.Duration
	}{
		{"otlp-http, headers unfinished", c.HTTPAddr(), "POST /v1/traces HTTP/1.1\r\nHost: c\r\n", short.header},
		{"otlp-http, body unfinished", c.HTTPAddr(),
			"POST /v1/traces HTTP/1.1\r\nHost: c\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n0123456789", short.read},
		{"query, headers unfinished", c.QueryAddr(), "GET /api/services HTTP/1.1\r\nHost: c\r\n", short.header},
		{"query, idle after a request", c.QueryAddr(), "GET /api/services HTTP/1.1\r\nHost: c\r\n\r\n", short.idle},
		{"otlp-grpc, no preface", c.GRPCAddr(), "", short.header},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, tc.send); err != nil {
				t.Fatal(err)
			}
			closedAfter(t, conn, start, tc.after)
		})
	}
}

// TestIdleGRPCConnectionsAreClosed: an exporter's connection that carries no call for the
// idle timeout is told to go away; its client goes idle, to dial again at its next export.
func TestIdleGRPCConnectionsAreClosed(t *testing.T) {
	c := startShort(t)
	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := coltracepb.NewTraceServiceClient(conn).Export(ctx, &coltracepb.ExportTraceServiceRequest{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// A call can succeed while the channel still says CONNECTING, for a moment: grpc-go
	// hands calls the balancer's READY picker before it records the READY state
	// (ccBalancerWrapper.UpdateState), which a busy machine makes visible here.
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if s != connectivity.Connecting || !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("after an export: %s, want READY", s)
		}
	}
	for s := conn.GetState(); s == connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("still %s after %s (idle timeout %s)", s, time.Since(start).Round(time.Millisecond), short.idle)
		}
	}
	if took := time.Since(start); took < short.idle*9/10 {
		t.Errorf("left READY after %s, before the idle timeout of %s", took, short.idle)
	}
	// The next export dials again.
	if _, err := coltracepb.NewTraceServiceClient(conn).Export(ctx, &coltracepb.ExportTraceServiceRequest{}); err != nil {
		t.Fatalf("export after the idle close: %v", err)
	}
}

// TestSlowGRPCCallsLoseTheirConnection: a call whose message trickles in (1,000 bytes
// announced, 10 sent), on a connection made by hand since no gRPC client stalls midway,
// holds the connection no longer than its age and the grace after it.
func TestSlowGRPCCallsLoseTheirConnection(t *testing.T) {
	c := startShort(t)
	conn, err := net.Dial("tcp", c.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "collector"},
		{":path", "/" + coltracepb.TraceService_ServiceDesc.ServiceName + "/Export"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// gRPC's message prefix: not compressed, 1,000 bytes long; then 10 of them.
	if err := fr.WriteData(1, false, append([]byte{0, 0, 0, 0x03, 0xe8}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	closedAfter(t, conn, start, short.age)
}

// closedAfter checks that the server closes conn, written to since start, once the timeout
// after has passed (it is the timeout that closes it, not an error) and within 10 s.
// Whatever the server sends before (a 400, its HTTP/2 frames) is read and dropped.
func closedAfter(t *testing.T, conn net.Conn, start time.Time, after time.Duration) {
	t.Helper()
	const patience = 10 * time.Second
	if err := conn.SetReadDeadline(start.Add(patience)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, conn)
	took := time.Since(start)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("still open after %s (timeout %s)", patience, after)
	}
	if took < after*9/10 {
		t.Errorf("closed after %s, before its timeout of %s (err %v)", took, after, err)
	}
}
