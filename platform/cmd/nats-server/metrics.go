package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"go.opentelemetry.io/otel/metric"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
)

// instrument reports the server's own figures through mp, read from its monitoring state
// (what /varz shows) when a reader collects, that is on each Prometheus scrape: connections,
// messages and bytes in and out, slow consumers, and JetStream's memory and storage used and
// API requests and errors.
func instrument(mp metric.MeterProvider, srv *server.Server) error {
	obs := telemetry.NewObservables(mp.Meter("github.com/mitosis-dev/mitosis/platform/cmd/nats-server"))
	conns := obs.Gauge("nats.connections", "{connection}", "Client connections open")
	inMsgs := obs.Counter("nats.messages.received", "{message}", "Messages received from clients and peers")
	outMsgs := obs.Counter("nats.messages.sent", "{message}", "Messages sent to clients and peers")
	inBytes := obs.Counter("nats.received", "By", "Bytes of messages received")
	outBytes := obs.Counter("nats.sent", "By", "Bytes of messages sent")
	slow := obs.Counter("nats.slow_consumers", "{connection}", "Clients disconnected for being slow consumers")
	jsMem := obs.Gauge("nats.jetstream.memory.used", "By", "JetStream memory storage used")
	jsStore := obs.Gauge("nats.jetstream.storage.used", "By", "JetStream file storage used")
	jsAPI := obs.Counter("nats.jetstream.api.requests", "{request}", "JetStream API requests")
	jsAPIErrors := obs.Counter("nats.jetstream.api.errors", "{request}", "JetStream API requests answered with an error")
	err := obs.Register(func(_ context.Context, o metric.Observer) error {
		v, err := srv.Varz(nil)
		if err != nil {
			return fmt.Errorf("nats varz: %w", err)
		}
		o.ObserveInt64(conns, int64(v.Connections))
		o.ObserveInt64(inMsgs, v.InMsgs)
		o.ObserveInt64(outMsgs, v.OutMsgs)
		o.ObserveInt64(inBytes, v.InBytes)
		o.ObserveInt64(outBytes, v.OutBytes)
		o.ObserveInt64(slow, v.SlowConsumers)
		if st := v.JetStream.Stats; st != nil {
			o.ObserveInt64(jsMem, int64(st.Memory))
			o.ObserveInt64(jsStore, int64(st.Store))
			o.ObserveInt64(jsAPI, int64(st.API.Total))
			o.ObserveInt64(jsAPIErrors, int64(st.API.Errors))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nats metrics: %w", err)
	}
	return nil
}
