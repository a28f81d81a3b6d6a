package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/logtest"
)

const faultToken = "faults-token"

// shortFaults is a plan of a few seconds per process: enough for every kind of request to be
// sent in each phase at 30 req/s, and for a context's callers to reach it again after its
// start on a busy machine (1-2 s here).
func shortFaults() FaultPlan {
	return FaultPlan{Rate: 30, Baseline: time.Second, Down: 2 * time.Second, After: 5 * time.Second,
		Mix: DefaultMix(), Users: 60, Timeout: 3 * time.Second, Seed: 7, Settle: 90 * time.Second}
}

// faultTargets are the targets of every architecture of a running stack, the processes of
// each given by kill, their NATS found in the runtime's status and reached as its admin
// (the password kept in pki, the stack's PKI folder).
func faultTargets(t *testing.T, rt stack.Runtime, topo topology.Topology, kill map[string][]string, pki string) []FaultTarget {
	t.Helper()
	sts, err := rt.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []FaultTarget
	for _, a := range topo.Archs {
		ft := FaultTarget{Arch: a.Name, BaseURL: "http://" + stacktest.EdgeAddr(t, rt, topo, a.Name), AdminToken: faultToken, Processes: kill[a.Name], Runtime: rt, Note: rt.Name()}
		for _, s := range sts {
			if addr, ok := s.Ports[topology.NATSPort]; ok && s.Arch == a.Name {
				if ft.NATSURL, err = natsauth.AdminURL(pki, addr); err != nil {
					t.Fatal(err)
				}
				if ft.NATSTLS, err = natsauth.AdminTLS(pki); err != nil {
					t.Fatal(err)
				}
			}
		}
		out = append(out, ft)
	}
	return out
}

