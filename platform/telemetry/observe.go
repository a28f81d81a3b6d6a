package telemetry

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// Observables declares a component's observable instruments one after another and registers
// one callback for them all: a component that reports its own state (the trace collector,
// the NATS server) reads it once per collection, whatever the number of instruments, and
// checks the instruments' errors once rather than after each.
type Observables struct {
	meter metric.Meter
	made  []metric.Observable
	errs  []error
}

// NewObservables declares instruments on m.
func NewObservables(m metric.Meter) *Observables {
	return &Observables{meter: m}
}

// Gauge declares an integer gauge; an error is returned by Register.
func (o *Observables) Gauge(name, unit, desc string) metric.Int64ObservableGauge {
	g, err := o.meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	o.add(g, err)
	return g
}

// Counter declares an integer counter (a total that only grows); an error is returned by
// Register.
func (o *Observables) Counter(name, unit, desc string) metric.Int64ObservableCounter {
	c, err := o.meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	o.add(c, err)
	return c
}

func (o *Observables) add(inst metric.Observable, err error) {
	if err != nil {
		o.errs = append(o.errs, err)
		return
	}
	o.made = append(o.made, inst)
}

// Register has observe called on each collection for every instrument declared, or returns
// why an instrument could not be declared.
func (o *Observables) Register(observe func(context.Context, metric.Observer) error) error {
	if err := errors.Join(o.errs...); err != nil {
		return err
	}
	_, err := o.meter.RegisterCallback(observe, o.made...)
	return err
}
