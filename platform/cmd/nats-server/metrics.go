package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
	"go.opentelemetry.io/otel/metric"
)

// instrument reports the server's own figures through mp, read from its monitoring state
// (what /varz shows) when a reader collects, that is on each Prometheus scrape: connections,
// messages and bytes in and out, slow consumers, and JetStream's memory and storage used and
// API requests and errors.
func instrument(mp metric.MeterProvider, srv *server.Server) error {
	m := mp.Meter("github.com/mitosis-dev/mitosis/platform/cmd/nats-server")
	var errs []error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	conns := gauge("nats.connections", "{connection}", "Client connections open")
	inMsgs := counter("nats.messages.received", "{message}", "Messages received from clients and peers")
	outMsgs := counter("nats.messages.sent", "{message}", "Messages sent to clients and peers")
	inBytes := counter("nats.received", "By", "Bytes of messages received")
	outBytes := counter("nats.sent", "By", "Bytes of messages sent")
	slow := counter("nats.slow_consumers", "{connection}", "Clients disconnected for being slow consumers")
	jsMem := gauge("nats.jetstream.memory.used", "By", "JetStream memory storage used")
	jsStore := gauge("nats.jetstream.storage.used", "By", "JetStream file storage used")
	jsAPI := counter("nats.jetstream.api.requests", "{request}", "JetStream API requests")
	jsAPIErrors := counter("nats.jetstream.api.errors", "{request}", "JetStream API requests answered with an error")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nats metrics: %w", err)
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
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
	}, conns, inMsgs, outMsgs, inBytes, outBytes, slow, jsMem, jsStore, jsAPI, jsAPIErrors)
	if err != nil {
		return fmt.Errorf("nats metrics: %w", err)
	}
	return nil
}
