package podmanrt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/podman/v4/pkg/bindings/network"
	"github.com/containers/podman/v4/pkg/bindings/pods"
	"github.com/containers/podman/v4/pkg/bindings/volumes"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/podmanrt/podmanrttest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd)) // platform/podmanrt -> the repository
}

// buildImages builds the topology's images for this machine (stacktest.BuildImages).
func buildImages(t *testing.T, topo topology.Topology) map[string]imagebuild.Image {
	t.Helper()
	return stacktest.BuildImages(t, repoRoot(t), topo, "mitosis-test")
}

// monolithStack is what most of these tests run: the monolith topology without a
// collector, on a free edge address, its images built and loaded, and a runtime for a stack
// named for the test, taken down when the test ends. The tests need the edge's address
// before up (they check its forwarding rule), so the address is picked last, right before
// the caller's up: a port picked before the build (minutes on a clean clone) can be taken
// by another process meanwhile.
func monolithStack(t *testing.T) (topo topology.Topology, rt *podmanrt.Runtime, name, edge string) {
	t.Helper()
	podmanrttest.Require(t)
	images, err := topology.Get(topology.Monolith, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	imgs := buildImages(t, images)
	name = stacktest.StackName(t)
	rt = connect(t, name, imgs)
	for _, img := range imgs {
		if _, err := rt.LoadImage(t.Context(), img); err != nil {
			t.Fatal(err)
		}
	}
	edge = stacktest.FreeAddr(t)
	if topo, err = topology.Get(topology.Monolith, topology.Options{MonolithEdge: edge, Collector: topology.NoCollector}); err != nil {
		t.Fatal(err)
	}
	return topo, rt, name, edge
}

// upOptions are what the tests' ups pass unless they say otherwise: a PKI folder of the
// test's own, the test's secrets, a minute to be ready, progress written to progress.
func upOptions(t *testing.T, progress io.Writer) stack.UpOptions {
	return stack.UpOptions{PKI: t.TempDir(), AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: progress}
}

// podmanConn is a connection to the Podman API, to look at what a runtime made.
func podmanConn(ctx context.Context, t *testing.T) context.Context {
	t.Helper()
	conn, err := bindings.NewConnection(ctx, podmanrt.Socket())
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func connect(t *testing.T, name string, imgs map[string]imagebuild.Image) *podmanrt.Runtime {
	t.Helper()
	rt, err := podmanrt.Connect(context.Background(), podmanrt.Options{Stack: name, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := rt.Down(ctx, stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("cleanup down: %v", err)
		}
	})
	return rt
}

func TestLoadedImageIsNonRootWithLabels(t *testing.T) {
	conn := podmanrttest.Require(t)
	topo, err := topology.Get(topology.Monolith, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	imgs := buildImages(t, topo)
	rt := connect(t, stacktest.StackName(t), imgs)
	ctx := context.Background()
	img := imgs["nats-server"]
	if _, err := rt.LoadImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	if loaded, err := rt.LoadImage(ctx, img); err != nil || loaded {
		t.Errorf("second load: loaded=%v err=%v, want a no-op", loaded, err)
	}
	got, err := images.GetImage(conn, img.Ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	pl, _ := img.PlatformImage(imagebuild.HostPlatform())
	if "sha256:"+got.ID != pl.ID {
		t.Errorf("podman image ID %s, build says %s", got.ID, pl.ID)
	}
	if got.Config.User != "65532:65532" || strings.Join(got.Config.Entrypoint, " ") != "/usr/local/bin/nats-server" {
		t.Errorf("user %q entrypoint %v", got.Config.User, got.Config.Entrypoint)
	}
	for _, k := range []string{imagebuild.LabelVersion, imagebuild.LabelCreated, imagebuild.LabelSource, imagebuild.LabelRevision} {
		if got.Config.Labels[k] == "" {
			t.Errorf("label %s missing in podman: %v", k, got.Config.Labels)
		}
	}
}

// TestMonolithStackUpCheckoutKillHealDown is the whole life of a stack in Podman.
func TestMonolithStackUpCheckoutKillHealDown(t *testing.T) {
	topo, rt, name, edge := monolithStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := upOptions(t, &progress)

	// The host ports Podman picks for the monolith's pod are taken, on its first creation,
	// before it starts, as any connection of the machine may take them: up makes the pod
	// again, with other ports, without starting the first (a start that fails on a port
	// leaves the ports Podman bound before it held, the edge among them).
	monoPod := stack.ObjectName(name, topology.Monolith, "monolith")
	var made int
	var stolen []string
	rt.AfterCreate(func(pod string) {
		if pod != monoPod {
			return
		}
		if made++; made > 1 {
			if err := stack.CheckPort(edge); err != nil {
				t.Errorf("the edge as the pod is made again: %v, want it free", err)
			}
			return
		}
		for _, at := range hostPorts(t, pod) {
			if at == edge { // the test's own: taking it would fail every try
				continue
			}
			ln, err := net.Listen("tcp", at)
			if err != nil {
				t.Errorf("take %s: %v", at, err)
				continue
			}
			t.Cleanup(func() { ln.Close() })
			stolen = append(stolen, at)
		}
	})
	start := time.Now()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	t.Logf("up in %s:\n%s", time.Since(start).Round(time.Millisecond), progress.String())
	rt.AfterCreate(nil)
	if len(stolen) == 0 || made != 2 {
		t.Fatalf("the monolith's pod was made %d times with ports %v taken; want its picked ports taken and the pod made twice", made, stolen)
	}
	if now := hostPorts(t, monoPod); slices.ContainsFunc(stolen, func(at string) bool { return slices.Contains(now, at) }) {
		t.Fatalf("the monolith's pod publishes %v, some of which were taken (%v)", now, stolen)
	}
	base := "http://" + edge
	if code := stacktest.Get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz: %d", code)
	}
	stacktest.Checkout(t, base, "test-token", "ada")
	// Podman's conmon holds a published port while the pod runs.
	if err := stack.CheckPort(edge); !errors.Is(err, stack.ErrPortInUse) {
		t.Errorf("CheckPort of the published edge: %v, want ErrPortInUse", err)
	}

	// Published on 127.0.0.1 only, read-only, non-root, no capabilities, limited.
	conn, err := bindings.NewConnection(ctx, podmanrt.Socket())
	if err != nil {
		t.Fatal(err)
	}
	app := stack.ObjectName(name, topology.Monolith, "monolith") + "-app"
	data, err := containers.Inspect(conn, app, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := data.HostConfig
	mono, _ := topo.Archs[0].Service("monolith")
	if !hc.ReadonlyRootfs || data.Config.User != "65532:65532" || hc.Memory != int64(mono.MemoryMB)<<20 || hc.CpuQuota != int64(mono.CPUs*100000) {
		t.Errorf("container: readonly=%v user=%q memory=%d quota=%d, want the topology's %d MiB and %g CPUs",
			hc.ReadonlyRootfs, data.Config.User, hc.Memory, hc.CpuQuota, mono.MemoryMB, mono.CPUs)
	}
	if len(hc.CapAdd) != 0 || !strings.Contains(strings.Join(hc.SecurityOpt, ","), "no-new-privileges") {
		t.Errorf("capabilities added %v, security options %v", hc.CapAdd, hc.SecurityOpt)
	}
	podData, err := pods.Inspect(conn, stack.ObjectName(name, topology.Monolith, "nats"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for port, binds := range podData.InfraConfig.PortBindings {
		for _, b := range binds {
			if b.HostIP != "127.0.0.1" {
				t.Errorf("port %s published on %q, want 127.0.0.1", port, b.HostIP)
			}
		}
	}

	// Up again changes nothing, the workload identities included: the same certificates.
	before := podIDs(t, conn, name)
	certs := certificates(t, opts.PKI)
	if len(certs) == 0 {
		t.Errorf("up made no certificate under %s", opts.PKI)
	}
	progress.Reset()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if after := podIDs(t, conn, name); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("second up remade pods: %v -> %v\n%s", before, after, progress.String())
	}
	if again := certificates(t, opts.PKI); !maps.Equal(again, certs) {
		t.Errorf("second up changed the certificates: %v -> %v", certs, again)
	}

	// The renewer's pod holds the PKI folder: the monolith's certificate aged (as a week-old
	// stack's, its files the pods' user's), a SIGHUP to the renewer's container, and the
	// container's user renews it in place, the files still the pods' user's, nothing
	// remade, the monolith still serving.
	ca, err := identity.OpenCA(opts.PKI, name)
	if err != nil {
		t.Fatal(err)
	}
	identitytest.Age(t, ca, "monolith")
	aged := certificates(t, opts.PKI)[filepath.Join(ca.Dir("monolith"), identity.CertFile)]
	renewerApp := stack.ObjectName(name, topology.Renewer, topology.RenewerService) + "-app"
	if err := containers.Kill(conn, renewerApp, new(containers.KillOptions).WithSignal("SIGHUP")); err != nil {
		t.Fatalf("SIGHUP to the renewer: %v", err)
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		now := certificates(t, opts.PKI)[filepath.Join(ca.Dir("monolith"), identity.CertFile)]
		return now != aged, "the monolith's certificate is still the aged one"
	})
	for _, f := range []string{identity.CertFile, identity.KeyFile} {
		st, err := os.Stat(filepath.Join(ca.Dir("monolith"), f))
		if err != nil {
			t.Fatal(err)
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != imagebuild.UID || st.Mode().Perm() != 0o600 {
			t.Errorf("renewed %s: owner %d mode %v, want %d and 0600", f, sys.Uid, st.Mode().Perm(), imagebuild.UID)
		}
	}
	if after := podIDs(t, conn, name); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the renewal remade pods: %v -> %v", before, after)
	}
	stacktest.Checkout(t, base, "test-token", "grace")

	// A change to the app's spec alone (here its environment; a new image alike) replaces
	// the app container in the pod it has: every pod keeps its ID, and with it its network
	// attachment and published ports; the monolith's container is a new one, which carries
	// the change and serves what the old one wrote.
	appBefore, err := containers.Inspect(conn, app, nil)
	if err != nil {
		t.Fatal(err)
	}
	setting, err := topology.ParseEnv("monolith:MITOSIS_TEST_REPLACED=1")
	if err != nil {
		t.Fatal(err)
	}
	if topo, err = topology.Get(topology.Monolith, topology.Options{MonolithEdge: edge, Collector: topology.NoCollector, Env: []topology.EnvSetting{setting}}); err != nil {
		t.Fatal(err)
	}
	progress.Reset()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up with a new environment: %v\n%s", err, progress.String())
	}
	if !strings.Contains(progress.String(), monoPod+": changed, replacing its app container") || !strings.Contains(progress.String(), "monolith/nats: unchanged") {
		t.Errorf("up with a new environment, want the monolith's app container replaced and NATS unchanged:\n%s", progress.String())
	}
	if after := podIDs(t, conn, name); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a new environment remade pods: %v -> %v", before, after)
	}
	appAfter, err := containers.Inspect(conn, app, nil)
	if err != nil {
		t.Fatal(err)
	}
	if appAfter.ID == appBefore.ID || !slices.Contains(appAfter.Config.Env, "MITOSIS_TEST_REPLACED=1") || appAfter.Pod != appBefore.Pod {
		t.Errorf("the monolith's app container after up: ID %s (was %s), pod %s (was %s), env %v; want a new container in the same pod with MITOSIS_TEST_REPLACED=1",
			appAfter.ID, appBefore.ID, appAfter.Pod, appBefore.Pod, appAfter.Config.Env)
	}
	if body := stacktest.Orders(t, base, "grace"); !strings.Contains(string(body), `"paid"`) && !strings.Contains(string(body), `"shipped"`) {
		t.Errorf("grace's orders after the app was replaced: %s", body)
	}

	// A killed pod (`podman pod kill`) shows in status, and up heals it, remade with the same
	// address and hardware address, so that its peers' ARP caches still hold.
	addrBefore := netAddrs(t, conn, app)
	// Podman's conmon holds a published port while the pod runs.
	if err := stack.CheckPort(edge); !errors.Is(err, stack.ErrPortInUse) {
		t.Errorf("CheckPort of the published edge: %v, want ErrPortInUse", err)
	}
	if _, err := pods.Kill(conn, stack.ObjectName(name, topology.Monolith, "monolith"), new(pods.KillOptions).WithSignal("SIGKILL")); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		sts, err := rt.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range sts {
			if s.Service == "monolith" {
				return s.State != "running" && s.Health == stack.Unready, fmt.Sprintf("%+v", s)
			}
		}
		return false, "monolith missing from status"
	})
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("healing up: %v", err)
	}
	if after := netAddrs(t, conn, app); after != addrBefore {
		t.Errorf("the healed pod's addresses %s, before %s", after, addrBefore)
	}
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 3 { // the monolith, its NATS, the stack's renewer
		t.Fatalf("status: %+v", sts)
	}
	for _, s := range sts {
		if s.State != "running" || s.Health != stack.Ready || s.MemBytes == 0 {
			t.Errorf("after healing: %+v", s)
		}
	}
	// State survives the monolith's restart: it lives in NATS, and NATS was not touched.
	body := stacktest.Orders(t, base, "ada")
	if !strings.Contains(string(body), `"paid"`) && !strings.Contains(string(body), `"shipped"`) {
		t.Errorf("orders after heal: %s", body)
	}

	// killMonolith kills the monolith pod's processes behind Podman's back; its edge stays
	// forwarded to the dead pod. upRemakesMonolith runs up and checks that it remade the
	// monolith pod (saying why: want), left NATS alone, and that the edge answers again.
	monolith := stack.ObjectName(name, topology.Monolith, "monolith")
	killMonolith := func() {
		t.Helper()
		killBehindPodmansBack(t, conn, monolith)
		if err := stack.CheckPort(edge); !errors.Is(err, stack.ErrPortForwarded) {
			t.Errorf("CheckPort of the edge of a lost pod: %v, want ErrPortForwarded", err)
		}
	}
	upRemakesMonolith := func(want string) {
		t.Helper()
		progress.Reset()
		if err := rt.Up(ctx, topo, opts); err != nil {
			t.Fatalf("up: %v\n%s", err, progress.String())
		}
		if !strings.Contains(progress.String(), monolith+": "+want) || !strings.Contains(progress.String(), "monolith/nats: unchanged") {
			t.Errorf("up, want the monolith remade (%s) and NATS unchanged:\n%s", want, progress.String())
		}
		if code := stacktest.Get(t, base+"/readyz"); code != http.StatusOK {
			t.Errorf("readyz after up remade the monolith: %d", code)
		}
	}

	// Every process of the pod killed behind Podman's back, as when all of a machine's
	// processes are killed without a reboot: Podman still calls the pod running, and its
	// port-forwarding rules stay, leading nowhere. Status says lost, CheckPort says the edge,
	// though free to bind, is forwarded, and up remakes the pod.
	killMonolith()
	sts, err = rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Service == "monolith" && (s.State != "lost" || s.Health != stack.Unready) {
			t.Errorf("status of a pod whose processes were killed: %+v, want lost and unready", s)
		}
	}
	upRemakesMonolith("its process is gone")

	// Logs of one service.
	var logs bytes.Buffer
	if err := rt.Logs(ctx, stack.LogsOptions{Services: []string{"nats"}, Tail: 50}, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "monolith/nats | ") || strings.Contains(logs.String(), "monolith/monolith | ") {
		t.Errorf("logs of nats:\n%s", logs.String())
	}

	// The machine set-up script (which CI and make up run before anything else) stops every
	// container Podman calls running whose processes are gone, so their forwarding rules go:
	// a test server that the kernel happens to put on such a port is reached again. Only the
	// dead pod is touched, and up remakes it.
	killMonolith()
	killedAt := time.Now()
	setup := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(t), "platform", "setup", "podman.sh"))
	setup.Env = append(os.Environ(), "MITOSIS_PODMAN_SOCKET="+strings.TrimPrefix(podmanrt.Socket(), "unix://"))
	out, err := setup.CombinedOutput()
	if err != nil {
		t.Fatalf("setup/podman.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "have no process left: stopping them") {
		t.Errorf("setup/podman.sh did not report the lost pod:\n%s", out)
	}
	if err := stack.CheckPort(edge); err != nil {
		t.Errorf("the edge after setup/podman.sh stopped the lost pod: %v", err)
	}
	sts, err = rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		lost := s.Service == "monolith"
		if lost == (s.State == "running") || s.State == "lost" {
			t.Errorf("after setup/podman.sh (%s after the kill): %+v (only the monolith stopped, nothing lost); it said:\n%s\nPodman says:\n%s",
				time.Since(killedAt).Round(time.Millisecond), s, out, containerStates(t, conn, monolith))
		}
	}
	upRemakesMonolith("not running, remaking it")

	// Down removes lost pods too: both pods' processes killed behind Podman's back.
	killBehindPodmansBack(t, conn, monolith)
	killBehindPodmansBack(t, conn, stack.ObjectName(name, topology.Monolith, "nats"))
	start = time.Now()
	// Down keeps NATS's volume, as compose does; with Volumes it goes too.
	removed, err := rt.Down(ctx, stack.DownOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("down in %s: %s", time.Since(start).Round(time.Millisecond), removed)
	if removed.Pods != 3 || removed.Networks != 2 || removed.Volumes != 0 {
		t.Errorf("removed %s, want 3 pods and 2 networks (the renewer's too), and the volume kept", removed)
	}
	if removed, err = rt.Down(ctx, stack.DownOptions{Volumes: true}); err != nil || removed.Volumes != 1 || removed.Pods != 0 {
		t.Errorf("down with volumes: removed %s (%v), want the volume only", removed, err)
	}
	assertNothingLeft(t, conn, name)
	// Its forwarding rule went with the lost pod: the edge is free to serve again.
	if err := stack.CheckPort(edge); err != nil {
		t.Errorf("the edge after down: %v", err)
	}
}

