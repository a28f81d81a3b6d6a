package splittax

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// The split tax, in one run:
//
//	go test -run '^$' -bench . -benchtime 2000x ./services/splittax/
//
// Each benchmark reports cpu-µs/op (the process's user+system CPU per request: handler,
// servers, clients, consumers and the NATS server alike) and p50-µs (the median latency of
// requests sent one at a time, i.e. unloaded) and p99-µs. Both sides are the hosts the
// platform runs (services/host), in this one process, on one NATS server on a loopback
// socket. The microservices run as they do by default, every hop over mutual TLS and
// authorized by the access table, and NATS over TLS with each host's certificate (as a
// secure stack runs them); microservices-insecure runs them without any of it
// (SHOP_INSECURE, plain NATS), so the difference of the two is what security costs. The
// monolith's only part of it is its NATS over TLS (monolith-insecure: plain).

// architectures are the two ends of the range, as groups of contexts: every context and the
// edge in one host, and one host per context with the edge alone in front, secure and not.
func architectures() []struct {
	name   string
	groups []string
	env    map[string]string
} {
	monolith := []string{"edge+" + strings.Join(bounded.Names(), "+")}
	services := []string{"edge"}
	services = append(services, bounded.Names()...)
	return []struct {
		name   string
		groups []string
		env    map[string]string
	}{
		{"monolith", monolith, map[string]string{natsTLSKey: "true"}},
		{"monolith-insecure", monolith, nil},
		{"microservices", services, map[string]string{natsTLSKey: "true"}},
		{"microservices-insecure", services, map[string]string{host.InsecureEnv: "true"}},
	}
}

// start runs the groups' hosts, each calling the others at their gRPC addresses, with extra
// in their environment, and returns the handler of the edge.
func start(b *testing.B, groups []string, extra map[string]string) http.Handler {
	env := map[string]string{"SHOP_ADMIN_TOKEN": hosttest.Token}
	if extra[natsTLSKey] == "" {
		env["SHOP_NATS_URL"] = hosttest.StartNATS(b).URL()
	} else {
		env["SHOP_NATS_URL"] = startTLSNATS(b)
	}
	maps.Copy(env, extra)
	delete(env, natsTLSKey)
	// The contexts' hosts first, on ports picked now, so that each knows where the others are.
	var edge string
	for _, g := range groups {
		group, err := bounded.ParseGroup(g)
		if err != nil {
			b.Fatal(err)
		}
		if group.Edge {
			edge = g
			continue
		}
		addr := freeAddr(b)
		for _, c := range group.Contexts {
			env[host.AddrEnv(c)] = addr
		}
	}
	for _, g := range groups {
		if g == edge {
			continue
		}
		group, _ := bounded.ParseGroup(g)
		own := maps.Clone(env)
		own["SHOP_GRPC_ADDR"] = env[host.AddrEnv(group.Contexts[0])]
		hosttest.StartConfig(b, config(b, g, own))
	}
	return hosttest.StartConfig(b, config(b, edge, env)).Next(b).Handler()
}

// config is the configuration of a host of group, checking its store and peers as often as
// a deployed one does. At hosttest's pace (every 50 ms) the edge's and orders' health calls
// to their peers, and every host's pings of NATS, ran among the requests measured: about
// 100 allocations per checkout, more the slower the checkouts, charged to the split.
func config(b *testing.B, group string, env map[string]string) host.Config {
	cfg := hosttest.Config(b, group, env)
	cfg.HealthEvery = host.DefaultHealthEvery
	return cfg
}

// natsTLSKey in an architecture's environment asks start for a NATS that speaks TLS only.
const natsTLSKey = "splittax-nats-tls"

// startTLSNATS starts a NATS server with JetStream that speaks TLS only, with the identity
// a secure stack gives its NATS and asking each client for its certificate (as
// platform/cmd/nats-server -tls), and returns its tls:// URL.
func startTLSNATS(b *testing.B) string {
	id, err := identity.Load(hosttest.IdentityDir(b, identity.NATS))
	if err != nil {
		b.Fatal(err)
	}
	ns := natsjstest.Serve(b, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(),
		NoSigs: true, NoLog: true, TLSConfig: id.ServerConfig(nil), TLSTimeout: 5})
	return "tls://" + ns.Addr().String()
}

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// call serves one request and fails b unless it answered want.
func call(b *testing.B, h http.Handler, method, path string, header http.Header, body string, want int) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		b.Fatalf("%s %s: %d %s, want %d", method, path, rec.Code, rec.Body, want)
	}
}

// measure runs request b.N times, one at a time, and reports CPU per request and the
// median latency.
func measure(b *testing.B, request func(i int)) {
	b.ReportAllocs()
	lat := make([]time.Duration, b.N)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		request(i)
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// cpuTime is the process's user and system CPU so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProductList is the shop's hottest read: the first page of the catalog.
func BenchmarkProductList(b *testing.B) {
	for _, arch := range architectures() {
		b.Run(arch.name, func(b *testing.B) {
			h := start(b, arch.groups, arch.env)
			for range 50 { // warm up: connections made, views loaded
				call(b, h, "GET", "/v1/products?page_size=20", nil, "", http.StatusOK)
			}
			measure(b, func(int) { call(b, h, "GET", "/v1/products?page_size=20", nil, "", http.StatusOK) })
		})
	}
}

// BenchmarkCheckout is a whole checkout of a two-line cart: price, reserve, charge, record,
// take the order out of the cart, publish. The carts are filled before the clock starts.
func BenchmarkCheckout(b *testing.B) {
	for _, arch := range architectures() {
		b.Run(arch.name, func(b *testing.B) {
			h := start(b, arch.groups, arch.env)
			admin := http.Header{"Authorization": {"Bearer " + hosttest.Token}}
			for _, sku := range []string{"sku-0001", "sku-0002"} {
				call(b, h, "POST", "/v1/admin/inventory/"+sku, admin, `{"add": 1000000}`, http.StatusOK)
			}
			fill := func(user string) {
				call(b, h, "POST", "/v1/carts/"+user+"/items", nil, `{"product_id": "sku-0001", "quantity": 1}`, http.StatusOK)
				call(b, h, "POST", "/v1/carts/"+user+"/items", nil, `{"product_id": "sku-0002", "quantity": 2}`, http.StatusOK)
			}
			checkout := func(user string) {
				body := fmt.Sprintf(`{"user_id": %q, "email": "b@example.com",
					"address": {"street": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
					"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvv": "123"}}`, user)
				call(b, h, "POST", "/v1/checkout", http.Header{"Idempotency-Key": {"key-" + user}}, body, http.StatusCreated)
			}
			for i := range 20 { // warm up
				user := fmt.Sprintf("warm-%d", i)
				fill(user)
				checkout(user)
			}
			run := time.Now().UnixNano() // b.N grows between runs: users must be new each run
			for i := range b.N {
				fill(fmt.Sprintf("u%d-%d", run, i))
			}
			measure(b, func(i int) { checkout(fmt.Sprintf("u%d-%d", run, i)) })
		})
	}
}
