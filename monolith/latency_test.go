package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/natsembed"
	"github.com/mitosis-dev/mitosis/shop/proctest"
)

// BenchmarkCheckoutSerial is the latency of one checkout, not its CPU: a single goroutine
// runs checkouts one after another through the HTTP handler, so ns/op is the wall time of one
// POST /v1/checkout (the cart add before each is left out of the timing). The store is
// JetStream, reached two ways:
//   - store=inprocess: embedded, in-process connection, as `go run ./monolith` runs it;
//   - store=process: a nats-server in another process over loopback TCP, as the Podman
//     stack's monolith reaches its NATS pod (without TLS and the pods' bridge), so that every
//     round trip wakes a thread of each process in turn.
//
// The difference between the two is what crossing processes adds to the checkout's eight
// round trips (orders' package doc) on this machine; the Podman stack adds the network
// between pods on top.
//
//	go test -run '^$' -bench CheckoutSerial -benchtime 500x -count 3 .
func BenchmarkCheckoutSerial(b *testing.B) {
	for _, store := range []string{"inprocess", "process"} {
		b.Run("store="+store, func(b *testing.B) {
			c := config{DataDir: b.TempDir(), AdminToken: testToken}
			if store == "process" {
				c.NatsURL, c.RequestKey = proctest.Start(b, natsEnv+"="+b.TempDir()), "serial-bench-request-key"
			}
			h := startHandler(b, c, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			admin := map[string]string{"Authorization": "Bearer " + testToken}
			const products = 50
			for p := 1; p <= products; p++ {
				serve(b, h, http.MethodPost, fmt.Sprintf("/v1/admin/inventory/sku-%04d", p), `{"add": 1000000}`, admin, http.StatusOK)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				i++
				user := fmt.Sprintf("serial-%d", i)
				serve(b, h, http.MethodPost, "/v1/carts/"+user+"/items", fmt.Sprintf(`{"product_id":"sku-%04d","quantity":1}`, 1+i%products), nil, http.StatusOK)
				body := fmt.Sprintf(`{"user_id":%q,"email":"b@example.com","address":{"street":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`, user)
				b.StartTimer()
				serve(b, h, http.MethodPost, "/v1/checkout", body, map[string]string{"Idempotency-Key": user}, http.StatusCreated)
			}
		})
	}
}

// natsEnv, set to a directory, makes the test binary a JetStream server storing its files
// there instead of running tests (see TestMain).
const natsEnv = "MITOSIS_BENCH_NATS_DIR"

// runNATS serves JetStream from dir on a port of 127.0.0.1 until its standard input closes.
// It prints its URL first.
func runNATS(dir string) error {
	srv, err := natsembed.Start(dir, "127.0.0.1:-1")
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	proctest.Serve(srv.ClientURL())
	return nil
}
