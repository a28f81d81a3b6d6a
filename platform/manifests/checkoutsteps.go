package manifests

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/mitosis-dev/mitosis/platform/stepfunctions"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// The checkout state machine's functions (deploy/stepfunctions/checkout.asl.json invokes
// them): deploy/lambda/checkout-<context>.json, one per context the saga calls, named as the
// machine's Tasks name them (stepfunctions.FunctionName), so that the ARNs match by
// construction. Each runs the monolith's image (bounded.Everything's: the step code is
// orders', which a group's image links only when the group holds orders) with the settings
// of the context's own service (the first architecture that runs the context alone:
// services; its SHOP_GROUP names the context) and SHOP_LAMBDA_ROLE=checkout-steps, the context in process
// over its buckets on NATS (services/checkoutstep): no gRPC served or called, so no peers'
// addresses; its workload identity is for NATS, which takes no client without a
// certificate (lambdaIdentity). The payments function seals the cards it
// holds with ${SHOP_CARD_KEY}, filled in at deploy time as the other secrets are.

// CheckoutFunction is one context's function of the checkout state machine.
type CheckoutFunction struct {
	Context string
	Input   *lambda.CreateFunctionInput
}

// CheckoutFunctions returns the functions of the checkout's contexts, from the first
// architecture of t that runs each alone; none for a context no architecture runs alone.
func CheckoutFunctions(t topology.Topology, opts Options) ([]CheckoutFunction, error) {
	opts = opts.withDefaults()
	var out []CheckoutFunction
	for _, c := range checkoutstep.Contexts() {
		a, s, ok := alone(t, c)
		if !ok {
			continue
		}
		env, err := lambdaEnv(a, s)
		if err != nil {
			return nil, err
		}
		// No gRPC: drop what serves and calls it, and the orders' request key (its steps
		// hash no request).
		for k := range env {
			if k == bounded.AddrEnv || k == "SHOP_GRPC_ADDR" || k == topology.InsecureEnv || k == bounded.RequestKeyEnv ||
				(strings.HasPrefix(k, "SHOP_") && strings.HasSuffix(k, "_ADDR") && k != bounded.MetricsAddrEnv) {
				delete(env, k)
			}
		}
		env[checkoutstep.RoleEnv] = checkoutstep.Role
		env["OTEL_SERVICE_NAME"] = stepfunctions.FunctionName(c)
		if c == "payments" {
			env[checkoutstep.CardKeyEnv] = deployTimeVar(checkoutstep.CardKeyEnv)
		}
		var calls []string
		for _, st := range orders.Steps() {
			for _, call := range []orders.Call{st.Call, st.Undo} {
				if call.Context == c && !slices.Contains(calls, call.String()) {
					calls = append(calls, call.String())
				}
			}
		}
		if c == "payments" {
			calls = append(calls, checkoutstep.HoldCard)
		}
		// The service's settings, the monolith's image (a group's image is named after it).
		whole := bounded.Everything().Name()
		described := fmt.Sprintf("mitosis checkout state machine: the calls of %s (%s), as %s/%s, image %s", c, strings.Join(calls, ", "), a.Name, s.Name, whole)
		s.Image = whole
		out = append(out, CheckoutFunction{Context: c, Input: lambdaInput(opts, s, env, lambdaSpec{
			name:        stepfunctions.FunctionName(c),
			description: described,
			timeout:     stepfunctions.TaskTimeout,
			logGroup:    "checkout",
			tags:        map[string]string{"mitosis.saga": "checkout", "mitosis.context": c},
		})})
	}
	return out, nil
}

// CheckoutFunctionPath is where the function of context c goes.
func CheckoutFunctionPath(c string) string { return "deploy/lambda/checkout-" + c + ".json" }

// alone returns the first architecture of t with a service whose group is context c alone.
func alone(t topology.Topology, c string) (topology.Arch, topology.Service, bool) {
	for _, a := range t.Archs {
		for _, s := range a.Services {
			if s.Group == c {
				return a, s, true
			}
		}
	}
	return topology.Arch{}, topology.Service{}, false
}

func checkoutFunctionFiles(t topology.Topology, opts Options) (map[string][]byte, error) {
	fns, err := CheckoutFunctions(t, opts)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, fn := range fns {
		b, err := MarshalLambda(fn.Input)
		if err != nil {
			return nil, fmt.Errorf("checkout function %s: %w", fn.Context, err)
		}
		files[CheckoutFunctionPath(fn.Context)] = b
	}
	return files, nil
}
