package deploytest_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/network"
	"github.com/containers/podman/v4/pkg/bindings/pods"
	"github.com/containers/podman/v4/pkg/bindings/volumes"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/kube"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// testRepo is where the tests' images live in Podman, apart from the real stack's.
const testRepo = "localhost/mitosis-k8s-test"

// env is what TestMain prepares once: TestMain has no other way to hand it to the tests.
var env struct {
	skip   string // why the tests skip ("" runs them)
	root   string
	state  string // the build's state (its cache survives runs: unchanged images are not rebuilt)
	conn   context.Context
	images map[string]imagebuild.Image
	tag    string // the run's tag of every image in testRepo: what the tests play
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	require := os.Getenv("REQUIRE_CONTAINERS") == "1"
	if testing.Short() {
		env.skip = "deploy tests skipped in -short mode"
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := kube.Connect(ctx, "")
	if err != nil {
		if require {
			fmt.Fprintf(os.Stderr, "deploytest: %v; REQUIRE_CONTAINERS=1, so this fails\n", err)
			return 1
		}
		env.skip = fmt.Sprintf("no Podman API: %v", err)
		return m.Run()
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploytest:", err)
		return 1
	}
	env.conn = conn
	env.root = filepath.Dir(filepath.Dir(wd)) // platform/deploytest -> the repository
	env.state = filepath.Join(os.TempDir(), "mitosis-k8s-test-state")
	// Every shipped overlay's images: TestKubePlay plays the hybrid too.
	t, err := topology.Get(strings.Join(playedArchs, ","), topology.Options{Collector: topology.NoCollector})
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploytest:", err)
		return 1
	}
	start := time.Now()
	env.images, err = kube.BuildImages(ctx, t, kube.ImagesOptions{Root: env.root, State: env.state, Repo: testRepo, Stored: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploytest: build images:", err)
		return 1
	}
	// The tests play this run's tag, never a build of their own: the workspace may change
	// while they run (a rebuild would load new tags and drop the old, unused ones).
	env.tag = runID("run-")
	if _, err := kube.TagAs(ctx, conn, env.images, testRepo, env.tag); err != nil {
		fmt.Fprintln(os.Stderr, "deploytest:", err)
		return 1
	}
	fmt.Printf("deploytest: %d images built (or cached) and loaded in %s\n", len(env.images), time.Since(start).Round(time.Millisecond))
	code := m.Run()
	if err := kube.Untag(context.WithoutCancel(ctx), conn, slices.Collect(maps.Keys(env.images)), testRepo, env.tag); err != nil {
		fmt.Fprintln(os.Stderr, "deploytest:", err)
		code = 1
	}
	return code
}

// playedArchs are the overlays TestKubePlay plays: each shipped architecture, so that a
// split's overlay is run as well as rendered.
var playedArchs = []string{topology.Monolith, topology.Services, "hybrid"}

func needPodman(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

func runID(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// play plays arch's overlay under prefix, as `mitosis kube play --arch <arch> --prefix
// <prefix> --repo <testRepo> --tag <the run's> --<arch>-edge <edge>` does: the images the
// run loaded, the edge published at edge. It returns what it printed.
func play(arch, prefix, edge string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := kube.PlayStack(ctx, kube.StackOptions{Root: env.root, State: env.state, Socket: podmanrt.Socket(),
		Prefix: prefix, Arch: arch, Edges: map[string]string{arch: edge}, Repo: testRepo, Tag: env.tag,
		ReadyTimeout: 3 * time.Minute, Progress: &out})
	return out.String(), err
}

// down removes what play made of arch under prefix, as `mitosis kube down` does.
func down(arch, prefix string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	removed, err := kube.Down(ctx, env.conn, prefix, []string{arch})
	return removed.String(), err
}

// checkout stocks a product, fills a cart, checks out and waits until the order is shipped
// (the event went through NATS to shipping and back): the shop works end to end. It returns
// the client and the order.
func checkout(t *testing.T, base, token string) (*apitest.Client, apitest.Order) {
	t.Helper()
	c := apitest.NewClient(apitest.Target{BaseURL: base, AdminToken: token})
	c.PollTimeout = 60 * time.Second // two cores shared by a dozen containers
	c.WaitReady(t)
	p := c.NewStockedProduct(t, 1250, 300, 5)
	user := apitest.NewID("k8s-user")
	c.AddToCart(t, user, p.ID, 2)
	o := c.Checkout(t, apitest.NewID("key"), apitest.NewCheckout(user, apitest.CardApproved))
	if o.Status != apitest.StatusPaid || len(o.Items) != 1 || o.Items[0].Quantity != 2 {
		t.Fatalf("checkout: %+v", o)
	}
	c.WaitShipped(t, o.ID)
	c.ExpectStock(t, p.ID, 3, 0, 2)
	return c, o
}

// leftovers lists what Podman still holds whose name contains the run's prefix, or whose
// labels name it.
func leftovers(t *testing.T, prefix string, labels map[string][]string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.conn, 30*time.Second)
	defer cancel()
	var out []string
	if list, err := pods.List(ctx, nil); err == nil {
		for _, p := range list {
			if strings.Contains(p.Name, prefix) || p.Labels[stack.LabelStack] == prefix {
				out = append(out, "pod "+p.Name)
			}
		}
	}
	if list, err := containers.List(ctx, new(containers.ListOptions).WithAll(true)); err == nil {
		for _, c := range list {
			if strings.Contains(strings.Join(c.Names, ","), prefix) || c.Labels[stack.LabelStack] == prefix {
				out = append(out, "container "+strings.Join(c.Names, ","))
			}
		}
	}
	if list, err := volumes.List(ctx, nil); err == nil {
		for _, v := range list {
			if strings.Contains(v.Name, prefix) || v.Labels[stack.LabelStack] == prefix {
				out = append(out, "volume "+v.Name)
			}
		}
	}
	if list, err := network.List(ctx, nil); err == nil {
		for _, n := range list {
			if strings.Contains(n.Name, prefix) || n.Labels[stack.LabelStack] == prefix {
				out = append(out, "network "+n.Name)
			}
		}
	}
	for k, vs := range labels {
		for _, v := range vs {
			if list, err := containers.List(ctx, new(containers.ListOptions).WithAll(true).WithFilters(map[string][]string{"label": {k + "=" + v}})); err == nil {
				for _, c := range list {
					out = append(out, "labelled container "+strings.Join(c.Names, ","))
				}
			}
		}
	}
	return out
}

// TestKubePlay plays each shipped overlay on Podman as `mitosis kube play` does (the
// monolith, the services, the hybrid), reaches /readyz on the published port, checks out,
// and takes it down as `mitosis kube down` does, which must leave nothing behind.
// The monolith is played again (its data kept), and the stack's renewer, played beside it,
// renews an aged certificate that the monolith then serves with.
func TestKubePlay(t *testing.T) {
	needPodman(t)
	for _, arch := range playedArchs {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			// MITOSIS_TEST_STACK_PREFIX, as for every test's stack (stacktest.StackName).
			prefix := runID(cmp.Or(os.Getenv("MITOSIS_TEST_STACK_PREFIX"), "mitosis-k8s-test-"))
			edge := stacktest.FreeAddr(t)
			downed := false
			t.Cleanup(func() {
				if !downed {
					if out, err := down(arch, prefix); err != nil {
						t.Errorf("kube down: %v\n%s", err, out)
					}
				}
				if left := leftovers(t, prefix, nil); len(left) > 0 {
					t.Errorf("kube down left %v", left)
				}
			})
			start := time.Now()
			out, err := play(arch, prefix, edge)
			if err != nil {
				t.Fatalf("kube play: %v\n%s", err, out)
			}
			t.Logf("kube play %s: ready in %s\n%s", arch, time.Since(start).Round(time.Millisecond), out)
			token, err := os.ReadFile(filepath.Join(env.state, "admin-token"))
			if err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			c, order := checkout(t, "http://"+edge, strings.TrimSpace(string(token)))
			t.Logf("checkout %s: shipped in %s", arch, time.Since(start).Round(time.Millisecond))
			if arch == topology.Monolith {
				// Playing again replaces the pods and keeps NATS's volume: the order is still there.
				start = time.Now()
				if out, err := play(arch, prefix, edge); err != nil {
					t.Fatalf("kube play again: %v\n%s", err, out)
				}
				if got := c.GetOrder(t, order.ID); got.Status != apitest.StatusShipped {
					t.Errorf("after playing again: %+v", got)
				}
				t.Logf("kube play %s again: ready in %s, data kept", arch, time.Since(start).Round(time.Millisecond))
				renewedInPlay(t, prefix, arch)
				// The monolith reads its renewed identity without a restart: a checkout
				// goes through its and NATS's TLS again.
				checkout(t, "http://"+edge, strings.TrimSpace(string(token)))
			}
			out, err = down(arch, prefix)
			downed = true
			if err != nil {
				t.Fatalf("kube down: %v\n%s", err, out)
			}
			t.Logf("kube down %s: %s", arch, strings.TrimSpace(out))
		})
	}
}

