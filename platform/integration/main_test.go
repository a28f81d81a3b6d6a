package integration_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/integration"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// env is what TestMain prepares once for every suite: the images built and loaded, the run,
// and the microservices stack the behaviour and fault suites share. It is package state
// because TestMain has no other way to hand anything to the tests.
var env struct {
	skip   string // why the suites skip ("" runs them)
	run    string
	token  string
	pki    string // the stacks' CAs and identities, one folder per stack
	images map[string]imagebuild.Image

	mu          sync.Mutex
	services    *integration.Stack
	servicesErr error
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() {
		env.skip = "integration suites skipped in -short mode"
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rt, err := integration.Connect(ctx)
	if err != nil {
		if os.Getenv("REQUIRE_CONTAINERS") == "1" {
			fmt.Fprintf(os.Stderr, "integration: %v (REQUIRE_CONTAINERS=1: a missing engine fails the run; %s)\n", err, integration.EnableHint)
			return 1
		}
		env.skip = fmt.Sprintf("skipped, %v: %s to enable (REQUIRE_CONTAINERS=1 makes this a failure)", err, integration.EnableHint)
		return m.Run()
	}
	env.run = integration.NewRunID()
	env.token = "it-" + apitest.NewID("token")
	if env.pki, err = os.MkdirTemp("", "mitosis-it-pki-"); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(env.pki)
	if n, err := integration.SweepStale(ctx, env.run); err != nil || n > 0 {
		fmt.Fprintf(os.Stderr, "integration: swept %d objects of stale runs (err: %v)\n", n, err)
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	imgs, rep, err := integration.BuildImages(ctx, rt, integration.ImagesOptions{Root: filepath.Dir(filepath.Dir(wd))}) // platform/integration -> the repository
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	env.images = imgs
	fmt.Printf("integration: run %s: %d images (%d built in %s, %d loaded into Podman in %s)\n",
		env.run, len(imgs), rep.Built, rep.Build.Round(time.Millisecond), rep.Loaded, rep.Load.Round(time.Millisecond))

	code := m.Run()

	env.mu.Lock()
	defer env.mu.Unlock()
	if env.services != nil {
		if err := env.services.Terminate(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintln(os.Stderr, "integration: terminate the services stack:", err)
			code = max(code, 1)
		}
	}
	var keep []string
	for _, img := range imgs {
		keep = append(keep, img.Ref)
	}
	_, _ = integration.PruneImages(context.WithoutCancel(ctx), keep)
	return code
}

// requireEngine skips the test when TestMain found no engine (or -short).
func requireEngine(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

func arch(t *testing.T, name string) topology.Arch {
	t.Helper()
	topo, err := topology.Get(name, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	return topo.Archs[0]
}

// startStack starts an architecture for one test, removed when the test ends; each of with
// changes its options first.
func startStack(t *testing.T, name string, with ...func(*integration.StackOptions)) *integration.Stack {
	t.Helper()
	start := time.Now()
	opts := integration.StackOptions{
		Run: env.run, Arch: arch(t, name), Images: env.images, AdminToken: env.token, RequestKey: env.token + "-request-key",
		PKI: filepath.Join(env.pki, name),
	}
	for _, f := range with {
		f(&opts)
	}
	s, err := integration.Start(t.Context(), opts)
	if s != nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := s.Terminate(ctx); err != nil {
				t.Errorf("terminate %s: %v", s.Name, err)
			}
		})
		logsOnFailure(t, s)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s started in %s", s.Name, time.Since(start).Round(time.Millisecond))
	return s
}

// servicesStack returns the microservices stack the behaviour and fault suites share,
// starting it on first use; TestMain removes it.
func servicesStack(t *testing.T) *integration.Stack {
	t.Helper()
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.services == nil && env.servicesErr == nil {
		start := time.Now()
		// Not the test's context: the stack outlives the test that starts it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		env.services, env.servicesErr = integration.Start(ctx, integration.StackOptions{
			Run: env.run, Arch: arch(t, topology.Services), Images: env.images, AdminToken: env.token, RequestKey: env.token + "-request-key",
			PKI: filepath.Join(env.pki, topology.Services),
		})
		if env.servicesErr == nil {
			t.Logf("%s started in %s", env.services.Name, time.Since(start).Round(time.Millisecond))
		}
	}
	if env.services != nil {
		logsOnFailure(t, env.services)
	}
	if env.servicesErr != nil {
		t.Fatal(env.servicesErr)
	}
	return env.services
}

// logsOnFailure prints the end of every container's log of s when t fails, with the failure.
func logsOnFailure(t *testing.T, s *integration.Stack) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var buf bytes.Buffer
		s.WriteLogs(ctx, &buf, 150)
		t.Logf("container logs of %s (last 150 lines each):\n%s", s.Name, buf.String())
	})
}

// target is the apitest target of a stack's edge.
func target(t *testing.T, s *integration.Stack) apitest.Target {
	t.Helper()
	url, err := s.URL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return apitest.Target{BaseURL: url, AdminToken: env.token}
}
