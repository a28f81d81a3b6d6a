// Package natsembed runs a nats-server with JetStream inside the process, so that the
// monolith and the tests need nothing else running. Clients connect in-process (no socket)
// unless a listen address is given.
package natsembed

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
}

// Start starts a JetStream-enabled server storing its files in dir. listen is "" for no
// network listener (in-process clients only) or a host:port, e.g. "127.0.0.1:-1" for any port.
func Start(dir, listen string) (*Server, error) {
	opts := &server.Options{
		ServerName: "mitosis-embedded",
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	}
	if listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats server in %s: not ready after 30s", dir)
	}
	return &Server{ns: ns}, nil
}

// Connect returns a client connection to the server, in-process.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append(opts, nats.InProcessServer(s.ns), nats.Name(name))
	nc, err := nats.Connect(s.ns.ClientURL(), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect embedded nats: %w", err)
	}
	return nc, nil
}

// ClientURL is the server's URL for clients in other processes (when it listens).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits until it has flushed and closed its files.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

func splitHostPort(hostport string) (string, int, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", hostport, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: bad port", hostport)
	}
	return host, port, nil
}
