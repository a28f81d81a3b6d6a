package host_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// The microservices, each process with a NATS user of its own allowed only what its
// contexts need (platform/natsauth), over TLS to a NATS server that asks each for its
// certificate (platform/cmd/nats-server -tls), pass the whole behaviour suite: checkouts, the
// events that ship them and notify, the admin routes. So the permissions are enough; the
// package's own test shows they are no more, and platform/cmd/nats-server's that nobody
// without the stack's certificate gets in.
func TestBehaviourWithANATSUserPerService(t *testing.T) {
	mainTelemetry(t)
	groups := []bounded.Group{{Edge: true}}
	for _, name := range bounded.Names() {
		groups = append(groups, bounded.Group{Contexts: []string{name}})
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	for i, g := range groups {
		opts.Users = append(opts.Users, natsauth.User(g, "pw-"+strconv.Itoa(i)))
	}
	natsID, err := identity.Load(hosttest.IdentityDir(t, identity.NATS))
	if err != nil {
		t.Fatal(err)
	}
	opts.TLSConfig = natsID.ServerConfig(nil) // as platform/cmd/nats-server -tls
	ns := natsjstest.Serve(t, opts)
	addr := ns.Addr().String()

	env := map[string]string{"SHOP_ADMIN_TOKEN": hosttest.Token}
	for _, name := range bounded.Names() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		env[host.AddrEnv(name)] = ln.Addr().String()
		ln.Close()
	}
	var gateway *hosttest.Host
	for i, g := range groups {
		own := maps.Clone(env)
		own["SHOP_NATS_URL"] = fmt.Sprintf("tls://%s:pw-%d@%s", g.Name(), i, addr)
		if !g.Edge {
			own["SHOP_GRPC_ADDR"] = env[host.AddrEnv(g.Contexts[0])]
		}
		h := hosttest.Start(t, g.String(), own)
		if g.Edge {
			gateway = h
		}
	}
	apitest.Run(t, apitest.Target{BaseURL: gateway.BaseURL, AdminToken: hosttest.Token})
}

// mainTelemetry sets up OpenTelemetry as the binaries' main does (host.Main), exporting
// nowhere, until t ends: the hosts of a test run in its process, and API.md's promise that
// a request continues its caller's trace rests on the propagators this installs.
func mainTelemetry(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	shutdown, _, err := telemetry.Setup(t.Context(), telemetry.Options{ServiceName: "gateway", Architecture: telemetry.Services, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
}
