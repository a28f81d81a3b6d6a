package xray

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// IDGenerator makes the trace IDs X-Ray accepts: the first 4 bytes are the trace's start in
// epoch seconds (big-endian), the other 12 random; span IDs are 8 random bytes. X-Ray
// rejects a trace whose time part is more than 30 days old, so the IDs of the SDK's own
// generator (all random) cannot be exported to it. It implements sdktrace.IDGenerator.
//
// The random parts come from math/rand/v2's generator (ChaCha8, seeded from the system, safe
// for concurrent use): IDs must be unique and unguessable enough not to collide, and taking
// them from crypto/rand would cost a system call per span.
type IDGenerator struct {
	now func() time.Time
}

var _ sdktrace.IDGenerator = (*IDGenerator)(nil)

// NewIDGenerator returns a generator that stamps trace IDs with the current time.
func NewIDGenerator() *IDGenerator { return &IDGenerator{now: time.Now} }

// NewIDs returns a new trace ID and the ID of its first span.
func (g *IDGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	binary.BigEndian.PutUint32(tid[:4], uint32(g.now().Unix()))
	for {
		binary.BigEndian.PutUint32(tid[4:8], rand.Uint32())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
		// The time part is never zero after 1970, but a zero random part would make the ID
		// collide with every other generator's bad luck: draw again.
		if [12]byte(tid[4:]) != [12]byte{} {
			break
		}
	}
	return tid, g.NewSpanID(ctx, tid)
}

// NewSpanID returns a new span ID, never all zeros (which is invalid).
func (g *IDGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
