package tracecollect

import (
	"errors"
	"fmt"
	"reflect"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// MaxDecodedBytes bounds the memory one OTLP request may take once decoded, as estimated
// from its encoding before it is decoded; a request over it is refused like one over
// MaxRequestBytes. A request's decoded size is no function of its length: an empty span is
// 2 bytes of protobuf and 288 in memory, so 8 MiB of them would take 1.2 GiB (measured:
// 4,194,272 empty spans in an ExportTraceServiceRequest of 8 MiB, 1,177 MiB live once
// decoded), and 8 MiB of "{}," in OTLP/JSON 790 MiB. Spans like the shop's, 5 to 30 short
// attributes, take 5 to 7 times their protobuf encoding, and decodeCosts counts 1.2 to 1.3
// times what they take: a request of MaxRequestBytes of them fits.
const MaxDecodedBytes = 10 * MaxRequestBytes

// errTooLarge is a request that would take over MaxDecodedBytes decoded.
var errTooLarge = errors.New("request too large")

// maxDepth is protobuf's own limit of nested messages (proto.UnmarshalOptions'
// RecursionLimit default): deeper, proto.Unmarshal fails anyway.
const maxDepth = 10_000

// Costs of a decoded message beyond the struct of its type, in bytes: the pointer that holds
// it (a field, or an element of a repeated field's slice, which append grows by up to
// twice), and the wrapper struct of a oneof field (AnyValue's value).
const (
	pointerBytes = 16
	oneofBytes   = 16
)

// decodeCosts estimates the memory proto.Unmarshal takes for the OTLP requests, from their
// encoding. Read-only once built.
type decodeCosts struct {
	structBytes map[protoreflect.FullName]int // each message type's Go struct, rounded up
}

// newDecodeCosts measures the Go structs of every message type reachable from mds.
func newDecodeCosts(mds ...protoreflect.MessageDescriptor) *decodeCosts {
	d := &decodeCosts{structBytes: map[protoreflect.FullName]int{}}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if _, ok := d.structBytes[md.FullName()]; ok {
			return
		}
		size := 64 // a type the registry lacks: about the size of an OTLP message with a few fields
		if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
			size = int(reflect.TypeOf(mt.Zero().Interface()).Elem().Size())
		}
		d.structBytes[md.FullName()] = (size + 15) &^ 15 // the allocator's size classes are multiples of 16 up to 256
		fields := md.Fields()
		for i := range fields.Len() {
			if m := fields.Get(i).Message(); m != nil {
				visit(m)
			}
		}
	}
	for _, md := range mds {
		visit(md)
	}
	return d
}

// check returns errTooLarge if b, a message of type md, would take over MaxDecodedBytes once
// decoded, and an error if b is malformed. It stops reading as soon as the estimate passes
// the bound.
func (d *decodeCosts) check(b []byte, md protoreflect.MessageDescriptor) error {
	budget := MaxDecodedBytes
	return d.walk(b, md, 0, &budget)
}

// walk takes from budget what b, a message of type md, costs decoded.
func (d *decodeCosts) walk(b []byte, md protoreflect.MessageDescriptor, depth int, budget *int) error {
	if depth > maxDepth {
		return fmt.Errorf("messages nested over %d deep", maxDepth)
	}
	*budget -= d.structBytes[md.FullName()]
	fields := md.Fields()
	for len(b) > 0 {
		if *budget < 0 {
			return errTooLarge
		}
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd != nil && fd.ContainingOneof() != nil {
			*budget -= oneofBytes
		}
		if typ == protowire.BytesType && fd != nil && fd.Message() != nil {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			*budget -= pointerBytes
			if err := d.walk(v, fd.Message(), depth+1, budget); err != nil {
				return err
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case fd == nil:
			*budget -= n // an unknown field is kept, as it came
		case typ == protowire.BytesType && (fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind):
			*budget -= n + pointerBytes // copied, with its header if in a slice
		case typ == protowire.BytesType:
			*budget -= 8 * n // a packed run of scalars: at most an element a byte, each up to 8
		case fd.IsList():
			*budget -= 8 // an element of a repeated scalar
		}
	}
	if *budget < 0 {
		return errTooLarge
	}
	return nil
}

// jsonObjectBytes is what one JSON object of an OTLP/JSON request may take while it is
// decoded (UnmarshalJSON): the map it is first read into (about 215 bytes an object,
// measured) or the largest OTLP message it becomes (a Span, 288), whichever is alive.
const jsonObjectBytes = 320

// checkJSON returns errTooLarge if b, OTLP/JSON, could take over MaxDecodedBytes while it is
// decoded: every object counted as jsonObjectBytes, every byte as two (the text, and the
// text again with its IDs recoded). Braces inside strings do not count; b need not be
// valid JSON, the decoder judges that.
func checkJSON(b []byte) error {
	cost := 2 * len(b)
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == '{':
			if cost += jsonObjectBytes; cost > MaxDecodedBytes {
				return errTooLarge
			}
		}
	}
	if cost > MaxDecodedBytes {
		return errTooLarge
	}
	return nil
}

// boundedCodec is gRPC's protobuf codec, which first refuses a message that would take over
// MaxDecodedBytes decoded (grpc-go answers a codec's error with INTERNAL, the message
// saying why; OTLP clients do not retry it).
type boundedCodec struct {
	encoding.CodecV2
	costs *decodeCosts
}

func newBoundedCodec(costs *decodeCosts) boundedCodec {
	return boundedCodec{CodecV2: encoding.GetCodecV2(grpcproto.Name), costs: costs}
}

func (c boundedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(proto.Message); ok {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		err := c.costs.check(buf.ReadOnlyData(), m.ProtoReflect().Descriptor())
		buf.Free()
		if errors.Is(err, errTooLarge) {
			return fmt.Errorf("message would take over %d bytes decoded", MaxDecodedBytes)
		}
		if err != nil {
			return err
		}
	}
	return c.CodecV2.Unmarshal(data, v)
}
