package tracecollect

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// OTLP/JSON differs from protobuf's canonical JSON in one way that matters here: trace and
// span IDs are hex strings, not base64 (the OTLP specification's "JSON Protobuf Encoding").
// Enums are integers and 64-bit integers decimal strings, which protojson can be told or
// already does. These helpers convert the IDs on the way in and out.

// idFields are the JSON fields holding trace or span IDs (spans, links, log records).
var idFields = map[string]bool{"traceId": true, "spanId": true, "parentSpanId": true}

var marshalOptions = protojson.MarshalOptions{UseEnumNumbers: true}

// MarshalJSON encodes m as OTLP/JSON.
func MarshalJSON(m proto.Message) ([]byte, error) {
	b, err := marshalOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	return recodeIDs(b, base64ToHex)
}

// UnmarshalJSON decodes OTLP/JSON into m, ignoring unknown fields.
func UnmarshalJSON(b []byte, m proto.Message) error {
	b, err := recodeIDs(b, hexToBase64)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}

// UnmarshalTraces decodes OTLP/JSON traces as the query API returns them: a TracesData,
// or Jaeger's envelope {"result": TracesData}.
func UnmarshalTraces(b []byte) (*tracepb.TracesData, error) {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(b, &env); err == nil && len(env.Result) > 0 {
		b = env.Result
	}
	td := &tracepb.TracesData{}
	if err := UnmarshalJSON(b, td); err != nil {
		return nil, fmt.Errorf("OTLP/JSON traces: %w", err)
	}
	return td, nil
}

func recodeIDs(b []byte, conv func(string) (string, error)) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if err := walkIDs(v, conv); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func walkIDs(v any, conv func(string) (string, error)) error {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && idFields[k] {
				c, err := conv(s)
				if err != nil {
					return fmt.Errorf("%s %q: %w", k, s, err)
				}
				x[k] = c
				continue
			}
			if err := walkIDs(e, conv); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := walkIDs(e, conv); err != nil {
				return err
			}
		}
	}
	return nil
}

func base64ToHex(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func hexToBase64(s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
