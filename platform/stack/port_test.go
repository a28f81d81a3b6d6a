package stack_test

import (
	"errors"
	"net"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// The forwarded case needs a port a container publishes: podmanrt's
// TestMonolithStackUpCheckoutKillHealDown checks it against a real Podman stack.
func TestCheckPortFreeAndInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := stack.CheckPort(addr); !errors.Is(err, stack.ErrPortInUse) {
		t.Errorf("a port we listen on: %v, want ErrPortInUse", err)
	}
	l.Close()
	if err := stack.CheckPort(addr); err != nil {
		t.Errorf("a free port: %v", err)
	}
	if err := stack.CheckPort("127.0.0.1:0"); err != nil {
		t.Errorf("any port: %v", err)
	}
}
