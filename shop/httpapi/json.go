package httpapi

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Request bodies that are not a domain type as they are.
type (
	// productBody is a Product without its id, which the admin PUT takes from the path.
	productBody struct {
		Name        string      `json:"name"`
		Description string      `json:"description"`
		Price       money.Money `json:"price"`
		WeightGrams int64       `json:"weight_grams"`
	}
	// stockBody is the admin inventory POST.
	stockBody struct {
		Add int64 `json:"add"`
	}
)

// schemas are the shapes of the request bodies, built once from their Go types.
type schemas struct {
	cartItem, checkout, product, stock *schema
}

func newSchemas() schemas {
	return schemas{
		cartItem: bodySchema(reflect.TypeFor[cart.Item]()),
		checkout: bodySchema(reflect.TypeFor[orders.CheckoutRequest]()),
		product:  bodySchema(reflect.TypeFor[productBody]()),
		stock:    bodySchema(reflect.TypeFor[stockBody]()),
	}
}

// bodySchema returns the schema of a request body of type t, its fields' paths set.
func bodySchema(t reflect.Type) *schema {
	s := schemaOf(t)
	s.setPaths("")
	return s
}

// schema is the shape of a JSON object a body must have: its field names exactly as the
// API spells them, every one of them present and none null, and the schema of each field
// that is itself an object (nil for any other value, whose type encoding/json checks).
//
// It exists because encoding/json matches field names case-insensitively and lets a later
// duplicate key win, so {"Quantity": 5} or {"quantity": 1, "quantity": 99} would pass its
// DisallowUnknownFields; API.md rejects unknown fields, and a field spelt otherwise is one.
type schema struct {
	index    map[string]int // a field's position in names and children
	names    []string       // the field names in the type's order, for messages that name the first missing one
	paths    []string       // the fields' paths from the body ("address.city"), for messages: made once, not per request
	children []*schema
}

// setPaths sets the paths of s's fields and of its children's, s being at path.
func (s *schema) setPaths(path string) {
	if s == nil {
		return
	}
	s.paths = make([]string, len(s.names))
	for i, name := range s.names {
		s.paths[i] = joinPath(path, name)
		s.children[i].setPaths(s.paths[i])
	}
}

// maxFields bounds a schema's fields: checkShape keeps the ones seen as bits of a uint64.
const maxFields = 64

// schemaOf returns the schema of a struct type, nil for any other type.
func schemaOf(t reflect.Type) *schema {
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) ||
		reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return nil
	}
	s := &schema{index: map[string]int{}}
	add := func(name string, child *schema) {
		if len(s.names) == maxFields {
			panic(fmt.Sprintf("httpapi: %s has more than %d JSON fields", t, maxFields)) // a bug in a request type, found at New
		}
		s.index[name] = len(s.names)
		s.names = append(s.names, name)
		s.children = append(s.children, child)
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
		case f.Anonymous && name == "" && schemaOf(f.Type) != nil:
			embedded := schemaOf(f.Type)
			for i, k := range embedded.names {
				add(k, embedded.children[i])
			}
		case name == "":
			add(f.Name, schemaOf(f.Type))
		default:
			add(name, schemaOf(f.Type))
		}
	}
	return s
}

// decodeBody reads the whole request body and decodes it into dst, which must have the shape
// s. The body's length is known and within MaxBodyBytes here: edge answers every other
// request for every route.
func (a *api) decodeBody(r *http.Request, s *schema, dst any) error {
	// The body is read into a response buffer of the pool: decoding copies what it keeps.
	b := a.buffers.Get().(*jsonBuffer)
	defer a.putBuffer(b)
	b.buf.Reset()
	if _, err := b.buf.ReadFrom(r.Body); err != nil {
		return validation.Errorf("", "%s", a.bodyReadError(err))
	}
	return decodeJSON(b.buf.Bytes(), s, dst)
}

// drainMax bounds what is read and thrown away of a body too large before its 413 goes out.
// A client that sends its whole body before it reads the response (Python's http.client,
// for one) would otherwise see its connection reset instead of the 413: the server would
// close it with the rest of the body unread. Past drainMax the server closes on it anyway.
const drainMax = 8 << 20

// drainIdle is how long the drain waits for more of a body: a client that stops sending
// (one that announced a length it never sends) has its 413 after that much silence, not
// after the whole body timeout.
const drainIdle = time.Second

