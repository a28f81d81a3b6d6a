package tracecollect

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// matchAttribute reports whether sp holds the tag key=value, as Jaeger v2's memory storage
// decides it (internal/storage/v2/memory/tenant.go, validSpan): a few keys name a field of
// the span, "resource.<key>" one of its resource's attributes, and any other key must be
// among the attributes of the span, its scope, its resource, one of its events or one of
// its links, its value written as a string equal to value.
func matchAttribute(sp storedSpan, key, value string) bool {
	span := sp.span
	switch key {
	case "error": // error=true: the span's status is ERROR; error=false: it is not
		want, err := strconv.ParseBool(value)
		return err == nil && want == (span.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR)
	case "span.status":
		return statusFromString(value) == span.GetStatus().GetCode()
	case "span.kind":
		return KindName(span.GetKind()) == strings.ToLower(value) && value != ""
	case "scope.name":
		return sp.scope.GetName() == value
	case "scope.version":
		return sp.scope.GetVersion() == value
	}
	if rk, ok := strings.CutPrefix(key, "resource."); ok {
		return hasAttribute(sp.resource.GetAttributes(), rk, value)
	}
	if hasAttribute(span.GetAttributes(), key, value) || hasAttribute(sp.scope.GetAttributes(), key, value) ||
		hasAttribute(sp.resource.GetAttributes(), key, value) {
		return true
	}
	for _, e := range span.GetEvents() {
		if hasAttribute(e.GetAttributes(), key, value) {
			return true
		}
	}
	for _, l := range span.GetLinks() {
		if hasAttribute(l.GetAttributes(), key, value) {
			return true
		}
	}
	return false
}

func statusFromString(s string) tracepb.Status_StatusCode {
	switch strings.ToUpper(s) {
	case "OK":
		return tracepb.Status_STATUS_CODE_OK
	case "ERROR":
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

func hasAttribute(kvs []*commonpb.KeyValue, key, value string) bool {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return valueString(kv.GetValue()) == value
		}
	}
	return false
}

// valueString writes v as OpenTelemetry's collector does (pcommon.Value.AsString): strings
// as they are, numbers and booleans as Go formats them, bytes in base64, arrays and
// key-value lists as JSON.
func valueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'f', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		b, err := json.Marshal(rawValue(v))
		if err != nil { // a NaN or an infinity inside: no JSON for it
			return ""
		}
		return string(b)
	}
	return ""
}

// rawValue is v as a Go value for encoding/json: a key-value list as a map, an array as a
// slice, bytes as []byte (base64).
func rawValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, len(x.ArrayValue.GetValues()))
		for i, e := range x.ArrayValue.GetValues() {
			out[i] = rawValue(e)
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = rawValue(kv.GetValue())
		}
		return out
	}
	return nil
}