// killBehindPodmansBack SIGKILLs the processes of every container of a pod and their
// conmons, without Podman's knowledge: the test shares the machine with rootful Podman.
func killBehindPodmansBack(t *testing.T, conn context.Context, pod string) {
	t.Helper()
	data, err := pods.Inspect(conn, pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	var conmons, procs []int
	for _, ct := range data.Containers {
		c, err := containers.Inspect(conn, ct.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.State.ConmonPid <= 0 || c.State.Pid <= 0 {
			t.Fatalf("container %s: pid %d, conmon %d", ct.Name, c.State.Pid, c.State.ConmonPid)
		}
		conmons, procs = append(conmons, c.State.ConmonPid), append(procs, c.State.Pid)
	}
	// The conmons first, and dead before their containers' processes are killed, so that
	// no conmon sees its container exit: it would run Podman's exit command, whose restart
	// policy starts the container again, which a machine whose processes were all killed
	// never sees.
	kill(t, pod, conmons)
	kill(t, pod, procs)
}

// kill sends SIGKILL to pids and waits until they are dead. A signal is delivered
// asynchronously: until a conmon has exited it still holds the pod's published ports. Dead
// means gone or a zombie (whose sockets are closed).
func kill(t *testing.T, pod string, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d of pod %s: %v", pid, pod, err)
		}
	}
	stacktest.WaitFor(t, 10*time.Second, func() (bool, string) {
		for _, pid := range pids {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err == nil && !bytes.Contains(stat, []byte(") Z ")) {
				return false, fmt.Sprintf("process %d of pod %s still running", pid, pod)
			}
		}
		return true, ""
	})
}

