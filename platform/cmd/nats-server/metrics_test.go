package main

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// The server's figures, read on collection, follow what clients do: a connection and the
// messages it publishes show, and so does JetStream once it stores them.
func TestInstrumentReportsTheServersFigures(t *testing.T) {
	srv := natsjstest.Serve(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	reader := sdkmetric.NewManualReader()
	if err := instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), srv); err != nil {
		t.Fatal(err)
	}
	values := func() map[string]int64 { return telemetrytest.Values(t, reader) }
	before := values()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	const n = 25
	for range n {
		if _, err := js.Publish("t.x", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	after := values()
	if after["nats.connections"] != before["nats.connections"]+1 || after["nats.messages.received"] < before["nats.messages.received"]+n ||
		after["nats.received"] <= before["nats.received"] || after["nats.jetstream.storage.used"] <= 0 ||
		after["nats.jetstream.api.requests"] <= before["nats.jetstream.api.requests"] {
		t.Errorf("before %v\nafter %d publishes: %v", before, n, after)
	}
	// Names, units and kinds are what dashboards read: they stay as they are.
	telemetrytest.CheckInstruments(t, reader, map[string]telemetrytest.Reading{"nats.connections": {Kind: "gauge", Unit: "{connection}"},
		"nats.received": {Kind: "counter", Unit: "By"}, "nats.jetstream.storage.used": {Kind: "gauge", Unit: "By"},
		"nats.jetstream.api.errors": {Kind: "counter", Unit: "{request}"}})
}

// A metrics address another program holds stops the server before it starts: nothing
// listens, JetStream never touches its store, and run says which flag failed. Started
// first, it answered /healthz 200, then shut down when the metrics port failed: long enough
// for `mitosis up` to call it ready and leave a stack without NATS.
func TestMetricsAddressTakenStopsTheStart(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	store := t.TempDir()
	client, monitor := stacktest.FreeAddr(t), stacktest.FreeAddr(t)
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-addr", client, "-http", monitor, "-store", store, "-metrics", held.Addr().String()},
			func(string) string { return "" })
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "-metrics") {
			t.Errorf("run: %v, want the -metrics error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run still runs with its metrics address taken")
	}
	if entries, err := os.ReadDir(store); err != nil || len(entries) != 0 {
		t.Errorf("the store holds %v (%v): the server started", entries, err)
	}
}
