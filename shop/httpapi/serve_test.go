package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// TestServeRefusesWithProblems: the requests net/http refuses before any handler sees them
// are answered 400 with a problem document, as API.md has every error answered, where the
// server's own answers are plain text and some of them 501 or 505; a request it reads is
// answered by the handler, untouched, on a connection that stays open.
func TestServeRefusesWithProblems(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- httpapi.Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8") // what a refusal had
			w.Header().Set("Connection", "close")
			io.WriteString(w, "served "+r.URL.Path)
		}), slog.New(slog.DiscardHandler), time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	for _, c := range []struct {
		name, request, detail string
	}{
		{"garbage", "HELLO\r\n\r\n", "malformed request line or headers"},
		{"no host", "GET /healthz HTTP/1.1\r\n\r\n", "missing required host header"},
		{"transfer encoding", "POST /v1/checkout HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer encoding"},
		{"protocol version", "GET /healthz HTTP/2.0\r\nHost: shop\r\n\r\n", "unsupported protocol version"},
		{"headers too large", "GET /healthz HTTP/1.1\r\nHost: shop\r\nX-Big: " + strings.Repeat("a", http.DefaultMaxHeaderBytes+8192) + "\r\n\r\n", "request header fields too large"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := roundTrip(t, ln.Addr().String(), c.request)
			defer resp.Body.Close()
			var p httpapi.Problem
			dec := json.NewDecoder(resp.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("%d %s: body: %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
			}
			want := httpapi.Problem{Type: httpapi.ProblemTypePrefix + httpapi.CodeInvalidArgument, Title: "Invalid argument", Status: 400,
				Detail: "request refused before it was read: " + c.detail}
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" || p != want {
				t.Errorf("%d %s %+v, want 400 application/problem+json %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p, want)
			}
			// Trace headers, as on every answer: of a span recorded nowhere (flags 00).
			tr, xr := resp.Header.Get(httpapi.TraceResponseHeader), resp.Header.Get(httpapi.AmznTraceIDHeader)
			if !traceResponse0.MatchString(tr) || !amznTraceID0.MatchString(xr) || !resp.Close {
				t.Errorf("traceresponse %q, X-Amzn-Trace-Id %q, closing %v: want an unsampled span's, and the connection closed", tr, xr, resp.Close)
			}
		})
	}

	// A request the server reads is the handler's to answer, whatever its headers say.
	resp := roundTrip(t, ln.Addr().String(), "GET /v1/products HTTP/1.1\r\nHost: shop\r\n\r\n")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "served /v1/products" {
		t.Errorf("%d %q %v, want 200 from the handler", resp.StatusCode, body, err)
	}
}

// TestServeAnswersABodyThatDoesNotArrive: a client that announces a body and sends only part
// of it, or a chunked body that stops, has its 400 once the body timeout has passed (before,
// the connection closed without an answer: the server's read and write deadlines fell
// together), with a detail that names no socket; one that announces a body over the limit
// and sends nothing has its 413 without waiting out the body timeout.
func TestServeAnswersABodyThatDoesNotArrive(t *testing.T) {
	serveWith := func(t *testing.T, bodyTimeout time.Duration) string {
		cfg := memoryConfig(t)
		cfg.BodyTimeout = bodyTimeout
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		served := make(chan error, 1)
		go func() { served <- httpapi.Serve(ctx, ln, httpapi.New(cfg), slog.New(slog.DiscardHandler), time.Second) }()
		t.Cleanup(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
		return ln.Addr().String()
	}
	const item = `{"product_id":"sku-0001","quantity":1}`
	head := "POST /v1/carts/u-slow/items HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
	problem := func(t *testing.T, resp *http.Response, status int, code string) httpapi.Problem {
		t.Helper()
		defer resp.Body.Close()
		var p httpapi.Problem
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != status || p.Type != httpapi.ProblemTypePrefix+code {
			t.Fatalf("%d %+v (%v), want %d %s", resp.StatusCode, p, err, status, code)
		}
		return p
	}

	t.Run("short", func(t *testing.T) {
		addr := serveWith(t, 300*time.Millisecond)
		for name, request := range map[string]string{
			"declared": head + "Content-Length: 100\r\n\r\n" + item,
			"chunked":  head + "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"pro\r\n",
		} {
			p := problem(t, roundTrip(t, addr, request), http.StatusBadRequest, httpapi.CodeInvalidArgument)
			if want := "the request body did not arrive in full within 300ms"; p.Detail != want {
				t.Errorf("%s: detail %q, want %q", name, p.Detail, want)
			}
		}
	})
	t.Run("too large", func(t *testing.T) {
		// The default body timeout (15 s) is past roundTrip's deadline (10 s): the answer
		// comes after the drain's second of silence.
		addr := serveWith(t, 0)
		problem(t, roundTrip(t, addr, head+"Content-Length: 99999999999\r\n\r\n{}"), http.StatusRequestEntityTooLarge, httpapi.CodePayloadTooLarge)
	})
}

// roundTrip sends request as written on a new connection to addr and reads the answer.
func roundTrip(t *testing.T, addr, request string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	return resp
}