// containerStates says, one line per container of pod, what Podman records of it and
// whether its conmon lives: what a test that kills processes behind Podman's back shows
// when it fails.
func containerStates(t *testing.T, conn context.Context, pod string) string {
	t.Helper()
	data, err := pods.Inspect(conn, pod, nil)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ct := range data.Containers {
		c, err := containers.Inspect(conn, ct.ID, nil)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", ct.Name, err)
			continue
		}
		conmon := "gone"
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.State.ConmonPid)); err == nil {
			conmon = string(st[:min(len(st), 40)])
		}
		fmt.Fprintf(&b, "%s: %s (running %v) pid %d, restarts %d, started %s, finished %s; conmon %d: %s\n", ct.Name, c.State.Status, c.State.Running,
			c.State.Pid, c.RestartCount, c.State.StartedAt.Format(time.StampMilli), c.State.FinishedAt.Format(time.StampMilli), c.State.ConmonPid, conmon)
	}
	return b.String()
}

// netAddrs lists a container's IP and MAC addresses in each of its networks.
func netAddrs(t *testing.T, conn context.Context, ctr string) string {
	t.Helper()
	data, err := containers.Inspect(conn, ctr, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for name, n := range data.NetworkSettings.Networks {
		out = append(out, name+"="+n.IPAddress+"/"+n.MacAddress)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// netNames lists the networks a container is attached to, sorted, space-separated.
func netNames(t *testing.T, conn context.Context, ctr string) string {
	t.Helper()
	data, err := containers.Inspect(conn, ctr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(slices.Sorted(maps.Keys(data.NetworkSettings.Networks)), " ")
}

func podIDs(t *testing.T, conn context.Context, name string) []string {
	t.Helper()
	list, err := pods.List(conn, new(pods.ListOptions).WithFilters(map[string][]string{"label": {stack.LabelStack + "=" + name}}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range list {
		ids = append(ids, p.Name+"="+p.Id)
	}
	return ids
}

func assertNothingLeft(t *testing.T, conn context.Context, name string) {
	t.Helper()
	f := map[string][]string{"label": {stack.LabelStack + "=" + name}}
	if l, err := pods.List(conn, new(pods.ListOptions).WithFilters(f)); err != nil || len(l) != 0 {
		t.Errorf("pods left: %d (%v)", len(l), err)
	}
	if l, err := containers.List(conn, new(containers.ListOptions).WithAll(true).WithFilters(f)); err != nil || len(l) != 0 {
		t.Errorf("containers left: %d (%v)", len(l), err)
	}
	if l, err := network.List(conn, new(network.ListOptions).WithFilters(f)); err != nil || len(l) != 0 {
		t.Errorf("networks left: %d (%v)", len(l), err)
	}
	if l, err := volumes.List(conn, new(volumes.ListOptions).WithFilters(f)); err != nil || len(l) != 0 {
		t.Errorf("volumes left: %d (%v)", len(l), err)
	}
	// Infra containers carry no labels of ours: check by name too.
	all, err := containers.List(conn, new(containers.ListOptions).WithAll(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if strings.Contains(c.PodName, name) || strings.Contains(strings.Join(c.Names, ","), name) {
			t.Errorf("container left: %v in pod %s", c.Names, c.PodName)
		}
	}
}

// TestBothArchitecturesSideBySide runs the default topology: each architecture with its own
// NATS and network, both edges answering and taking a checkout whose whole trace reaches the
// stack's collector, then nothing left after down.
func TestBothArchitecturesSideBySide(t *testing.T) {
	podmanrttest.Require(t)
	topo, err := topology.Get(topology.Both, topology.Options{MonolithEdge: stacktest.AnyPort, ServicesEdge: stacktest.AnyPort, Collector: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	imgs := buildImages(t, topo)
	name := stacktest.StackName(t)
	rt := connect(t, name, imgs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	start := time.Now()
	if err := rt.Up(ctx, topo, stack.UpOptions{PKI: t.TempDir(), AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: 2 * time.Minute, Progress: &progress}); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	t.Logf("up in %s", time.Since(start).Round(time.Millisecond))
	traceIDs := map[string]string{}
	for _, arch := range []string{topology.Monolith, topology.Services} {
		base := "http://" + stacktest.EdgeAddr(t, rt, topo, arch)
		if code := stacktest.Get(t, base+"/readyz"); code != http.StatusOK {
			t.Fatalf("GET %s/readyz: %d", base, code)
		}
		_, traceIDs[arch] = stacktest.CheckoutTraced(t, base, "test-token", "grace")
	}
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mem := map[string]uint64{}
	var collector string
	for _, s := range sts {
		if s.State != "running" || s.Health != stack.Ready {
			t.Errorf("status: %+v", s)
		}
		mem[s.Arch] += s.MemBytes
		if s.Arch == topology.Telemetry {
			collector = "http://" + s.Addr
		}
	}
	if len(sts) != 13 {
		t.Errorf("%d services in status, want 13 (2 NATS, monolith, 7 contexts, gateway, collector, renewer)", len(sts))
	}
	// `mitosis traces compare` right after the checkouts compares exactly them, whole: the
	// pods export every second (topology.ExportEnv), and the command waits for that.
	var cmp bytes.Buffer
	if err := tracecompare.Run(ctx, tracecompare.Options{Collector: collector, AService: "monolith", BService: "gateway",
		Operation: tracecompare.DefaultOperation, Last: 1, ALabel: "monolith", BLabel: "services", Format: "json",
		Settle: 3 * time.Second}, &cmp); err != nil {
		t.Fatalf("traces compare: %v", err)
	}
	var compared struct {
		Sides []struct {
			TraceIDs []string `json:"trace_ids"`
			Summary  struct {
				Incomplete int `json:"incomplete_traces"`
			} `json:"summary"`
		} `json:"sides"`
	}
	if err := json.Unmarshal(cmp.Bytes(), &compared); err != nil {
		t.Fatal(err)
	}
	for i, arch := range []string{topology.Monolith, topology.Services} {
		if s := compared.Sides[i]; len(s.TraceIDs) != 1 || s.TraceIDs[0] != traceIDs[arch] || s.Summary.Incomplete != 0 {
			t.Errorf("traces compare, %s: traces %v (%d incomplete), want the checkout's %s, whole", arch, s.TraceIDs, s.Summary.Incomplete, traceIDs[arch])
		}
	}

	// Every pod exports to the collector: each checkout is one connected trace there, from
	// the edge through every hop to both consumers of order-paid.
	want := map[string][]string{
		topology.Monolith: {"monolith"},
		topology.Services: {"cart", "catalog", "gateway", "inventory", "notify", "orders", "payments", "shipping"},
	}
	for arch, id := range traceIDs {
		stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
			return stacktest.CheckoutTrace(ctx, collector, id, arch, want[arch])
		})
	}
	t.Logf("memory as status reports it: monolith %.1f MiB, services %.1f MiB", float64(mem["monolith"])/(1<<20), float64(mem["services"])/(1<<20))

	// One network attachment per pod: the collector joins each architecture's network (the
	// traces above came that way), the pods do not join the collector's.
	conn := podmanConn(ctx, t)
	collectorPod := stack.ObjectName(name, topology.Telemetry, "collector")
	collectorNets := func() string {
		t.Helper()
		data, err := pods.Inspect(conn, collectorPod, nil)
		if err != nil {
			t.Fatal(err)
		}
		return netNames(t, conn, data.InfraContainerID)
	}
	if got, want := netNames(t, conn, stack.ObjectName(name, topology.Services, "orders")+"-app"), rt.NetworkName(topology.Services); got != want {
		t.Errorf("the orders pod's networks: %s, want %s only", got, want)
	}
	if got, want := collectorNets(), rt.NetworkName(topology.Monolith)+" "+rt.NetworkName(topology.Services)+" "+rt.NetworkName(topology.Telemetry); got != want {
		t.Errorf("the collector's networks: %s, want %s", got, want)
	}
	// Down of one architecture: the collector stays, runs, and leaves the network that goes.
	removed, err := rt.Down(ctx, stack.DownOptions{Archs: []string{topology.Monolith}})
	if err != nil || removed.Pods != 2 || removed.Networks != 1 {
		t.Fatalf("down of the monolith: removed %s (%v), want 2 pods and 1 network", removed, err)
	}
	if got, want := collectorNets(), rt.NetworkName(topology.Services)+" "+rt.NetworkName(topology.Telemetry); got != want {
		t.Errorf("the collector's networks after the monolith's down: %s, want %s", got, want)
	}
	if code := stacktest.Get(t, collector+"/healthz"); code != http.StatusOK {
		t.Errorf("the collector after the monolith's down: GET /healthz %d", code)
	}

	// Down of the last architecture: the collector and the renewer go with it, in the same pass.
	start = time.Now()
	removed, err = rt.Down(ctx, stack.DownOptions{Archs: []string{topology.Services}, Volumes: true})
	if err != nil || removed.Pods != 11 || removed.Networks != 3 {
		t.Fatalf("down of the services: removed %s (%v), want their 9 pods, the collector's and the renewer's, and their 3 networks", removed, err)
	}
	t.Logf("down of the services and the collector in %s: %s", time.Since(start).Round(time.Millisecond), removed)
	if sts, err := rt.Status(ctx); err != nil || len(sts) != 0 {
		t.Errorf("status after the last architecture's down: %+v (%v), want nothing", sts, err)
	}
	// The monolith's volume, which its down kept.
	if removed, err = rt.Down(ctx, stack.DownOptions{Volumes: true}); err != nil || removed.Volumes != 1 || removed.Pods != 0 {
		t.Errorf("down with volumes: removed %s (%v), want the monolith's volume only", removed, err)
	}
	assertNothingLeft(t, conn, name)
}

// hostPorts lists the host addresses a pod publishes.
func hostPorts(t *testing.T, pod string) []string {
	t.Helper()
	data, err := pods.Inspect(podmanConn(t.Context(), t), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, binds := range data.InfraConfig.PortBindings {
		for _, b := range binds {
			out = append(out, net.JoinHostPort(b.HostIP, b.HostPort))
		}
	}
	return out
}

// certificates returns the serial of every certificate file under dir, by path.
func certificates(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != identity.CertFile {
			return err
		}
		src, err := identity.Load(filepath.Dir(path))
		if err != nil {
			return err
		}
		c, err := src.Leaf()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out[path] = c.SerialNumber.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
