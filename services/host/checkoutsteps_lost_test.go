package host_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/services/host/lambdatest"
)

// A checkout step function whose store connection closes for good (the server drops it
// after a line over its limit) does not stay up failing every call, since Lambda replaces
// no copy for that: Run returns an error, so that the process exits and Lambda starts the
// function anew. Inventory's, which runs a loop (the sweep of lapsed reservations) that
// must end with it.
func TestCheckoutStepFunctionExitsWhenItsStoreIsLost(t *testing.T) {
	ns := hosttest.StartNATS(t)
	// Not closed: aws-lambda-go's loop, which runs in this process here, exits the process
	// when its runtime API goes away. It waits on /next until the test binary ends.
	fn, err := lambdatest.Start(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(host.LambdaRuntimeEnv, fn.RuntimeAPI()) // aws-lambda-go reads it from the process
	vars := map[string]string{host.LambdaRuntimeEnv: fn.RuntimeAPI(), checkoutstep.RoleEnv: checkoutstep.Role,
		"SHOP_GROUP": "inventory", "SHOP_NATS_URL": ns.URL(), host.TLSDirEnv: hosttest.IdentityDir(t, "inventory")}
	cfg, err := host.ConfigFrom(func(k string) string { return vars[k] }, bounded.Group{})
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan *host.Generation, 1)
	done := make(chan error, 1)
	go func() {
		done <- host.Run(t.Context(), cfg, slog.New(slog.DiscardHandler), host.Hooks{Serving: func(g *host.Generation) { serving <- g }})
	}()
	select {
	case g := <-serving:
		// aws-lambda-go reads the variable in a goroutine of its own; once it polls, it has,
		// and the variable may go with the test.
		for deadline := time.Now().Add(30 * time.Second); fn.Polls() == 0; {
			if time.Now().After(deadline) {
				t.Fatal("the function did not poll for an invocation within 30 s")
			}
			time.Sleep(10 * time.Millisecond) // polling a counter, bounded by the deadline
		}
		overControlLine(t, g)
	case err := <-done:
		t.Fatalf("the function stopped before it served: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the function did not serve within 30 s")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned no error after its store connection closed for good")
		}
		t.Logf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the function kept running 30 s after its store connection closed for good")
	}
}