// renewedInPlay checks the stack's renewer that kube play plays beside the overlay: the
// monolith's certificate aged (as a week-old stack's), a SIGHUP to the renewer's container,
// and the certificate is renewed in place, the files still the images' user's.
func renewedInPlay(t *testing.T, prefix, arch string) {
	t.Helper()
	ca, err := identity.OpenCA(stack.PKIDir(env.state, prefix), prefix)
	if err != nil {
		t.Fatal(err)
	}
	aged := identitytest.Age(t, ca, topology.Monolith)
	// kube play names a pod's container <pod>-<container>.
	app := kube.ObjectName(prefix, arch, topology.RenewerService) + "-pod-0-" + topology.RenewerService
	if err := containers.Kill(env.conn, app, new(containers.KillOptions).WithSignal("SIGHUP")); err != nil {
		t.Fatalf("SIGHUP to the renewer: %v", err)
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		serial := fmt.Sprintf("%x", identitytest.Leaf(t, ca.Dir(topology.Monolith)).SerialNumber)
		return serial != aged, "the monolith's certificate is still the aged one"
	})
	for _, f := range []string{identity.CertFile, identity.KeyFile} {
		st, err := os.Stat(filepath.Join(ca.Dir(topology.Monolith), f))
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != imagebuild.UID {
			t.Errorf("renewed %s: user %d's, want the images' user %d", f, uid, imagebuild.UID)
		}
	}
}

