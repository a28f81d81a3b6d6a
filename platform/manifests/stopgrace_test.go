package manifests

import (
	"testing"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/services/host"
)

// TestStopGraceCoversDrainAndFlush: an orchestrator that kills a process before its drain
// and its span export are over loses the requests in flight or the traces of its last
// seconds.
func TestStopGraceCoversDrainAndFlush(t *testing.T) {
	if need := host.DefaultDrainTimeout + telemetry.ShutdownTimeout; stopGrace < need {
		t.Errorf("deploy files give a process %s to stop; its drain and span export take up to %s", stopGrace, need)
	}
}
