package stack_test

import (
	"errors"
	"net"
	"strconv"
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

func TestFreePortSkipsWhatItIsTold(t *testing.T) {
	port, err := stack.FreePort(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.CheckPort(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
		t.Errorf("FreePort gave %d: %v", port, err)
	}
	if port, err := stack.FreePort(func(int) bool { return true }); err == nil {
		t.Errorf("every port skipped, yet FreePort gave %d", port)
	}
}