// TestComposeMonolith brings the monolith profile of compose/compose.yaml up with Debian's
// docker-compose against Podman's Docker-compatible socket, checks out, and takes it down.
func TestComposeMonolith(t *testing.T) {
	dc := needCompose(t)
	// MITOSIS_TEST_STACK_PREFIX, as TestKubePlay's.
	prefix := cmp.Or(os.Getenv("MITOSIS_TEST_STACK_PREFIX"), "mitosis-") + "compose-test-"
	project := runID(prefix)
	const repo = "localhost/mitosis-compose-test"
	tag := strings.TrimPrefix(project, prefix)
	edge := stacktest.FreeAddr(t)
	port := edge[strings.LastIndex(edge, ":")+1:]
	token := apitest.NewID("compose-token")
	names := slices.Collect(maps.Keys(env.images))
	ctx := context.Background()
	if _, err := kube.TagAs(ctx, env.conn, env.images, repo, tag); err != nil {
		t.Fatal(err)
	}
	// Its NATS users' passwords, as mitosis certs nats-users --format env gives them: every
	// user of the file (both profiles'), since compose reads every service's variables.
	both, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	var natsEnv []string
	for _, u := range natsauth.Users(both) {
		natsEnv = append(natsEnv, natsauth.PasswordEnv(u)+"="+apitest.NewID("pw"))
	}
	// And the identities, as mitosis certs issue --for-containers makes them, mounted from
	// MITOSIS_PKI: the monolith and its NATS speak TLS.
	pki := t.TempDir()
	if _, err := stack.Identities(project, both, stack.UpOptions{PKI: pki}, &[2]int{imagebuild.UID, imagebuild.UID}); err != nil {
		t.Fatal(err)
	}
	// The monolith's certificate aged, as a week-old project's: the project's renewer
	// renews it in place, the file still the images' user's, and the checkout that follows
	// goes through the monolith's and NATS's TLS with what it renewed.
	ca, err := identity.OpenCA(pki, project)
	if err != nil {
		t.Fatal(err)
	}
	aged := identitytest.Age(t, ca, topology.Monolith)
	renewed := func(t *testing.T) {
		certPath := filepath.Join(ca.Dir(topology.Monolith), identity.CertFile)
		stacktest.WaitFor(t, 60*time.Second, func() (bool, string) {
			serial := fmt.Sprintf("%x", identitytest.Leaf(t, ca.Dir(topology.Monolith)).SerialNumber)
			return serial != aged, "the monolith's certificate is still the aged one"
		})
		st, err := os.Stat(certPath)
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != imagebuild.UID {
			t.Errorf("the renewed certificate is user %d's, want the images' user %d", uid, imagebuild.UID)
		}
	}
	natsEnv = append(natsEnv, manifests.ComposePKIVar+"="+pki, manifests.ComposeStackVar+"="+project)
	composeCheckout(t, dc, []string{"-f", filepath.Join(env.root, "compose", "compose.yaml"), "-p", project, "--profile", topology.Monolith},
		append(natsEnv,
			"SHOP_ADMIN_TOKEN="+token,
			"SHOP_REQUEST_KEY="+token+"-request-key",
			"MITOSIS_REGISTRY="+repo,
			"MITOSIS_TAG="+tag,
			"MITOSIS_MONOLITH_PORT="+port,
		), project, "http://127.0.0.1:"+port, token,
		func() error { return kube.Untag(context.Background(), env.conn, names, repo, tag) }, renewed)
}

