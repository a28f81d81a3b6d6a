package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestUpSaysHowToChooseAnotherAddress: when a host address up must have is held by another
// program (an edge; the collector's query port, where a Jaeger may already run), up fails
// naming the address and the flag that moves it, and starts nothing.
func TestUpSaysHowToChooseAnotherAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the monolith's binaries")
	}
	// The collector's OTLP ports follow its query port's host: 127.0.0.2 keeps them off
	// 4317 and 4318 of 127.0.0.1, which a stack of make up may hold.
	cases := []struct {
		name     string
		host     string
		flags    func(held string) []string
		service  string
		wantFlag string
	}{
		{"monolith's edge", "127.0.0.1", func(held string) []string {
			return []string{"--monolith-edge", held, "--collector-edge", "none"}
		}, "monolith/monolith", "--edges monolith=127.0.0.1:PORT"},
		{"collector's query port", "127.0.0.2", func(held string) []string {
			return []string{"--monolith-edge", stacktest.AnyPort, "--collector-edge", held}
		}, topology.Telemetry + "/collector", "--collector-edge 127.0.0.1:0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			other, err := net.Listen("tcp", net.JoinHostPort(c.host, "0"))
			if err != nil {
				t.Skipf("no listener on %s here: %v", c.host, err)
			}
			defer other.Close()
			held := other.Addr().String()
			common := []string{"--runtime", "process", "--root", repoRoot(t), "--state", t.TempDir(), "--stack", stacktest.StackName(t)}
			t.Cleanup(func() { runBinary(context.Background(), t, append([]string{"down", "--volumes"}, common...)...) })

			code, out, errOut := runBinary(t.Context(), t, append(append([]string{"up", "-t", topology.Monolith}, c.flags(held)...), common...)...)
			if code != exitFailure {
				t.Fatalf("up with %s held: exit %d, want %d\n%s\n%s", held, code, exitFailure, out, errOut)
			}
			for _, want := range []string{c.service + ": host address " + held + " is in use by another program", c.wantFlag} {
				if !strings.Contains(errOut, want) {
					t.Errorf("up with %s held says:\n%s\nwant %q in it", held, errOut, want)
				}
			}
			if strings.Contains(out, "started, ready") {
				t.Errorf("up with %s held started something:\n%s", held, out)
			}
		})
	}
}
