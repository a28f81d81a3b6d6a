// Command runlocal runs the microservices on this machine in the foreground (`make
// run-services`): a NATS server with JetStream, the seven context services on
// 127.0.0.1:9101-9107 and the gateway on 127.0.0.1:8081, all stopped together on Ctrl-C or
// SIGTERM. It runs the binaries found next to its own executable (`go build -o bin/services/
// ./services/...` builds them all). Every process's JSON log lines go to stdout.
//
// Flags override the defaults; SHOP_ADMIN_TOKEN is passed to the gateway, and SHOP_NATS_URL,
// when set, is used instead of starting a NATS server.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mitosis-dev/mitosis/services/launch"
)

func main() {
	exe, _ := os.Executable() // "" when unknown: then -bin must be given
	bin := flag.String("bin", filepath.Dir(exe), "directory holding the eight service binaries")
	gateway := flag.String("addr", "127.0.0.1:8081", "the gateway's HTTP address")
	natsListen := flag.String("nats", "127.0.0.1:4222", "the NATS server's listen address (unless SHOP_NATS_URL is set)")
	dataDir := flag.String("data", ".mitosis/services-data", "the NATS server's JetStream files")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "runlocal")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	token := os.Getenv("SHOP_ADMIN_TOKEN")
	if token == "" {
		logger.Warn("SHOP_ADMIN_TOKEN is unset: admin routes answer 401")
	}
	stack, err := launch.Start(ctx, launch.Config{
		BinDir:      *bin,
		NatsURL:     os.Getenv("SHOP_NATS_URL"),
		NatsListen:  *natsListen,
		DataDir:     *dataDir,
		GatewayAddr: *gateway,
		AdminToken:  token,
		Output:      os.Stdout,
	})
	if err != nil {
		logger.Error("start", "err", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "microservices up: gateway on %s, NATS on %s (Ctrl-C stops everything)\n", stack.GatewayURL, stack.NatsURL)
	code := 0
	select {
	case <-ctx.Done():
	case err := <-stack.Failed():
		logger.Error("a process stopped; stopping the rest", "err", err)
		code = 1
	}
	if err := stack.Stop(); err != nil {
		logger.Error("stop", "err", err)
		code = 1
	}
	logger.Info("stopped")
	os.Exit(code)
}
