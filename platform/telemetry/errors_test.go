package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// OpenTelemetry's errors reach the log, at most one a minute, each saying how many it held
// back.
func TestQuietErrors(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1_700_000_000, 0)
	h := quietErrors(slog.New(slog.NewJSONHandler(&out, nil)), func() time.Time { return clock }, time.Minute)
	step := func(d time.Duration, n int) {
		for range n {
			h.Handle(errors.New("export failed"))
			clock = clock.Add(d)
		}
	}
	step(time.Second, 90) // 0 s logged, 1..59 held, 60 s logged (59 held), 61..89 held
	clock = clock.Add(time.Hour)
	step(0, 1) // logged, 29 held
	type line struct {
		Err  string `json:"err"`
		Held int    `json:"errors_held_back"`
	}
	var lines []line
	dec := json.NewDecoder(&out)
	for dec.More() {
		var l line
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 3 || lines[0].Held != 0 || lines[1].Held != 59 || lines[2].Held != 29 || lines[2].Err != "export failed" {
		t.Fatalf("log: %+v", lines)
	}
}