// needCompose returns Debian's docker-compose, or skips the test where it is missing (fails
// it with REQUIRE_CONTAINERS=1).
func needCompose(t *testing.T) string {
	t.Helper()
	needPodman(t)
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("REQUIRE_CONTAINERS") == "1" {
			t.Fatal("docker-compose is missing (apt-get install --no-install-recommends docker-compose); REQUIRE_CONTAINERS=1")
		}
		t.Skip("docker-compose not installed (apt-get install --no-install-recommends docker-compose)")
	}
	return dc
}

// composeCheckout brings a compose project up with docker-compose (args name its file,
// project and profile) against Podman's Docker-compatible socket, its variables from
// environ, runs whileUp (if not nil) once it is up, checks out through edge, and takes it
// down. Whatever fails, the cleanup takes the project down, untags the images and checks
// that nothing of the project is left.
func composeCheckout(t *testing.T, dc string, args, environ []string, project, edge, token string, untag func() error, whileUp func(*testing.T)) {
	t.Helper()
	compose := func(verb ...string) (string, error) {
		cmd := exec.Command(dc, append(slices.Clone(args), verb...)...)
		// compose interpolates from its environment as from a .env file; the environment
		// also carries a PEM's line breaks, whatever a .env's quoting.
		cmd.Env = append(append(os.Environ(), environ...), "DOCKER_HOST="+podmanrt.Socket())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	labels := map[string][]string{"com.docker.compose.project": {project}}
	downed := false
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := compose("logs", "--no-color", "--tail", "40")
			t.Logf("compose logs:\n%s", out)
		}
		if !downed {
			if out, err := compose("down", "-v", "--remove-orphans"); err != nil {
				t.Errorf("compose down: %v\n%s", err, out)
			}
		}
		if err := untag(); err != nil {
			t.Error(err)
		}
		if left := leftovers(t, project, labels); len(left) > 0 {
			t.Errorf("compose down left %v", left)
		}
	})
	start := time.Now()
	if out, err := compose("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	t.Logf("compose up: %s", time.Since(start).Round(time.Millisecond))
	if whileUp != nil {
		whileUp(t)
	}
	start = time.Now()
	_, _ = checkout(t, edge, token)
	t.Logf("checkout: shipped in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	out, err := compose("down", "-v", "--remove-orphans")
	downed = true
	if err != nil {
		t.Fatalf("compose down: %v\n%s", err, out)
	}
	t.Logf("compose down: %s", time.Since(start).Round(time.Millisecond))
}
