package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"slices"
	"testing"
)

// expectJSON fails t unless r has status and a JSON body that decodes into v exactly (no
// unknown field, nothing after it).
func expectJSON(t testing.TB, what string, r *Response, status int, v any) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %s, want status %d", what, r, status)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, r.Header.Get("Content-Type"))
	}
	if err := decodeExact(r.Body, v); err != nil {
		t.Fatalf("%s: %v in %s", what, err, r.Body)
	}
}

// decodeExact decodes data into v, rejecting unknown fields and trailing data.
func decodeExact(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	if dec.More() {
		return fmt.Errorf("decode %T: data after the JSON value", v)
	}
	return nil
}

// ExpectProblem fails t unless r is a problem document of status and code (the last part
// of its type URL), with exactly the fields of RFC 9457 that API.md shows. It returns the
// problem.
func ExpectProblem(t testing.TB, r *Response, status int, code string) Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("got %s, want status %d (%s)", r, status, code)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/problem+json" {
		t.Fatalf("status %d: Content-Type %q, want application/problem+json", status, r.Header.Get("Content-Type"))
	}
	ExpectKeys(t, "problem", r.Body, "type", "title", "status", "detail")
	var p Problem
	if err := decodeExact(r.Body, &p); err != nil {
		t.Fatalf("problem: %v in %s", err, r.Body)
	}
	if p.Type != ProblemTypePrefix+code || p.Status != status || p.Title == "" || p.Detail == "" {
		t.Fatalf("problem %+v, want type %s, status %d, a title and a detail", p, ProblemTypePrefix+code, status)
	}
	return p
}

// ExpectKeys fails t unless the JSON object in data has exactly the keys want.
func ExpectKeys(t testing.TB, what string, data []byte, want ...string) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatalf("%s: not a JSON object: %v in %s", what, err, data)
	}
	got := slices.Sorted(maps.Keys(obj))
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Fatalf("%s: keys %v, want exactly %v", what, got, want)
	}
}

// rawField returns the raw JSON of an object's field.
func rawField(t testing.TB, data []byte, field string) []byte {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatalf("not a JSON object: %v in %s", err, data)
	}
	v, ok := obj[field]
	if !ok {
		t.Fatalf("no field %q in %s", field, data)
	}
	return v
}

// elements returns the raw elements of a JSON array, failing t on anything else (null too).
func elements(t testing.TB, data []byte) []json.RawMessage {
	t.Helper()
	var list []json.RawMessage
	if err := json.Unmarshal(data, &list); err != nil || list == nil {
		t.Fatalf("not a JSON array: %s", data)
	}
	return list
}

func firstElement(t testing.TB, data []byte) []byte {
	t.Helper()
	list := elements(t, data)
	if len(list) == 0 {
		t.Fatalf("empty array")
	}
	return list[0]
}

// expectEmptyList fails t unless field of the object in data is [] (not null, not absent).
func expectEmptyList(t testing.TB, data []byte, field string) {
	t.Helper()
	if list := elements(t, rawField(t, data, field)); len(list) != 0 {
		t.Errorf("%s: %d elements, want an empty list", field, len(list))
	}
}
