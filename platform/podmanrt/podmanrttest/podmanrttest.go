// Package podmanrttest is what the tests that need Podman share: its API, or a skip where
// there is none (a failure in CI, which must run them). Apart from stacktest, so that the
// tests that need no Podman build without the bindings' tags.
package podmanrttest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"

	"github.com/mitosis-dev/mitosis/platform/podmanrt"
)

// Require skips the test when no Podman API answers at podmanrt.Socket(), or fails it
// with REQUIRE_CONTAINERS=1 (CI), where a missing engine must not pass as a skip. It returns
// a connection to the API, to look at what a runtime made, for the test's body: it ends with
// t.Context(), before the cleanups run.
func Require(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bindings.NewConnection(ctx, podmanrt.Socket()); err != nil {
		if os.Getenv("REQUIRE_CONTAINERS") == "1" {
			t.Fatalf("podman: %v (REQUIRE_CONTAINERS=1)", err)
		}
		t.Skipf("podman API not reachable at %s (run platform/setup/podman.sh): %v", podmanrt.Socket(), err)
	}
	// The bindings keep the connection in the context they are given: the check's ends with it.
	conn, err := bindings.NewConnection(t.Context(), podmanrt.Socket())
	if err != nil {
		t.Fatalf("podman: %v", err)
	}
	return conn
}
