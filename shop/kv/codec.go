package kv

import (
	"bytes"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Encode returns the JSON of a record (a pointer to one saves a copy when the record is on
// the heap already), as every context writes its values to a bucket and
// its events to the bus; Decode reads it back. They use the JSON v2 implementation
// (github.com/go-json-experiment/json), which the checkout's profile justifies: encoding/json
// was a sixth of a checkout's CPU and its largest source of allocations, and v2 decodes the
// shop's records in about a third of the time with a fraction of the allocations.
//
// The encoding reads what encoding/json wrote, and encoding/json reads what it writes, so
// stores written by earlier versions stay readable (TestCodecReadsEncodingJSON): field names
// are the records' tags, matched exactly (the records were always written with them); a nil
// slice or map is written as null, as encoding/json does, so that it reads back nil; strings that are
// not UTF-8 are written as they are rather than refused, as a record of whatever a user typed
// must never fail to be written; and a record's keys are its own, so no duplicate names are
// looked for. Map keys come out in no fixed order: nothing hashes or compares a record's bytes
// (orders' request hash keeps encoding/json, see orders.requestHash).
func Encode(v any) ([]byte, error) { return json.Marshal(v, encodeOptions) }

// Decode reads a record Encode (or encoding/json) wrote into v, a pointer. Members v has no
// field for are skipped, as encoding/json does: an older process reads a newer record.
func Decode(data []byte, v any) error { return json.Unmarshal(data, v, decodeOptions) }

// The options Encode and Decode pass, built once: joining them on every call would allocate.
var (
	encodeOptions = json.JoinOptions(jsontext.AllowInvalidUTF8(true), json.FormatNilSliceAsNull(true), json.FormatNilMapAsNull(true))
	decodeOptions = json.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
)

// Buffer holds a record's JSON, written by EncodeBuffer into a buffer taken from a pool,
// until Free gives the buffer back. It is for what a write sends: a Bucket copies the value
// it writes before returning (and the bus the event it publishes), so one buffer serves one
// write after another. Encode instead copies its output out of json's own buffer into a new
// slice each time: one allocation every write, and a checkout writes about fifteen records.
type Buffer struct{ b bytes.Buffer }

// maxPooledBuffer bounds the buffers the pool keeps: the shop's records are far smaller (a
// saga record is under 1 KB); a larger one is let go rather than pinned.
const maxPooledBuffer = 64 << 10

var buffers = sync.Pool{New: func() any { return new(Buffer) }}

// EncodeBuffer returns the JSON of v as Encode writes it, in a pooled Buffer that the
// caller must Free once the bytes are no longer used (after the write that sends them
// returned). As with Encode, a pointer saves json a copy of the record.
func EncodeBuffer(v any) (*Buffer, error) {
	b := buffers.Get().(*Buffer)
	b.b.Reset()
	if err := json.MarshalWrite(&b.b, v, encodeOptions); err != nil {
		b.Free()
		return nil, err
	}
	return b, nil
}

// Bytes returns the encoded record: valid until Free.
func (b *Buffer) Bytes() []byte { return b.b.Bytes() }

// Free gives the buffer back to the pool; b and its bytes must not be used afterwards.
func (b *Buffer) Free() {
	if b.b.Cap() > maxPooledBuffer {
		return
	}
	buffers.Put(b)
}
