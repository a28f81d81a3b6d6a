// Command nats-server runs the pinned nats-server module with JetStream on a data directory:
// the NATS of the mitosis stack, built into an image like every other binary so the stack
// needs no registry. It is deliberately small: no config file, a few flags (each with an
// environment variable), and a graceful shutdown on SIGTERM.
//
//	-addr      NATS_ADDR       client listen address (default 0.0.0.0:4222)
//	-http      NATS_HTTP_ADDR  monitoring listen address, /healthz and /varz (default 0.0.0.0:8222; "" disables)
//	-store     NATS_STORE_DIR  JetStream's files (default /data)
//	-name      NATS_NAME       server name (default mitosis-nats)
//	-max-mem   NATS_MAX_MEM    JetStream memory-storage limit in bytes (default 64 MiB)
//	-max-store NATS_MAX_STORE  JetStream file-storage limit in bytes (default 8 GiB: streams reserve their MaxBytes, the shop's 3.3 GiB in all, see natsjs.DefaultLimits)
//	-users     NATS_USERS_FILE the users and their permissions (a JSON list of nats-server users, as platform/natsauth writes it); "" lets anyone connect
//	-auth      NATS_AUTH       the same in nats-server's configuration syntax, an authorization block whose $VAR references read the environment (the passwords): what the rendered deploy files give, holding no password; "" none
//	-tls       NATS_TLS_DIR    the server's identity folder (platform/identity: cert.pem, key.pem, ca.pem); set, clients must speak TLS and present a certificate of the same stack; "" (default): plain
//	           NATS_TLS_CERT_PEM, NATS_TLS_KEY_PEM, NATS_TLS_CA_PEM  the same identity as PEM text, where no file can be mounted (ECS fills them from Secrets Manager); not with -tls
//	-metrics   NATS_METRICS_ADDR  where Prometheus scrapes /metrics: the Go runtime's, the process's and the server's (metrics.go); "" (default): nowhere
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.opentelemetry.io/otel"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/selfcheck"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
)