// processStack runs the topologies names as real processes on free loopback ports, each
// with its own NATS, until the test ends.
func processStack(t *testing.T, names string) (stack.Runtime, topology.Topology) {
	t.Helper()
	topo, err := topology.Get(names, topology.Options{Dir: repoRootForTest(t) + "/topologies", Collector: topology.NoCollector,
		MonolithEdge: stacktest.AnyPort, ServicesEdge: stacktest.AnyPort})
	if err != nil {
		t.Fatal(err)
	}
	rt := processrt.New(processrt.Options{Root: repoRootForTest(t), State: t.TempDir(), Stack: stacktest.StackName(t), AnyPorts: true})
	t.Cleanup(func() {
		if _, err := rt.Down(context.Background(), stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	var progress bytes.Buffer
	start := time.Now()
	// Reservations of a checkout a crash cut short expire in 20 s rather than 5 minutes:
	// the saga's recovery should release them long before; if it does not, the test waits
	// that long and not more.
	opts := stack.UpOptions{AdminToken: faultToken, RequestKey: "faults-request-key", ReadyTimeout: 2 * time.Minute,
		Progress: &progress, Env: map[string]string{"SHOP_RESERVATION_TTL": "20s"}}
	if err := rt.Up(context.Background(), topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	t.Logf("%s up as processes in %s", names, time.Since(start).Round(time.Millisecond))
	return rt, topo
}

func success(t *testing.T, c FaultCycle, k Kind, phase string) float64 {
	t.Helper()
	pc := c.phase(k, phase)
	if pc.Success == nil {
		t.Errorf("%s down: no %s request in the %s", c.Process, k, phase)
		return -1
	}
	return *pc.Success
}

// TestFaultRunAsProcesses runs the faults phase, shortened, against fresh stacks of real
// processes: in the microservices payments and then the edge are killed, in the monolith its
// one process. The invariants hold, and the matrix has the expected shape: browsing does not
// need payments, and nothing answers without the edge or without the monolith.
func TestFaultRunAsProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs both architectures as processes")
	}
	rt, topo := processStack(t, "monolith,services")
	var out logtest.Buffer
	r := &FaultRunner{Plan: shortFaults(), Progress: &out, Targets: faultTargets(t, rt, topo, map[string][]string{
		topology.Services: {"payments", "gateway"}, topology.Monolith: {"monolith"}}, rt.(*processrt.Runtime).DefaultPKI())}
	start := time.Now()
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("faults phase in %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if !rep.Passed {
		for _, a := range rep.Archs {
			t.Errorf("%s:\n%s", a.Arch, a.Invariants.summary())
		}
	}
	byArch := map[string]FaultArch{}
	for _, a := range rep.Archs {
		byArch[a.Arch] = a
		if a.Invariants.Checkouts.Orders == 0 {
			t.Errorf("%s: no order was made: the invariants checked nothing", a.Arch)
		}
		for _, c := range a.Invariants.Checks {
			if c.Skipped != "" {
				t.Errorf("%s: %s skipped: %s", a.Arch, c.Name, c.Skipped)
			}
		}
		for _, c := range a.Cycles {
			if c.Error != "" || c.RecoveryS == nil {
				t.Errorf("%s/%s: error %q, recovered %v", a.Arch, c.Process, c.Error, c.RecoveryS)
			}
			for _, k := range Kinds() {
				if s := success(t, c, k, phaseBaseline); s < 0.9 {
					t.Errorf("%s/%s: %s succeeded %.0f%% before the kill: errors %v", a.Arch, c.Process, k, 100*s, c.Errors)
				}
			}
		}
	}
	payments, gateway := byArch[topology.Services].Cycles[0], byArch[topology.Services].Cycles[1]
	for _, k := range []Kind{KindList, KindSearch, KindProduct, KindCartAdd} {
		if s := success(t, payments, k, phaseOutage); s != 1 {
			t.Errorf("payments down: %s succeeded %.0f%%, want 100%%: it does not need payments", k, 100*s)
		}
	}
	if s := success(t, payments, KindCheckout, phaseOutage); s > 0.5 {
		t.Errorf("payments down: checkouts succeeded %.0f%%", 100*s)
	}
	for _, c := range []FaultCycle{gateway, byArch[topology.Monolith].Cycles[0]} {
		for _, k := range Kinds() {
			if s := success(t, c, k, phaseOutage); s != 0 {
				t.Errorf("%s down: %s succeeded %.0f%%, want 0%%", c.Process, k, 100*s)
			}
		}
	}

	// A planted break: a shim in front of the monolith answers one approved checkout 201
	// with an order it never passes on, as a shop that lost an order after accepting it.
	t.Run("dropped-order", func(t *testing.T) {
		mono := r.Targets[slices.IndexFunc(r.Targets, func(ft FaultTarget) bool { return ft.Arch == topology.Monolith })]
		shim := newDroppingShim(t, mono.BaseURL, 3)
		mono.BaseURL = shim.URL
		plan := shortFaults()
		plan.Baseline, plan.Down, plan.After = time.Second, time.Second, 2*time.Second
		var out logtest.Buffer
		dr := &FaultRunner{Plan: plan, Targets: []FaultTarget{mono}, Progress: &out, RunID: "drop"}
		start := time.Now()
		rep, err := dr.Run(context.Background())
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		t.Logf("in %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
		dropped := shim.droppedID()
		if dropped == "" {
			t.Fatal("the shim dropped no checkout")
		}
		inv := rep.Archs[0].Invariants
		if rep.Passed || inv.Passed {
			t.Fatalf("a dropped order passed the invariants:\n%s", inv.summary())
		}
		checks := map[string]InvariantCheck{}
		for _, c := range inv.Checks {
			checks[c.Name] = c
		}
		orders := strings.Join(checks[InvOrders].Evidence, "\n")
		if !strings.Contains(orders, "order "+dropped+" (key") || !strings.Contains(orders, "is 404") || !strings.Contains(orders, "is not in user") {
			t.Errorf("the orders check's evidence does not name the dropped order %s:\n%s", dropped, orders)
		}
		for _, name := range []string{InvFinal, InvReservations, InvStock} {
			if !checks[name].Passed {
				t.Errorf("%s broke too: the dropped order broke no stock: %v", name, checks[name].Evidence)
			}
		}
		if c := checks[InvCharges]; c.Passed || !strings.Contains(strings.Join(c.Evidence, " "), dropped+" (user") {
			t.Errorf("charges: the dropped order has no charge, evidence %v", c.Evidence)
		}
		var md bytes.Buffer
		if err := (&Report{Schema: Schema, ID: "drop", Faults: rep}).WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(md.String(), "INVARIANTS BROKEN in monolith") || !strings.Contains(md.String(), dropped) {
			t.Errorf("report.md does not show the break:\n%s", md.String())
		}
	})
}

// droppingShim proxies a shop's API, except the n-th checkout with the approved card, which
// it answers 201 with an order of its own making and never passes on.
type droppingShim struct {
	*httptest.Server
	mu      sync.Mutex
	seen    int
	dropped string
}

func newDroppingShim(t *testing.T, target string, n int) *droppingShim {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // the monolith's outage is expected
	s := &droppingShim{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/checkout" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req apitest.CheckoutRequest
			_ = json.Unmarshal(body, &req)
			s.mu.Lock()
			drop := false
			if req.Card.Number == apitest.CardApproved && s.dropped == "" {
				if s.seen++; s.seen == n {
					s.dropped = "ord-dropped-" + strconv.Itoa(n)
					drop = true
				}
			}
			s.mu.Unlock()
			if drop {
				usd := func(u int64) apitest.Money { return apitest.Money{Currency: "USD", Units: u} }
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_ = json.NewEncoder(w).Encode(apitest.Order{ID: s.dropped, UserID: req.UserID, Status: apitest.StatusPaid,
					Items: []apitest.OrderItem{}, Subtotal: usd(1000), Shipping: usd(500), Total: usd(1500),
					CreatedAt: time.Now().UTC().Format(time.RFC3339)})
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *droppingShim) droppedID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
