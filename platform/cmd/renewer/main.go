// Command renewer keeps a running stack's certificates from expiring: it holds the stack's
// CA (the PKI folder, which only it and the mitosis CLI read) and, every -every and on
// SIGHUP, gives every identity of the folder whose certificate is past half its life a new
// one (identity.CA.EnsureFound); the services read renewed files at their next connection,
// without a restart. `mitosis up` renews them too, but a stack left up for more than a
// week with no up would otherwise see every new connection refused. It is what cert-manager
// is in a cluster, where the deploy targets leave it out.
//
//	-pki    RENEWER_PKI_DIR  the stack's PKI folder (required)
//	-stack  RENEWER_STACK    the stack's name, which its CA's certificates carry (required)
//	-addr   RENEWER_ADDR     where /healthz answers (required; the topology gives its port):
//	                         200 while the last pass renewed everything due, else 503
//	                         saying what failed
//	-every  RENEWER_EVERY    how often it looks (default identity.RenewEvery, an hour: a
//	                         certificate is due for half of its week)
//	-retry                   how soon it tries again after a pass that failed (default a
//	                         minute, or -every if shorter): until one passes, /healthz says
//	                         unready and nothing else would act
//	-metrics RENEWER_METRICS_ADDR  where Prometheus scrapes /metrics: the Go runtime's, the
//	                         process's, and each identity's expiry (metrics.go); "": nowhere
//
// -version prints the version and exits.
//
// It reloads the CA on every pass, so a `mitosis certs rotate` is followed at once, and takes
// the folder's lock (identity.Locked) like every other writer of it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/platform/identity"
)

// version is stamped by the build from git (-X main.version=...: the Makefile, the image build).
var version = "dev"

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("service", "renewer", "version", version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, logger); err != nil {
		logger.Error("renewer stopped", "err", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger) error {
	fs := flag.NewFlagSet("renewer", flag.ContinueOnError)
	pki := fs.String("pki", getenv("RENEWER_PKI_DIR"), "the stack's PKI folder")
	stackName := fs.String("stack", getenv("RENEWER_STACK"), "the stack's name")
	addr := fs.String("addr", getenv("RENEWER_ADDR"), "where /healthz answers")
	every := fs.Duration("every", identity.RenewEvery, "how often to look for certificates due [RENEWER_EVERY]")
	retry := fs.Duration("retry", time.Minute, "how soon to try again after a pass that failed")
	metricsAddr := fs.String("metrics", getenv("RENEWER_METRICS_ADDR"), "where Prometheus scrapes /metrics; empty: nowhere")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if v := getenv("RENEWER_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("RENEWER_EVERY=%q: want a positive duration", v)
		}
		*every = d
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	if *pki == "" || *stackName == "" || *addr == "" || *every <= 0 || *retry <= 0 {
		return errors.New("-pki, -stack and -addr are required, and -every and -retry must be positive")
	}
	// Before anything that takes time: a SIGHUP's default is to end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	stopMetrics, err := serveMetrics(ctx, *metricsAddr, *pki)
	if err != nil {
		l.Close()
		return err
	}
	defer stopMetrics()
	r := &renewer{pki: *pki, stack: *stackName, logger: logger}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	for {
		// A failed pass (a file it could not write, the CA being rotated) is tried again
		// soon: until one passes, /healthz says unready and nothing else would act.
		wait := *every
		if !r.pass() {
			wait = min(wait, *retry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		case <-hup:
		}
	}
}

// renewer renews the identities of one PKI folder and says how its last pass went.
type renewer struct {
	pki, stack string
	logger     *slog.Logger

	mu   sync.Mutex
	last passResult
}

// passResult is what /healthz says of the last pass.
type passResult struct {
	At      time.Time `json:"at"`
	Renewed []string  `json:"renewed,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// pass renews what is due, holding the folder's lock, and says whether all went well.
func (r *renewer) pass() bool {
	var renewed []string
	err := identity.Locked(r.pki, func() error {
		ca, err := identity.LoadCA(r.pki, r.stack)
		if err != nil {
			return err
		}
		renewed, err = ca.EnsureFound()
		return err
	})
	res := passResult{At: time.Now().UTC(), Renewed: renewed}
	if err != nil {
		res.Error = err.Error()
		r.logger.Error("renew", "err", err, "renewed", renewed)
	} else if len(renewed) > 0 {
		r.logger.Info("renewed", "identities", renewed)
	}
	r.mu.Lock()
	r.last = res
	r.mu.Unlock()
	return err == nil
}

func (r *renewer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/healthz" || req.Method != http.MethodGet {
		http.NotFound(w, req)
		return
	}
	r.mu.Lock()
	res := r.last
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if res.At.IsZero() || res.Error != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(res)
}
