// Package checkoutstep is a context's function of the checkout state machine
// (platform/stepfunctions, deploy/stepfunctions/checkout.asl.json): the monolith's binary
// run as AWS Lambda function mitosis-checkout-<context> (services/host, SHOP_GROUP=<context>,
// SHOP_LAMBDA_ROLE=checkout-steps) answers the machine's Task payloads ({"call":
// "inventory.Reserve", "checkout": {...}}) by running the call with the context's real
// implementation, in process, over its buckets on NATS, and the saga's own code for the step
// (orders.RunCall). The monolith's, because that code is orders': a group's image links it
// only when the group holds orders, so that a change to orders rebuilds no other group.
//
// In process, not through the context's gRPC service: a function that called the running
// service would be one more hop in front of it, and would need that service, its address and
// a workload identity; in process the function is the context, as a replica of it is, and
// needs only the store. The orders steps (AddToHistory, RecordOrder, PublishOrderPaid) could
// not be reached over gRPC at all: they are orders' own work on its own stores, no method of
// its port.
//
// Errors: a domain error that a Catch of the machine turns on comes back with the name
// orders.Steps gives it (orders.NameOf, the table the renderer reads), as the Lambda error's
// type; a few other domain errors get a descriptive name the Fail state carries; anything
// else is a failure to retry (StepFailed). Every call is safe to repeat: each works under
// the checkout's order ID, as the contexts' own idempotency goes.
//
// The card: payments.HoldCard, invoked on mitosis-checkout-payments by whoever starts the
// execution and never by the machine, holds it under the order ID (payments.Holds: sealed,
// expiring); Charge takes it from there and drops it once the charge is decided. It is in no
// execution's input or history, and no log line here carries a payload.
package checkoutstep

// The role and its variable are named in every binary: a group's that does not link orders'
// saga refuses the role by them (services/host). The rest of the package is linked only
// where orders runs, as it runs orders' own step code (checkoutstep.go's build constraint).

// Role is the value of RoleEnv that makes a process under Lambda a checkout step function.
const (
	RoleEnv = "SHOP_LAMBDA_ROLE"
	Role    = "checkout-steps"
)
