package kv_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

type codecInner struct {
	Name string `json:"name"`
	N    int64  `json:"n"`
}

// codecRecord has every shape the shop's records use: an embedded struct, times, slices
// (nil and not), a map of structs, omitted fields and a field not in JSON.
type codecRecord struct {
	codecInner
	At      time.Time             `json:"at"`
	Later   time.Time             `json:"later,omitzero"`
	Lines   []codecInner          `json:"lines"`
	Tags    []string              `json:"tags,omitempty"`
	ByToken map[string]codecInner `json:"by_token,omitempty"`
	Owner   string                `json:"owner,omitempty"`
	rev     uint64
}

// TestCodecReadsEncodingJSON: records written by encoding/json (every store written before
// kv.Encode) read back the same through kv.Decode, and what kv.Encode writes reads back the
// same through encoding/json (a process of an earlier version sharing the store).
func TestCodecReadsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 4, 23, 40, 1, 123456789, time.UTC)
	cases := map[string]codecRecord{
		"zero": {},
		"full": {
			codecInner: codecInner{Name: "sku-0001", N: 3},
			At:         at, Later: at.Add(time.Hour),
			Lines:   []codecInner{{Name: "a", N: 1}, {Name: "é \u2028 <b>", N: -2}},
			Tags:    []string{"x"},
			ByToken: map[string]codecInner{"t1": {Name: "h", N: 9}, "t2": {}},
			Owner:   "own-1",
		},
		"not utf-8": {codecInner: codecInner{Name: "bad \xff byte"}},
	}
	for name, rec := range cases {
		t.Run(name, func(t *testing.T) {
			v1, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			var fromV1 codecRecord
			if err := kv.Decode(v1, &fromV1); err != nil {
				t.Fatalf("Decode(%s): %v", v1, err)
			}
			var viaV1 codecRecord
			if err := json.Unmarshal(v1, &viaV1); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromV1, viaV1) {
				t.Errorf("Decode(%s) = %+v, encoding/json reads %+v", v1, fromV1, viaV1)
			}

			v2, err := kv.Encode(rec)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			var fromV2 codecRecord
			if err := json.Unmarshal(v2, &fromV2); err != nil {
				t.Fatalf("encoding/json reading %s: %v", v2, err)
			}
			if !reflect.DeepEqual(fromV2, viaV1) {
				t.Errorf("encoding/json reads Encode's %s as %+v, want %+v", v2, fromV2, viaV1)
			}

			// EncodeBuffer writes what Encode writes, also into a buffer used before.
			for range 2 {
				buf, err := kv.EncodeBuffer(&rec)
				if err != nil {
					t.Fatalf("EncodeBuffer: %v", err)
				}
				var fromBuf codecRecord
				if err := json.Unmarshal(buf.Bytes(), &fromBuf); err != nil || !reflect.DeepEqual(fromBuf, viaV1) {
					t.Errorf("encoding/json reads EncodeBuffer's %s as %+v (%v), want %+v", buf.Bytes(), fromBuf, err, viaV1)
				}
				buf.Free()
			}
		})
	}
}

// TestCodecSkipsUnknownMembers: a record written by a newer version, with a field this one
// does not know, still reads; a value that is not JSON of the type does not.
func TestCodecSkipsUnknownMembers(t *testing.T) {
	var rec codecRecord
	if err := kv.Decode([]byte(`{"name":"a","n":1,"added_later":{"x":[1,2]}}`), &rec); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if rec.Name != "a" || rec.N != 1 {
		t.Errorf("Decode = %+v", rec)
	}
	for _, bad := range []string{`{"name":1}`, `{"name":"a"`, `[]`, `{"n":"1"}`} {
		if err := kv.Decode([]byte(bad), &rec); err == nil {
			t.Errorf("Decode(%s) = nil error", bad)
		}
	}
}
