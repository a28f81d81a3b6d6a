// Package launch runs the microservices on one machine: a NATS server and the eight
// processes (seven contexts and the gateway) as real child processes on loopback, started in
// dependency order, each waited for until ready, and stopped together. It is what
// `make run-services` and the end-to-end tests use; the platform's process runtime is meant
// to replace it, so it stays small: no restarts on failure, no scaling.
package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/natsembed"
)

// Gateway is the gateway's process name.
const Gateway = "gateway"

// peers are who calls whom: a process starts once its peers listen.
func peers(name string) []string {
	switch name {
	case "orders":
		return []string{"catalog", "cart", "inventory", "payments"}
	case Gateway:
		return []string{"catalog", "cart", "inventory", "orders", "notify"}
	}
	return nil
}

// Config says what to run and where.
type Config struct {
	// BinDir holds the binaries, named as the processes: catalog, cart, inventory, payments,
	// orders, shipping, notify, gateway (`go build -o DIR/ ./services/...` makes them).
	BinDir string
	// NatsURL is the NATS server to use; "" starts one in this process, listening on
	// NatsListen (default 127.0.0.1:-1, any port) with its files in DataDir.
	NatsURL    string
	NatsListen string
	DataDir    string
	// Addrs are the contexts' gRPC addresses; a context not in it gets servicehost.DefaultAddr, and
	// a port 0 means any free port (learned from the process's "listening" log line).
	Addrs map[string]string
	// GatewayAddr is the public HTTP address (default 127.0.0.1:8081; port 0 for any).
	GatewayAddr string
	AdminToken  string
	// Env is added to every process's environment (after what launch sets, so it wins).
	Env []string
	// Output receives every process's log lines as they are (JSON, naming the service);
	// nil discards them.
	Output io.Writer
	// ReadyTimeout bounds the wait for each tier of processes (default 60s).
	ReadyTimeout time.Duration
}

// Stack is the running services.
type Stack struct {
	cfg        Config
	nats       *natsembed.Server // nil when NatsURL was given
	NatsURL    string
	GatewayURL string            // http://host:port
	Addrs      map[string]string // every process's bound address (the gateway's HTTP one too)

	mu     sync.Mutex
	procs  map[string]*proc
	failed chan error // an unexpected exit
	out    *syncWriter
}

// tiers is the start order: each tier's peers are in earlier tiers.
func tiers() [][]string {
	return [][]string{
		{"catalog", "cart", "inventory", "payments", "shipping", "notify"},
		{"orders"},
		{Gateway},
	}
}

// Start starts NATS (unless cfg.NatsURL is set) and the eight processes, and returns once
// every one is ready: the services' health SERVING, the gateway's /readyz 200. On failure it
// stops what it started.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.GatewayAddr == "" {
		cfg.GatewayAddr = "127.0.0.1:8081"
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	s := &Stack{cfg: cfg, NatsURL: cfg.NatsURL, Addrs: map[string]string{}, procs: map[string]*proc{},
		failed: make(chan error, 16), out: &syncWriter{w: cfg.Output}}
	defer func() {
		if err != nil {
			_ = s.Stop() // the start's error is the one to report
		}
	}()
	if s.NatsURL == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("launch: DataDir is required to start a NATS server")
		}
		listen := cfg.NatsListen
		if listen == "" {
			listen = "127.0.0.1:-1"
		}
		if s.nats, err = natsembed.Start(cfg.DataDir, listen); err != nil {
			return nil, err
		}
		s.NatsURL = s.nats.ClientURL()
	}
	for _, tier := range tiers() {
		for _, name := range tier {
			addr := cfg.Addrs[name]
			if name == Gateway {
				addr = cfg.GatewayAddr
			} else if addr == "" {
				addr = servicehost.DefaultAddr(name)
			}
			if err := s.start(name, addr); err != nil {
				return nil, err
			}
		}
		if err := s.waitReady(ctx, tier); err != nil {
			return nil, err
		}
	}
	s.GatewayURL = "http://" + s.Addrs[Gateway]
	return s, nil
}

// env is a process's environment: the parent's, then what the stack decides.
func (s *Stack) env(name, addr string) []string {
	env := append(os.Environ(), "SHOP_NATS_URL="+s.NatsURL)
	if name == Gateway {
		env = append(env, "SHOP_ADDR="+addr, "SHOP_ADMIN_TOKEN="+s.cfg.AdminToken)
	} else {
		env = append(env, "SHOP_GRPC_ADDR="+addr)
	}
	if name == "orders" {
		env = append(env, "SHOP_ORDERS_SOLE_REPLICA=true") // the stack runs one replica
	}
	for _, p := range peers(name) {
		env = append(env, servicehost.AddrEnv(p)+"="+s.Addrs[p])
	}
	return append(env, s.cfg.Env...)
}

