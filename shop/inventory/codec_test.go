package inventory

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// TestStockDocReadsEveryForm: a stock document reads back through kv.Decode, also one
// written by encoding/json, and one of the form before holds carried their reservation (a
// bare quantity).
func TestStockDocReadsEveryForm(t *testing.T) {
	until := time.Date(2026, 12, 4, 23, 30, 0, 0, time.UTC)
	doc := stockDoc{Available: 7, Sold: 3, Holds: map[string]hold{
		"tok-1": {Quantity: 2, ID: "res-1", Until: until},
		"tok-2": {Quantity: 1},
	}}
	encoded, err := kv.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"kv.Encode": encoded, "encoding/json": legacy} {
		var got stockDoc
		if err := kv.Decode(data, &got); err != nil {
			t.Fatalf("%s: Decode(%s): %v", name, data, err)
		}
		if !reflect.DeepEqual(got, doc) {
			t.Errorf("%s: Decode(%s) = %+v, want %+v", name, data, got, doc)
		}
	}
	var old stockDoc
	if err := kv.Decode([]byte(`{"available":5,"sold":0,"holds":{"tok-3":4}}`), &old); err != nil {
		t.Fatalf("bare quantity: %v", err)
	}
	if want := (hold{Quantity: 4}); old.Holds["tok-3"] != want || old.Available != 5 {
		t.Errorf("bare quantity read as %+v", old)
	}
	if err := kv.Decode([]byte(`{"holds":{"tok-3":"4"}}`), &old); err == nil {
		t.Error("a hold that is a string decoded")
	}
}
