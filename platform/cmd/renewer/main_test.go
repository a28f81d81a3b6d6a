package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
)

const testStack = "rn-test"

// serial is the serial number of the certificate in an identity folder.
func serial(t *testing.T, dir string) string {
	t.Helper()
	return fmt.Sprintf("%x", identitytest.Leaf(t, dir).SerialNumber)
}

// health is what /healthz at addr answers: its status and its last pass; 0 until it listens.
func health(t *testing.T, addr string) (int, passResult) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, passResult{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res passResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("/healthz: %v: %s", err, b)
	}
	return resp.StatusCode, res
}

// waitFor polls cond every 20 ms for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
	}
}

// A running renewer gives every certificate past half its life (the tools' too) a new one at
// its first pass and on SIGHUP, leaves current ones alone, and says so on /healthz.
func TestRenewsWhatIsDue(t *testing.T) {
	pki := t.TempDir()
	ca, err := identity.OpenCA(pki, testStack)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.EnsureAll([]string{"cart", "orders", identity.Tooling}); err != nil {
		t.Fatal(err)
	}
	identitytest.Age(t, ca, "cart")
	identitytest.Age(t, ca, identity.Tooling)
	before := map[string]string{}
	for _, id := range []string{"cart", "orders", identity.Tooling} {
		before[id] = serial(t, ca.Dir(id))
	}

	addr, metrics := stacktest.FreeAddr(t), stacktest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-pki", pki, "-stack", testStack, "-addr", addr, "-metrics", metrics}, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	waitFor(t, "a first pass", func() bool {
		code, res := health(t, addr)
		return code == http.StatusOK && !res.At.IsZero()
	})
	if _, res := health(t, addr); !slices.Equal(res.Renewed, []string{"cart", identity.Tooling}) {
		t.Errorf("the first pass renewed %v, want [cart tooling]", res.Renewed)
	}
	for _, id := range []string{"cart", identity.Tooling} {
		if serial(t, ca.Dir(id)) == before[id] {
			t.Errorf("%s's certificate, past half its life, was not renewed", id)
		}
	}
	if serial(t, ca.Dir("orders")) != before["orders"] {
		t.Error("the orders' certificate, current, was replaced")
	}
	// Each identity's expiry, as Prometheus scrapes it: the renewed one's a week away.
	families := telemetrytest.Scrape(t, metrics)
	for _, id := range []string{"cart", "orders", identity.Tooling} {
		got, ok := families.Sum("mitosis_certificate_expiry_seconds", map[string]string{"identity": id})
		if want := identitytest.Leaf(t, ca.Dir(id)).NotAfter.Unix(); !ok || int64(got) != want {
			t.Errorf("%s's expiry on /metrics: %v (found %v), want %d", id, got, ok, want)
		}
	}

	// Aged again while it waits its hour: a SIGHUP makes it look now.
	identitytest.Age(t, ca, "orders")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orders' certificate renewed after SIGHUP", func() bool {
		var now string
		// Under the folder's lock, as the renewer writes: never between a key and its certificate.
		if err := identity.Locked(pki, func() error { now = serial(t, ca.Dir("orders")); return nil }); err != nil {
			t.Fatal(err)
		}
		return now != before["orders"]
	})
}

// With nothing it may renew (no CA in its folder: it never makes one), it is unhealthy and
// says why; it tries again -retry later, not -every, and is healthy once a pass goes well.
func TestUnhealthyWithoutACA(t *testing.T) {
	pki := t.TempDir()
	addr := stacktest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-pki", pki, "-stack", testStack, "-addr", addr, "-retry", "200ms"}, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "a first pass", func() bool { _, res := health(t, addr); return !res.At.IsZero() })
	if code, res := health(t, addr); code != http.StatusServiceUnavailable || res.Error == "" {
		t.Errorf("/healthz: %d %+v, want 503 with the error", code, res)
	}
	if _, err := os.Stat(filepath.Join(pki, identity.CAFile)); err == nil {
		t.Error("the renewer made a CA")
	}
	// The CA made (an up) with a certificate due: the next try, well before the hour,
	// renews it.
	err := identity.Locked(pki, func() error {
		ca, err := identity.OpenCA(pki, testStack)
		if err != nil {
			return err
		}
		if _, err := ca.Ensure("cart"); err != nil {
			return err
		}
		identitytest.Age(t, ca, "cart")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "healthy again after a failed pass", func() bool {
		code, res := health(t, addr)
		return code == http.StatusOK && slices.Equal(res.Renewed, []string{"cart"})
	})
	if err := run(context.Background(), []string{"-pki", pki}, func(string) string { return "" }, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("run without -stack started")
	}
}
