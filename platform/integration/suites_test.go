package integration_test

import (
	"net"
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/integration"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestMonolith is suite 1: NATS and the monolith as containers, the shop's behaviour suite
// (the very code the monolith's own tests run in process) against the monolith's published
// port.
//
// The host ports the engine picks for the monolith's container are taken on its first
// creation, before it starts, as any connection of the machine may take them: the stack
// makes the container again, with other ports.
func TestMonolith(t *testing.T) {
	requireEngine(t)
	var made int
	var stolen []string
	s := startStack(t, topology.Monolith, func(o *integration.StackOptions) {
		integration.AfterCreate(o, func(service string, at []string) {
			if service != topology.Monolith {
				return
			}
			if made++; made > 1 {
				return
			}
			for _, a := range at {
				ln, err := net.Listen("tcp", a)
				if err != nil {
					t.Errorf("take %s: %v", a, err)
					continue
				}
				t.Cleanup(func() { ln.Close() })
				stolen = append(stolen, a)
			}
		})
	})
	if made != 2 || len(stolen) == 0 {
		t.Fatalf("the monolith's container was made %d times with %v taken; want its picked ports taken and the container made twice", made, stolen)
	}
	mono, _ := s.Arch.Service(topology.Monolith)
	for _, p := range mono.Ports {
		at, err := s.HostAddr(t.Context(), topology.Monolith, p)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(stolen, at) {
			t.Errorf("the monolith publishes %d on %s, which was taken", p, at)
		}
	}
	apitest.Run(t, target(t, s))
}

// TestServices is suite 2: NATS, the seven services and the gateway as containers on one
// network where they find each other by name, the same behaviour suite against the gateway.
func TestServices(t *testing.T) {
	requireEngine(t)
	s := servicesStack(t)
	apitest.Run(t, target(t, s))
}

// TestServicesFaults is suite 3: faults in the microservices' containers, on the stack the
// behaviour suite uses (after it: the two never run at once, since neither is parallel).
//
// How "charged" is checked: the public API shows no charge, so the test reads the payments
// context's own records, its key-value bucket payments_charges, through the stack's NATS
// published on 127.0.0.1 (integration.Charges). Payments keys a charge by its idempotency
// key, which for a checkout is the order's ID. The records made during a subtest are told
// apart from earlier ones by their creation time (the containers share this machine's
// clock) and nothing else runs on the stack meanwhile. So "nothing charged for the refused
// checkouts" and "exactly one charge per accepted checkout" are both one check: the
// captured charges made during the subtest are exactly the accepted orders, one each, for
// the order's total. Refunded, voided or declined records charged nothing and may exist
// (a charge interrupted by a fault is voided or refunded by the saga or its recovery).
func TestServicesFaults(t *testing.T) {
	requireEngine(t)
	s := servicesStack(t)
	natsURL, err := s.NATSURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c := apitest.NewClient(target(t, s))
	t.Run("payments-stopped", func(t *testing.T) { testPaymentsStopped(t, s, c, natsURL) })
	t.Run("orders-killed", func(t *testing.T) { testOrdersKilled(t, s, c, natsURL) })
}

// TestHybrid is suite 4: the shipped hybrid (topologies/hybrid.yaml: catalog+inventory,
// cart+orders+payments, shipping+notify, the edge alone) as containers: the differential
// session against a fresh monolith, the behaviour suite, and orders killed in the middle of a
// burst of checkouts (it runs with cart and payments there).
func TestHybrid(t *testing.T) {
	requireEngine(t)
	hybrid := startStack(t, "hybrid")
	mono := startStack(t, topology.Monolith)
	want := apitest.Session(t, apitest.NewClient(target(t, mono)))
	got := apitest.Session(t, apitest.NewClient(target(t, hybrid)))
	apitest.CompareSessions(t, "monolith", want, "hybrid", got)
	apitest.Run(t, target(t, hybrid))
	natsURL, err := hybrid.NATSURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("orders-killed", func(t *testing.T) { testOrdersKilled(t, hybrid, apitest.NewClient(target(t, hybrid)), natsURL) })
}
