package host_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/services/host/lambdatest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/logtest"
)

// The two images that run as a Lambda function, each built from its image's package and
// tags, serve their invocations when AWS_LAMBDA_RUNTIME_API is set: the monolith on NATS
// elsewhere, and the gateway in front of the seven contexts, each a host serving it over
// mutual TLS (the gateway holding its identity as PEM text, as its rendered function does).
// Two copies poll a fake Runtime API behind a fake API Gateway, and the whole behaviour
// suite passes through them (problem documents included). A cold start (a new copy after
// both were killed) serves at once what the others wrote to the shared store, and an
// Idempotency-Key holding a comma reaches the shop whole.
func TestLambdaServesTheShop(t *testing.T) {
	for _, image := range []string{topology.Monolith, bounded.Group{Edge: true}.Name()} {
		t.Run(image, func(t *testing.T) { lambdaServesTheShop(t, image) })
	}
}

func lambdaServesTheShop(t *testing.T, image string) {
	bin, group := stacktest.ImageBinary(t, filepath.Join("..", ".."), image), imageGroup(t, image)
	g, err := bounded.ParseGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	const token = "lambda-admin-token"
	ns := hosttest.StartNATS(t)
	env := []string{"SHOP_GROUP=" + group, "SHOP_ADMIN_TOKEN=" + token, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none"}
	if g.Whole() {
		env = append(env, "SHOP_NATS_URL="+ns.URL(), bounded.RequestKeyEnv+"=lambda-request-key")
	} else {
		for k, v := range hosttest.StartContexts(t, map[string]string{"SHOP_NATS_URL": ns.URL(), "SHOP_ADMIN_TOKEN": token}) {
			env = append(env, k+"="+v)
		}
		for k, v := range pemVars(t, hosttest.IdentityDir(t, g.Name())) {
			env = append(env, k+"="+v)
		}
	}
	fn, err := lambdatest.Start(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fn.Close() })
	var logs logtest.Buffer
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(append(os.Environ(), host.LambdaRuntimeEnv+"="+fn.RuntimeAPI()), env...)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the functions' logs:\n%s", logs.String())
		}
	})
	c := apitest.NewClient(apitest.Target{BaseURL: fn.URL(), AdminToken: token})

	began := time.Now()
	first := start()
	c.WaitReady(t)
	t.Logf("cold start: ready through the gateway %s after the process started", time.Since(began).Round(time.Millisecond))
	second := start()

	apitest.Run(t, apitest.Target{BaseURL: fn.URL(), AdminToken: token})

	// Two keys alike up to a comma are two keys: split at the comma, as some adapters split
	// headers, they would be one, and the second checkout (another user's body) a conflict.
	p := c.NewStockedProduct(t, 990, 100, 5)
	key := apitest.NewID("k")
	var order apitest.Order
	for i, suffix := range []string{",1", ",2"} {
		user := apitest.NewID("u")
		c.AddToCart(t, user, p.ID, 1)
		o := c.Checkout(t, key+suffix, apitest.NewCheckout(user, apitest.CardApproved))
		if again := c.Checkout(t, key+suffix, apitest.NewCheckout(user, apitest.CardApproved)); again.ID != o.ID {
			t.Errorf("the key %q replayed gave order %s, then %s", key+suffix, o.ID, again.ID)
		}
		if i == 1 && o.ID == order.ID {
			t.Errorf("keys %q and %q gave the same order", key+",1", key+",2")
		}
		order = o
	}
	c.WaitShipped(t, order.ID)

	for _, cmd := range []*exec.Cmd{first, second} {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	stacktest.WaitFor(t, 10*time.Second, func() (bool, string) {
		return fn.Polls() == 0, fmt.Sprintf("%d calls of the killed copies still wait for an invocation", fn.Polls())
	})
	began = time.Now()
	start()
	if got := c.GetOrder(t, order.ID); got.Status != apitest.StatusShipped || got.ID != order.ID {
		t.Errorf("after a cold start: %+v", got)
	}
	t.Logf("cold start after both copies were killed: the first request answered %s after the process started", time.Since(began).Round(time.Millisecond))
	if fn.Errors.Load() != 0 {
		t.Errorf("%d invocations failed (of %d)", fn.Errors.Load(), fn.Invocations.Load())
	}
	t.Logf("%d invocations, no errors", fn.Invocations.Load())
}

// A function serves HTTP from an external store only: a group without the edge, one whose
// contexts its peers call over gRPC, or one that would embed its store, is refused with the
// reason.
func TestLambdaNeedsTheEdgeAndAnExternalStore(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		def  bounded.Group
		want string
	}{
		{map[string]string{host.LambdaRuntimeEnv: "127.0.0.1:9001"}, bounded.Everything(), "SHOP_NATS_URL"},
		{map[string]string{host.LambdaRuntimeEnv: "127.0.0.1:9001", "SHOP_GROUP": "catalog", "SHOP_NATS_URL": "nats://127.0.0.1:4222"}, bounded.Group{}, "no edge"},
		{map[string]string{host.LambdaRuntimeEnv: "127.0.0.1:9001", "SHOP_GROUP": "edge+cart", "SHOP_NATS_URL": "nats://127.0.0.1:4222"}, bounded.Group{}, "over gRPC"},
	} {
		if _, err := host.ConfigFrom(func(k string) string { return tc.env[k] }, tc.def); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %q", tc.env, err, tc.want)
		}
	}
	// The edge alone keeps no state; a function listens on no port, for metrics and probes
	// neither.
	env := map[string]string{host.LambdaRuntimeEnv: "127.0.0.1:9001", "SHOP_GROUP": "edge", host.MetricsAddrEnv: "0.0.0.0:9464",
		host.HealthAddrEnv: "0.0.0.0:9465", host.TLSDirEnv: hosttest.IdentityDir(t, "gateway")}
	cfg, err := host.ConfigFrom(func(k string) string { return env[k] }, bounded.Group{})
	if err != nil || !cfg.Lambda || cfg.SoleReplica || cfg.HTTPAddr != "" || cfg.MetricsAddr != "" || cfg.HealthAddr != "" || host.TelemetryOptions(cfg, "v").MetricsAddr != "" {
		t.Errorf("the gateway as a function: %+v, %v", cfg, err)
	}
}

// imageGroup is the group the services of image run (the same in every architecture).
func imageGroup(t *testing.T, image string) string {
	t.Helper()
	top, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range top.Archs {
		for _, s := range a.Services {
			if s.Image == image {
				return s.Group
			}
		}
	}
	t.Fatalf("the topology has no image %q", image)
	return ""
}