// drain reads and throws away up to drainMax of body, for as long as the client keeps
// sending, within the body timeout.
func (a *api) drain(w http.ResponseWriter, body io.Reader) {
	r := &idleReader{r: body, rc: http.NewResponseController(w), end: time.Now().Add(a.bodyWait)}
	_, _ = io.Copy(io.Discard, io.LimitReader(r, drainMax))
}

// idleReader reads r with a read deadline drainIdle ahead of each read, never past end.
type idleReader struct {
	r   io.Reader
	rc  *http.ResponseController
	end time.Time
}

func (ir *idleReader) Read(p []byte) (int, error) {
	deadline := time.Now().Add(drainIdle)
	if deadline.After(ir.end) {
		deadline = ir.end
	}
	_ = ir.rc.SetReadDeadline(deadline)
	return ir.r.Read(p)
}

// bodyReadError is the detail of a body that could not be read, in the client's terms: the
// error of a read says which sockets it read, the server's address among them.
func (a *api) bodyReadError(err error) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("the request body did not arrive in full within %s", a.bodyWait)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the request body ended before the length it announced"
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return "the connection failed while the request body was read"
	}
	return "could not read the request body: " + err.Error()
}

// shapeOptions let a name given twice through, which checkShape reports itself, naming the
// field. A string that is not UTF-8 is malformed JSON (RFC 8259 wants UTF-8), refused here:
// encoding/json, which decodes the body after the shape check, would put U+FFFD in its place,
// and "u\xff" would become the valid user ID "u\uFFFD", someone else, where API.md
// wants the ID that breaks its rule refused.
var shapeOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true)}

// shapeReader is the shape check's token reader and its input, reused: a decoder costs
// kilobytes of buffers.
type shapeReader struct {
	body bytes.Reader
	dec  jsontext.Decoder
}

var shapeReaders = sync.Pool{New: func() any { return new(shapeReader) }}

// decodeJSON decodes body, one JSON object of shape s and nothing after it, into dst. Every
// failure is a validation error naming the field (or "" for the body as a whole).
//
// The shape is checked on jsontext's tokens (the JSON tokenizer of encoding/json/v2): it
// reads names and values without allocating, where encoding/json's Decoder.Token allocated
// for every value and every error its scanner raised at the end of one (about 150
// allocations of a cart add and a checkout's 2,600, and 1% of their CPU).
func decodeJSON(body []byte, s *schema, dst any) error {
	// First pass: the shape (an object, every field once, none unknown, none null).
	r := shapeReaders.Get().(*shapeReader)
	r.body.Reset(body)
	r.dec.Reset(&r.body, shapeOptions...)
	err := checkShape(&r.dec, s, "")
	if err == nil {
		if _, tailErr := r.dec.ReadToken(); tailErr != io.EOF {
			err = validation.Errorf("", "unexpected data after the JSON object")
		}
	}
	r.body.Reset(nil) // let go of body
	shapeReaders.Put(r)
	if err != nil {
		return err
	}
	// Second pass: the types. The names are the API's, exactly, each once: the shape said so.
	// JSON v2 decodes a valid body with a fraction of encoding/json's allocations (the bodies
	// of a cart add and a checkout: 4 allocations, from 29 with encoding/json and the paths
	// made per request, BenchmarkDecodeBody); a body it refuses is decoded again by
	// encoding/json, which decides and words the problem as clients have always read it.
	// Both accept the same bodies with the same values (FuzzDecodeAgrees).
	if jsonv2.Unmarshal(body, dst, decodeOptions) == nil {
		return nil
	}
	if err := json.Unmarshal(body, dst); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return validation.Errorf(te.Field, "must be %s, not a JSON %s", typeWord(te.Type), te.Value)
		}
		return validation.Errorf("", "malformed JSON: %v", err)
	}
	return nil
}

