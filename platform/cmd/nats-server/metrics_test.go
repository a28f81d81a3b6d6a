package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The server's figures, read on collection, follow what clients do: a connection and the
// messages it publishes show, and so does JetStream once it stores them.
func TestInstrumentReportsTheServersFigures(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	reader := sdkmetric.NewManualReader()
	if err := instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), srv); err != nil {
		t.Fatal(err)
	}
	values := func() map[string]int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					out[m.Name] = d.DataPoints[0].Value
				case metricdata.Sum[int64]:
					out[m.Name] = d.DataPoints[0].Value
				}
			}
		}
		return out
	}
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
}
