// Package xraytest is a fake X-Ray daemon for tests: a UDP listener on 127.0.0.1 that keeps
// every datagram sent to it and checks each against the daemon's wire format and AWS's
// segment document schema (written down in testdata).
package xraytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/xray"
)

// Daemon is a fake X-Ray daemon.
type Daemon struct {
	pc   net.PacketConn
	done chan struct{}

	mu   sync.Mutex
	docs []Document
}

// Document is one datagram received: the segment document and what was wrong with it.
type Document struct {
	Raw        []byte         // the document, after the header line
	Fields     map[string]any // the document decoded (nil if it is not JSON)
	Violations []error        // header and schema violations; none for a good document
}

// NewDaemon listens on 127.0.0.1 (a free port) until tb ends.
func NewDaemon(tb testing.TB) *Daemon {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	d := &Daemon{pc: pc, done: make(chan struct{})}
	go d.read()
	tb.Cleanup(func() {
		_ = pc.Close()
		<-d.done
	})
	return d
}

// Addr is the daemon's address, for AWS_XRAY_DAEMON_ADDRESS.
func (d *Daemon) Addr() string { return d.pc.LocalAddr().String() }

func (d *Daemon) read() {
	defer close(d.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		d.mu.Lock()
		d.docs = append(d.docs, parse(slices.Clone(buf[:n])))
		d.mu.Unlock()
	}
}

func parse(b []byte) Document {
	var doc Document
	body, ok := bytes.CutPrefix(b, []byte(xray.Header))
	if !ok {
		doc.Raw = b
		doc.Violations = append(doc.Violations, fmt.Errorf("datagram does not start with the header %q", xray.Header))
		return doc
	}
	doc.Raw = body
	doc.Violations = append(doc.Violations, Validate(body)...)
	_ = json.Unmarshal(body, &doc.Fields)
	return doc
}

// Documents returns what was received so far.
func (d *Daemon) Documents() []Document {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.docs)
}

// WaitFor polls until at least n documents arrived, or fails after timeout.
func (d *Daemon) WaitFor(tb testing.TB, n int, timeout time.Duration) []Document {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		docs := d.Documents()
		if len(docs) >= n {
			return docs
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the X-Ray daemon received %d documents in %s, want %d", len(docs), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Violations returns every violation of every document, each naming the document.
func Violations(docs []Document) error {
	var errs []error
	for i, d := range docs {
		for _, v := range d.Violations {
			errs = append(errs, fmt.Errorf("document %d %s: %w", i, d.Raw, v))
		}
	}
	return errors.Join(errs...)
}
