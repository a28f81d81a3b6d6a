package host_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// The monolith's image runs its whole group, yet its binary links no embedded store
// (embedded_elsewhere.go): without SHOP_NATS_URL it says so and exits at once, where a
// binary built without the groups' tags (go run ./monolith) would embed one.
func TestAnImagesBinaryRefusesToRunWithoutAStore(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the monolith's image binary")
	}
	bin := stacktest.ImageBinary(t, filepath.Join("..", ".."), topology.Monolith)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // one that embeds serves until killed
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = t.TempDir() // where an embedded store would have written its files
	cmd.Env = []string{"SHOP_GROUP=" + bounded.Everything().String(), "SHOP_ADMIN_TOKEN=t", "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none"}
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("the monolith's image binary without SHOP_NATS_URL: %v, want exit status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "SHOP_NATS_URL is required") {
		t.Errorf("it says:\n%s\nwant it to name SHOP_NATS_URL", out)
	}
}
