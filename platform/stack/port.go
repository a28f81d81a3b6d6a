package stack

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Why CheckPort may say no.
var (
	// ErrPortInUse: something here listens on the address.
	ErrPortInUse = errors.New("in use")
	// ErrPortForwarded: the address can be bound, yet a connection to it goes elsewhere.
	// Rootful Podman (CNI or netavark) publishes a container's port with a DNAT rule and
	// holds no socket on it, so the port binds; connections then reach the container, or
	// are refused when the rule outlived its container. A process serving there is never
	// reached.
	ErrPortForwarded = errors.New("forwarded elsewhere (published by a container?)")
)

// AddrTakenError says that a host address the topology fixes for a service (its edge, or
// a published port that is not 0) is held by another program when the service starts, so
// that the service cannot have it however often it is tried. The CLI tells how to choose
// another.
type AddrTakenError struct {
	Arch, Service string // who wanted it
	Addr          string
	Err           error // CheckPort's: ErrPortInUse or ErrPortForwarded
}

func (e *AddrTakenError) Error() string {
	why := "in use by another program"
	if errors.Is(e.Err, ErrPortForwarded) {
		why = "forwarded to another program (published by a container?)"
	}
	return fmt.Sprintf("%s/%s: host address %s is %s", e.Arch, e.Service, e.Addr, why)
}

func (e *AddrTakenError) Unwrap() error { return e.Err }

// CheckPort tells whether a process on this machine can serve addr (host:port on a local
// address): nil when nothing listens on it and a connection to it reaches whoever
// listens there. It takes a connect and an accept on the loopback, well under a
// millisecond, or up to a second for a forwarded port.
func CheckPort(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, ErrPortInUse)
	}
	defer l.Close()
	c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", addr, ErrPortForwarded, err)
	}
	defer c.Close()
	// A connection is in the accept queue once its connect returned, so a short deadline
	// only ever expires when the connection went somewhere else.
	_ = l.(*net.TCPListener).SetDeadline(time.Now().Add(250 * time.Millisecond))
	for {
		got, err := l.Accept()
		if err != nil {
			return fmt.Errorf("%s: %w", addr, ErrPortForwarded)
		}
		mine := got.RemoteAddr().String() == c.LocalAddr().String()
		_ = got.Close()
		if mine {
			return nil
		}
		// Someone else's connection reached us in the meantime: the port is local; wait
		// for ours.
	}
}

// FreePort returns a loopback port the kernel hands out that CheckPort passes and skip (if
// not nil) does not reject. Podman picks its random host ports from the same range, and
// holds none of them once their pod's processes are gone, so the kernel's word alone is not
// enough.
func FreePort(skip func(port int) bool) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if (skip == nil || !skip(port)) && CheckPort(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) == nil {
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port in 20 tries")
}

// EdgeAddr returns where arch's edge answers on the host: the address the topology gives, or,
// for one of port 0 (any free port: the runtime picks it when it starts the edge, the choice
// and the bind one step), the one sts (the stack's status) reports for the edge's port.
func EdgeAddr(t topology.Topology, sts []Status, arch string) (string, error) {
	i := slices.IndexFunc(t.Archs, func(a topology.Arch) bool { return a.Name == arch })
	if i < 0 {
		return "", fmt.Errorf("the topology has no architecture %q", arch)
	}
	a := t.Archs[i]
	if !strings.HasSuffix(a.Edge, ":0") {
		return a.Edge, nil
	}
	j := slices.IndexFunc(a.Services, func(s topology.Service) bool { return s.Edge != "" })
	if j < 0 {
		return "", fmt.Errorf("%s has no edge service", arch)
	}
	edge := a.Services[j]
	for _, st := range sts {
		if st.Arch == arch && (st.Service == edge.Name || st.ReplicaOf == edge.Name) && st.Ports[edge.Ports[0]] != "" {
			return st.Ports[edge.Ports[0]], nil
		}
	}
	return "", fmt.Errorf("status shows no host address of %s/%s's port %d", arch, edge.Name, edge.Ports[0])
}
