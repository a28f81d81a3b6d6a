package telemetry

import (
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/mitosis-dev/mitosis/platform/xray"
)

// DefaultPropagators is what every binary propagates unless OTEL_PROPAGATORS says otherwise:
// X-Ray's header, then W3C tracecontext and baggage (the specification's default, with
// X-Ray in front, since the shop is meant to run behind AWS's load balancers). X-Ray comes
// first and W3C last, so that when a request carries both and they disagree, the W3C context
// (what OpenTelemetry callers send) wins; an X-Ray header alone is continued, also one that
// names only its trace (xray.Propagator).
const DefaultPropagators = "xray,tracecontext,baggage"

// Propagator returns the propagators OTEL_PROPAGATORS names (DefaultPropagators when unset),
// in its order: later ones win where two extract a context. Known: tracecontext, baggage,
// xray, none (no propagation). The specification's others (b3, b3multi, jaeger, ottrace,
// xray-lambda) are refused by name rather than ignored, so that a deployment that asks for
// one finds out at start, not when its traces break apart.
func Propagator() (propagation.TextMapPropagator, error) {
	v := strings.TrimSpace(os.Getenv("OTEL_PROPAGATORS"))
	if v == "" {
		v = DefaultPropagators
	}
	var props []propagation.TextMapPropagator
	for name := range strings.SplitSeq(v, ",") {
		switch name = strings.TrimSpace(strings.ToLower(name)); name {
		case "tracecontext":
			props = append(props, propagation.TraceContext{})
		case "baggage":
			props = append(props, propagation.Baggage{})
		case "xray":
			props = append(props, xray.Propagator{})
		case "none":
			if v != name {
				return nil, fmt.Errorf("OTEL_PROPAGATORS=%q: none goes alone", v)
			}
		case "":
		default:
			return nil, fmt.Errorf("OTEL_PROPAGATORS: %q is not supported here (want tracecontext, baggage, xray or none)", name)
		}
	}
	return propagation.NewCompositeTextMapPropagator(props...), nil
}
