package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := configFrom(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"catalog": "127.0.0.1:9101", "cart": "127.0.0.1:9102", "inventory": "127.0.0.1:9103",
		"orders": "127.0.0.1:9105", "notify": "127.0.0.1:9107"}
	if cfg.Addr != "127.0.0.1:8081" || len(cfg.Peers) != len(want) || cfg.LogLevel != slog.LevelInfo {
		t.Fatalf("defaults = %+v", cfg)
	}
	for k, v := range want {
		if cfg.Peers[k] != v {
			t.Errorf("peer %s = %q, want %q", k, cfg.Peers[k], v)
		}
	}
	env := map[string]string{"SHOP_ADDR": "127.0.0.1:9999", "SHOP_ORDERS_ADDR": "orders:9105", "SHOP_RPC_TIMEOUT": "nope"}
	if _, err := configFrom(func(k string) string { return env[k] }); err == nil {
		t.Fatal("a bad SHOP_RPC_TIMEOUT was accepted")
	}
	delete(env, "SHOP_RPC_TIMEOUT")
	cfg, _ = configFrom(func(k string) string { return env[k] })
	if cfg.Addr != "127.0.0.1:9999" || cfg.Peers["orders"] != "orders:9105" {
		t.Fatalf("from env = %+v", cfg)
	}
}

// TestPeersDown: with no service reachable the gateway is alive but not ready, and a request
// that needs a peer is a 503 problem, quickly (no peer means Unavailable, not a hang).
func TestPeersDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // nothing listens there once closed
	ln.Close()
	cfg, _ := configFrom(func(k string) string {
		if strings.HasSuffix(k, "_ADDR") && k != "SHOP_ADDR" {
			return dead
		}
		return ""
	})
	cfg.Addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler), func(a net.Addr) { addrs <- a }) }()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, "/v1/products": 503, "/v1/carts/u1": 503} {
		start := time.Now()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s = %d %s, want %d", path, res.StatusCode, body, want)
		}
		if want == 503 && !strings.Contains(string(body), "unavailable") {
			t.Errorf("GET %s: %s, want an unavailable problem", path, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("GET %s took %s", path, d)
		}
	}
}