// version is stamped by the build from git (-X main.version=...: the Makefile, the image build).
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "nats-server:", err)
		os.Exit(1)
	}
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func run(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	addr := fs.String("addr", envOr(getenv, "NATS_ADDR", "0.0.0.0:4222"), "client listen address")
	httpAddr := fs.String("http", envOr(getenv, "NATS_HTTP_ADDR", "0.0.0.0:8222"), "monitoring listen address (empty: off)")
	store := fs.String("store", envOr(getenv, "NATS_STORE_DIR", "/data"), "JetStream store directory")
	name := fs.String("name", envOr(getenv, "NATS_NAME", "mitosis-nats"), "server name")
	maxMem := fs.String("max-mem", envOr(getenv, "NATS_MAX_MEM", strconv.Itoa(64<<20)), "JetStream memory limit, bytes")
	maxStore := fs.String("max-store", envOr(getenv, "NATS_MAX_STORE", strconv.Itoa(8<<30)), "JetStream file-store limit, bytes")
	usersFile := fs.String("users", getenv("NATS_USERS_FILE"), "users file (platform/natsauth); empty: no authentication")
	auth := fs.String("auth", getenv("NATS_AUTH"), "users in nats.conf syntax, $VAR from the environment; empty: see -users")
	tlsDir := fs.String("tls", getenv(tlsEnv.Dir), "identity folder (platform/identity); empty: no TLS unless "+tlsEnv.Cert+"...")
	metricsAddr := fs.String("metrics", envOr(getenv, "NATS_METRICS_ADDR", ""), "Prometheus /metrics listen address (empty: off)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	healthcheck := fs.Bool("healthcheck", false, "check the running server's monitoring /healthz and exit 0 or 1 (container health checks)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *healthcheck {
		selfcheck.Exit(func(ctx context.Context) error { return selfcheck.HTTP(ctx, *httpAddr, "/healthz") })
	}
	if *showVersion {
		fmt.Println(version, "nats-server", server.VERSION)
		return nil
	}
	var err error
	opts := &server.Options{
		ServerName: *name,
		JetStream:  true,
		StoreDir:   *store,
		NoSigs:     true, // signals are handled below, so shutdown is graceful and logged
	}
	if opts.Users, err = readUsers(*usersFile, *auth); err != nil {
		return err
	}
	id, err := tlsIdentity(getenv, *tlsDir)
	if err != nil {
		return fmt.Errorf("-tls: %w", err)
	}
	if id != nil {
		serveTLS(opts, id)
	}
	if opts.Host, opts.Port, err = hostPort(*addr); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if *httpAddr != "" {
		if opts.HTTPHost, opts.HTTPPort, err = hostPort(*httpAddr); err != nil {
			return fmt.Errorf("-http: %w", err)
		}
	}
	if opts.JetStreamMaxMemory, err = strconv.ParseInt(*maxMem, 10, 64); err != nil {
		return fmt.Errorf("-max-mem: %w", err)
	}
	if opts.JetStreamMaxStore, err = strconv.ParseInt(*maxStore, 10, 64); err != nil {
		return fmt.Errorf("-max-store: %w", err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	srv.ConfigureLogger()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Every listener is taken before the server starts: a metrics address held by another
	// program fails the start here, not a moment after /healthz said ready, when whoever
	// waited for it (mitosis up) has gone on.
	stopMetrics, err := serveMetrics(ctx, *metricsAddr, srv)
	if err != nil {
		return err
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		_ = stopMetrics()
		return fmt.Errorf("not ready for connections on %s within 30s", *addr)
	}
	<-ctx.Done()
	srv.Noticef("signal received, shutting down")
	srv.Shutdown()
	srv.WaitForShutdown()
	return stopMetrics()
}

// readUsers reads the users of -users (a file) or -auth (nats.conf text), nil for neither.
func readUsers(usersFile, auth string) ([]*server.User, error) {
	var users []*server.User
	switch {
	case usersFile != "" && auth != "":
		return nil, fmt.Errorf("-auth and -users both give the users: want one")
	case usersFile != "":
		// A JSON list of server.User, as platform/natsauth writes it (not imported: it would
		// link the whole shop into this image).
		b, err := os.ReadFile(usersFile)
		if err != nil {
			return nil, fmt.Errorf("-users: %w", err)
		}
		if err := json.Unmarshal(b, &users); err != nil || len(users) == 0 {
			return nil, fmt.Errorf("-users %s: want a JSON list of users (%v)", usersFile, err)
		}
	case auth != "":
		// Only the users are taken: every other setting is a flag's.
		var conf server.Options
		if err := conf.ProcessConfigString(auth); err != nil {
			return nil, fmt.Errorf("-auth: %w", err)
		}
		if len(conf.Users) == 0 {
			return nil, fmt.Errorf("-auth: no users (want an authorization block with users)")
		}
		users = conf.Users
	}
	return users, nil
}

// tlsEnv are the variables of the server's identity: NATS_TLS_DIR, or its PEM texts. The
// name is topology.NATSTLSDirEnv's (main_test checks), not imported: topology would link the
// whole shop into NATS.
var tlsEnv = identity.EnvFor("NATS_TLS_DIR")

// tlsIdentity is the server's identity: the folder dir (-tls, NATS_TLS_DIR by default) or
// the PEM texts of tlsEnv, never both; nil when neither is given (no TLS).
func tlsIdentity(getenv func(string) string, dir string) (*identity.Source, error) {
	id, err := tlsEnv.Open(func(k string) string {
		if k == tlsEnv.Dir {
			return dir
		}
		return getenv(k)
	})
	if errors.Is(err, identity.ErrNoEnv) {
		return nil, nil
	}
	return id, err
}

// serveTLS makes the server speak TLS only, with the identity id, and ask every client for
// a certificate of the same stack (the services' own, the tools'): a client without the
// stack's CA cannot even see the users' passwords go by, let alone use one. An identity from
// a folder is read again as its files change (renewal, rotation) at the next handshake.
func serveTLS(opts *server.Options, id *identity.Source) {
	opts.TLSConfig = id.ServerConfig(nil)
	opts.TLSTimeout = tlsTimeout.Seconds()
}

// tlsTimeout bounds a client's handshake: nats-server's default (2 s) is short for a
// process starting on a busy machine, and a handshake that fails is retried anyway.
const tlsTimeout = 5 * time.Second

// serveMetrics answers Prometheus at addr ("": nowhere) with the server's figures, through
// platform/telemetry as every binary of the stack does; it exports nothing over OTLP unless
// the OTEL_* variables ask for it.
func serveMetrics(ctx context.Context, addr string, srv *server.Server) (stop func() error, err error) {
	if addr == "" {
		return func() error { return nil }, nil
	}
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, "none")
		}
	}
	shutdown, _, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "nats", Version: version, MetricsAddr: addr, LogLevel: slog.LevelWarn})
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	if err := instrument(otel.GetMeterProvider(), srv); err != nil {
		_ = shutdown(context.Background())
		return nil, err
	}
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), telemetry.ShutdownTimeout)
		defer cancel()
		return shutdown(ctx)
	}, nil
}

func hostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, p, nil
}