// start starts one process and waits until it logs the address it listens on.
func (s *Stack) start(name, addr string) error {
	cmd := exec.Command(filepath.Join(s.cfg.BinDir, name))
	cmd.Env = s.env(name, addr)
	cmd.SysProcAttr = sysProcAttr()
	listening := make(chan string, 1)
	// Stdout is a writer, not a pipe read by hand: Wait then returns only once every line
	// the process wrote has been handled.
	cmd.Stdout = &lineSink{out: s.out, listening: listening}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		p.mu.Lock()
		expected := p.stopping
		p.mu.Unlock()
		if !expected {
			select {
			case s.failed <- fmt.Errorf("%s exited: %v", name, p.err):
			default:
			}
		}
	}()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	select {
	case a := <-listening:
		s.mu.Lock()
		s.Addrs[name] = a
		s.mu.Unlock()
		return nil
	case <-p.done:
		return fmt.Errorf("%s exited before listening: %v", name, p.err)
	case <-time.After(s.cfg.ReadyTimeout):
		return fmt.Errorf("%s not listening after %s", name, s.cfg.ReadyTimeout)
	}
}

// waitReady polls each process of a tier until ready.
func (s *Stack) waitReady(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	for _, name := range names {
		if err := s.waitOne(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stack) waitOne(ctx context.Context, name string) error {
	s.mu.Lock()
	addr, p := s.Addrs[name], s.procs[name]
	s.mu.Unlock()
	var check func(context.Context) error
	if name == Gateway {
		check = func(ctx context.Context) error { return httpReady(ctx, "http://"+addr+"/readyz") }
	} else {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		check = func(ctx context.Context) error {
			res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return errors.New(res.GetStatus().String())
			}
			return nil
		}
	}
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before ready: %v", name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v (last check: %v)", name, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func httpReady(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return nil
}

// Failed delivers an error when a process exits that was not asked to.
func (s *Stack) Failed() <-chan error { return s.failed }

// Kill kills a process at once (SIGKILL), as a crash would.
func (s *Stack) Kill(name string) error {
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("no process %s", name)
	}
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	_ = p.cmd.Process.Kill() // it may have exited already; Wait below tells
	<-p.done
	return nil
}

// Restart starts a stopped or killed process again on the address it had, and waits until
// it is ready.
func (s *Stack) Restart(ctx context.Context, name string) error {
	s.mu.Lock()
	addr := s.Addrs[name]
	s.mu.Unlock()
	if err := s.start(name, addr); err != nil {
		return err
	}
	return s.waitReady(ctx, []string{name})
}

// Stop stops every process, the gateway first and the contexts nobody calls last, each with
// SIGTERM (a graceful drain) and, after 30 seconds, SIGKILL; then NATS. The error names every
// process that did not exit cleanly (a failure, or a drain that needed SIGKILL). It is
// idempotent.
func (s *Stack) Stop() error {
	order := tiers()
	var errs []error
	var mu sync.Mutex
	for i := len(order) - 1; i >= 0; i-- {
		var wg sync.WaitGroup
		for _, name := range order[i] {
			s.mu.Lock()
			p := s.procs[name]
			s.mu.Unlock()
			if p != nil {
				wg.Go(func() {
					if err := p.stop(); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: %w", name, err))
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
	}
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats = nil
	}
	return errors.Join(errs...)
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done

	mu       sync.Mutex
	stopping bool
}

// stopGrace is how long a process has to drain after SIGTERM.
const stopGrace = 30 * time.Second

// stop stops the process gracefully, or kills it after stopGrace, and returns how it ended:
// nil for a clean exit after SIGTERM (or one that had happened already and was asked for).
func (p *proc) stop() error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // it may be exiting already; done tells
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("still running %s after SIGTERM: killed", stopGrace)
	}
}

// lineSink copies a process's output to out line by line and reports the address of its
// "listening" line (every service and the gateway log one, with "addr").
type lineSink struct {
	out       io.Writer
	listening chan<- string
	partial   []byte
	reported  bool
}

func (l *lineSink) Write(b []byte) (int, error) {
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := l.partial[:i+1]
		_, _ = l.out.Write(line)
		if !l.reported {
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &entry) == nil && entry.Msg == "listening" && entry.Addr != "" {
				l.listening <- entry.Addr
				l.reported = true
			}
		}
		l.partial = l.partial[i+1:]
	}
}

// syncWriter serialises the processes' writes so that lines never interleave.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}