// checkShape reads the next JSON value from dec and checks it against s (nil: any value).
func checkShape(dec *jsontext.Decoder, s *schema, path string) error {
	kind := dec.PeekKind()
	if kind == 0 { // the end of the body, or a syntax error: ReadToken says which
		_, err := dec.ReadToken()
		if path == "" && err == io.EOF {
			return validation.Errorf("", "the request body must be a JSON object")
		}
		return malformed(err)
	}
	if kind == 'n' { // JSON null: encoding/json would leave the zero value in place
		if path == "" {
			return validation.Errorf("", "the request body must be a JSON object")
		}
		return validation.Errorf(path, "must not be null")
	}
	if s == nil {
		if err := dec.SkipValue(); err != nil {
			return malformed(err)
		}
		return nil
	}
	if kind != '{' {
		if path == "" {
			return validation.Errorf("", "the request body must be a JSON object")
		}
		return validation.Errorf(path, "must be a JSON object")
	}
	if _, err := dec.ReadToken(); err != nil {
		return malformed(err)
	}
	var seen uint64 // bit i: s.names[i]
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue()
		if err != nil {
			return malformed(err)
		}
		i, known := fieldIndex(s, name)
		if !known {
			return validation.Errorf(joinPath(path, unquote(name)), "unknown field")
		}
		if seen&(1<<i) != 0 {
			return validation.Errorf(s.paths[i], "given twice")
		}
		seen |= 1 << i
		if err := checkShape(dec, s.children[i], s.paths[i]); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing '}', or what stands in its place
		return malformed(err)
	}
	// Every field of a request body is required: a missing one would decode as its zero
	// value, and a zero can be valid (a price of 0, an empty description).
	for i, p := range s.paths {
		if seen&(1<<i) == 0 {
			return validation.Errorf(p, "is required")
		}
	}
	return nil
}

// fieldIndex finds the field whose name is the JSON string name (quotes and escapes
// included), without allocating unless the name has escapes.
func fieldIndex(s *schema, name jsontext.Value) (int, bool) {
	if raw := name[1 : len(name)-1]; bytes.IndexByte(raw, '\\') < 0 {
		i, ok := s.index[string(raw)] // no copy: the compiler looks the bytes up as they are
		return i, ok
	}
	i, ok := s.index[unquote(name)]
	return i, ok
}

// unquote returns the JSON string name as Go text.
func unquote(name jsontext.Value) string {
	b, err := jsontext.AppendUnquote(nil, name)
	if err != nil {
		return string(name) // not reached: the decoder checked the string
	}
	return string(b)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func malformed(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return validation.Errorf("", "malformed JSON: unexpected end of the body")
	}
	return validation.Errorf("", "malformed JSON: %v", err)
}

// typeWord names a Go type in JSON's terms, for messages.
func typeWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "another type"
	}
}

// jsonBuffer is a reusable response body and its encoder, so that a response costs no
// allocation of its own beyond what encoding the value needs.
type jsonBuffer struct {
	buf bytes.Buffer
	enc *json.Encoder
}

func newJSONBuffer() any {
	b := &jsonBuffer{}
	b.enc = json.NewEncoder(&b.buf)
	return b
}

// maxPooledBuffer keeps an occasional huge response from pinning its buffer forever.
const maxPooledBuffer = 256 << 10

// writeJSON writes v (a pointer, so that passing it does not allocate) as a JSON response.
func (a *api) writeJSON(w http.ResponseWriter, status int, v any) {
	a.write(w, status, "application/json", v)
}

// writeProblem writes a problem document.
func (a *api) writeProblem(w http.ResponseWriter, p Problem) {
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mitosis-admin"`)
	}
	a.write(w, p.Status, "application/problem+json", &p)
}

func (a *api) write(w http.ResponseWriter, status int, contentType string, v any) {
	b := a.buffers.Get().(*jsonBuffer)
	defer a.putBuffer(b)
	b.buf.Reset()
	if err := b.enc.Encode(v); err != nil {
		// Only a bug gets here (every response type encodes); say so rather than send half.
		a.log.Error("encode response", "err", err, "type", fmt.Sprintf("%T", v))
		p := newProblem(CodeInternal, "internal error")
		status, contentType = p.Status, "application/problem+json"
		b.buf.Reset()
		_ = b.enc.Encode(&p) // a Problem always encodes
	}
	// Both header values in one allocation (h.Set makes a slice for each), as setTraceHeaders.
	values := [2]string{contentType, strconv.Itoa(b.buf.Len())}
	h := w.Header()
	h["Content-Type"] = values[0:1:1]
	h["Content-Length"] = values[1:2:2]
	w.WriteHeader(status)
	_, _ = w.Write(b.buf.Bytes()) // a write error means the client is gone; nothing to tell it
}

// putBuffer returns b to the pool, unless an occasional huge body made it too large to keep.
func (a *api) putBuffer(b *jsonBuffer) {
	if b.buf.Cap() <= maxPooledBuffer {
		a.buffers.Put(b)
	}
}

// decodeOptions make JSON v2 read strings as encoding/json does: a string that is not UTF-8
// decodes with U+FFFD in place of its bad bytes.
var decodeOptions = jsontext.AllowInvalidUTF8(true)
