package stack

import (
	"errors"
	"fmt"
	"net"
	"time"
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
