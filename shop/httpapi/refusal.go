package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// net/http refuses some requests before any handler sees them, and answers them itself in
// plain text: a request it cannot parse (400), headers over its limit (431), a transfer
// encoding other than chunked (501), a protocol version other than HTTP/1.x (505). API.md
// promises a problem document for every error and a 2xx or 4xx whatever the input, and the
// server has no hook for these answers; it writes each in a single call straight to the
// connection, with headers no handler's response has (Content-Type before Connection: the
// server sorts a handler's headers). refusingListener's connections recognise that write and
// send the problem document instead: 400 invalid-argument, with the server's reason as the
// detail. The connection closes after it, as it would have.
//
// The request never reached the edge's tracing, and no trace of it is recorded: its answer's
// trace headers name an unsampled span made up for it (namedSpan), as every answer carries
// them (API.md).
type refusingListener struct{ net.Listener }

func (l refusingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return refusingConn{c}, nil
}

// refusingConn is a connection of refusingListener.
type refusingConn struct{ net.Conn }

// refusalHeaders follow the status line of every answer net/http writes itself
// (net/http's errorHeaders).
const refusalHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// refusalWindow bounds how far into a write the headers are looked for: past the longest
// status line net/http writes itself, short of what it costs to search a whole response.
const refusalWindow = 192

func (c refusingConn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.1 ")) {
		return c.Conn.Write(p)
	}
	i := bytes.Index(p[:min(len(p), refusalWindow)], []byte(refusalHeaders))
	if i < 0 {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(refusal(string(p[i+len(refusalHeaders):]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// refusal is the response that replaces net/http's own answer whose body is text.
func refusal(text string) []byte {
	// The body repeats the status line, then a reason: "400 Bad Request: missing required
	// Host header", "Unsupported transfer encoding", "431 Request Header Fields Too Large".
	reason := text
	if _, after, ok := strings.Cut(text, ": "); ok {
		reason = after
	} else if len(text) > 4 && text[3] == ' ' && strings.Trim(text[:3], "0123456789") == "" {
		reason = text[4:]
	}
	reason = strings.ToLower(reason)
	if reason == "bad request" {
		reason = "malformed request line or headers"
	}
	p := newProblem(CodeInvalidArgument, "request refused before it was read: "+reason)
	body, _ := json.Marshal(p) // four strings and an int: it cannot fail
	h := http.Header{"Content-Type": {"application/problem+json"}, "Content-Length": {strconv.Itoa(len(body))}, "Connection": {"close"}}
	setTraceHeaders(h, namedSpan(trace.SpanContext{}))
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\n", p.Status, http.StatusText(p.Status))
	h.Write(&out) // to a buffer: it cannot fail
	out.WriteString("\r\n")
	out.Write(body)
	return out.Bytes()
}
