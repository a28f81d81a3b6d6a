package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	kubeapi "github.com/containers/podman/v4/pkg/bindings/kube"
	"github.com/containers/podman/v4/pkg/bindings/network"
	"github.com/containers/podman/v4/pkg/bindings/pods"
	"github.com/containers/podman/v4/pkg/bindings/volumes"

	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Connect reaches the Podman API at socket (default podmanrt.Socket()) and returns the
// bindings' connection; podmanrt.ErrUnavailable when nothing answers.
func Connect(ctx context.Context, socket string) (context.Context, error) {
	if socket == "" {
		socket = podmanrt.Socket()
	}
	if u, err := url.Parse(socket); err == nil && u.Scheme == "unix" {
		if _, err := os.Stat(u.Path); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", podmanrt.ErrUnavailable, socket, err)
		}
	}
	// The bindings keep the context they were given for every later call.
	conn, err := bindings.NewConnection(context.WithoutCancel(ctx), socket)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w (run platform/setup/podman.sh as root)", podmanrt.ErrUnavailable, socket, err)
	}
	return conn, nil
}

// with returns a context carrying the connection and ctx's deadline and cancellation.
func with(conn, ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(conn)
	stop := context.AfterFunc(ctx, cancel)
	if d, ok := ctx.Deadline(); ok {
		var cancelT context.CancelFunc
		c, cancelT = context.WithDeadline(c, d)
		return c, func() { stop(); cancelT(); cancel() }
	}
	return c, func() { stop(); cancel() }
}

// PlayOptions are the inputs of Play.
type PlayOptions struct {
	Adapt
	Overlay      string        // an architecture of topologies/: monolith, services, hybrid...
	ReadyTimeout time.Duration // for the edge's /readyz; default 90s
	Progress     io.Writer     // one line per step; nil for none
	Logger       *slog.Logger
}

// Played is an overlay running on Podman.
type Played struct {
	Overlay string
	Network string
	Edge    string // host:port of the edge's HTTP API
	Pods    []string
}

// Play runs an overlay on Podman: the network (DNS on) unless it exists, then each workload
// through kube play, in the topology's dependency order, then waits until the edge answers
// /readyz on its published port. Processes that start before NATS exit and are restarted by
// Podman (restartPolicy Always), as a cluster would. On failure the workloads' last log lines
// are in the error; what was made stays, for `kube down`.
func Play(ctx context.Context, conn context.Context, opts PlayOptions) (*Played, error) {
	start := time.Now()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Progress = stack.SyncWriter(opts.Progress)
	t, err := topology.Get(opts.Overlay, topology.Options{Collector: topology.NoCollector, NoRenewer: true})
	if err != nil {
		return nil, err
	}
	arch := t.Archs[0]
	objs, err := manifests.Kube(opts.Overlay, manifests.Options{})
	if err != nil {
		return nil, err
	}
	workloads, err := ForPodman(opts.Overlay, objs, opts.Adapt)
	if err != nil {
		return nil, err
	}
	byService := map[string]Workload{}
	for _, w := range workloads {
		byService[w.Service] = w
	}
	c, cancel := with(conn, ctx)
	defer cancel()
	net := NetworkName(opts.Prefix, opts.Overlay)
	if err := ensureNetwork(c, net, opts.Prefix, opts.Overlay); err != nil {
		return nil, err
	}
	levels, err := arch.Levels()
	if err != nil {
		return nil, err
	}
	// The renewer needs no peer, only the identities, which exist already: it plays with
	// the first level.
	if _, ok := byService[topology.RenewerService]; ok {
		levels[0] = append(slices.Clone(levels[0]), topology.NewRenewer())
	}
	// Playing again replaces the pods and keeps the data (the volumes), as up does. kube
	// play's own replace cannot: Podman 4.3 refuses a claim whose volume exists.
	if n, err := removePods(c, opts.Prefix, []string{opts.Overlay}); err != nil {
		return nil, err
	} else if n > 0 {
		progress(opts.Progress, "%s: removed the %d pods played before", opts.Overlay, n)
	}
	played := &Played{Overlay: opts.Overlay, Network: net, Edge: opts.Edge}
	for _, level := range levels {
		errs := make([]error, len(level))
		var wg sync.WaitGroup
		for i, s := range level {
			w := byService[s.Name]
			played.Pods = append(played.Pods, w.Pod())
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				if errs[i] = playOne(c, w, playNetwork(w, net)); errs[i] == nil {
					progress(opts.Progress, "%s/%s: played %s (%s)", opts.Overlay, w.Service, w.Pod(), time.Since(t0).Round(time.Millisecond))
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return played, err
		}
	}
	var edge topology.Service
	for _, s := range arch.Services {
		if s.Edge != "" {
			edge = s
		}
	}
	if err := stack.WaitReady(ctx, edge.Probe, opts.Edge, "", opts.ReadyTimeout, nil); err != nil {
		return played, fmt.Errorf("%s edge on %s: %w\n%s", opts.Overlay, opts.Edge, err, Logs(c, opts.Prefix, opts.Overlay, 15))
	}
	progress(opts.Progress, "%s: ready on http://%s (%s)", opts.Overlay, opts.Edge, time.Since(start).Round(time.Millisecond))
	return played, nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// playNetwork is kube play's --network for a workload of the architecture's network net:
// net with the service's name as DNS alias there; none for the renewer, which reads and
// writes files only.
func playNetwork(w Workload, net string) string {
	if w.Service == topology.RenewerService {
		return "none"
	}
	return net + ":alias=" + w.Service
}

// playOne plays a workload into network (playNetwork). A claim whose volume exists is left
// out: the pod mounts the volume as it is.
func playOne(c context.Context, w Workload, network string) error {
	var objs []manifests.Object
	for _, o := range w.Objects {
		if pvc, ok := o.(*manifests.PersistentVolumeClaim); ok {
			if exists, err := volumes.Exists(c, pvc.Metadata.Name, nil); err == nil && exists {
				continue
			}
		}
		objs = append(objs, o)
	}
	y, err := manifests.MarshalObjects(objs)
	if err != nil {
		return err
	}
	po := new(kubeapi.PlayOptions).WithNetwork([]string{network}).WithStart(true)
	report, err := kubeapi.PlayWithBody(c, bytes.NewReader(y), po)
	if err != nil {
		return fmt.Errorf("kube play %s: %w", w.Name, err)
	}
	var errs []string
	for _, p := range report.Pods {
		errs = append(errs, p.ContainerErrors...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("kube play %s: %s", w.Name, strings.Join(errs, "; "))
	}
	return nil
}

func ensureNetwork(c context.Context, name, prefix, arch string) error {
	if n, err := network.Inspect(c, name, nil); err == nil {
		if n.Labels[stack.LabelStack] != prefix {
			return fmt.Errorf("network %s exists and is not %s's (labels %v)", name, prefix, n.Labels)
		}
		return nil
	}
	_, err := network.Create(c, &nettypes.Network{
		Name:       name,
		Driver:     "bridge",
		DNSEnabled: true,
		Labels:     map[string]string{stack.LabelStack: prefix, stack.LabelArch: arch},
	})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// labelFilter asks Podman for the objects of prefix (and of one architecture). Podman 4.3
// ORs some label filters (volumes), so every caller checks the labels of what it gets again
// (mine).
func labelFilter(prefix string, archs []string) map[string][]string {
	f := []string{stack.LabelStack + "=" + prefix}
	if len(archs) == 1 {
		f = append(f, stack.LabelArch+"="+archs[0])
	}
	return map[string][]string{"label": f}
}

// mine tells whether an object with labels belongs to prefix and one of archs (any if none).
func mine(labels map[string]string, prefix string, archs []string) bool {
	return labels[stack.LabelStack] == prefix && (len(archs) == 0 || slices.Contains(archs, labels[stack.LabelArch]))
}

func isNotFound(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no such") || strings.Contains(err.Error(), "not found"))
}

// Down removes what Play made for prefix (the architectures named, or all): pods and their
// containers, the claims' volumes and the networks, found by their labels.
func Down(ctx context.Context, conn context.Context, prefix string, archs []string) (stack.Removed, error) {
	c, cancel := with(conn, ctx)
	defer cancel()
	var removed stack.Removed
	var errs []error
	n, err := removePods(c, prefix, archs)
	if err != nil {
		errs = append(errs, err)
	}
	removed.Pods = n
	removed.Containers = 2 * removed.Pods // the process and the pod's infra container
	vols, err := volumes.List(c, new(volumes.ListOptions).WithFilters(labelFilter(prefix, archs)))
	if err != nil {
		errs = append(errs, fmt.Errorf("list volumes: %w", err))
	}
	for _, v := range vols {
		if !mine(v.Labels, prefix, archs) {
			continue
		}
		if err := volumes.Remove(c, v.Name, new(volumes.RemoveOptions).WithForce(true)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		removed.Volumes++
	}
	nets, err := network.List(c, new(network.ListOptions).WithFilters(labelFilter(prefix, archs)))
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	for _, n := range nets {
		if !mine(n.Labels, prefix, archs) {
			continue
		}
		if _, err := network.Remove(c, n.Name, new(network.RemoveOptions).WithForce(true)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed.Networks++
	}
	return removed, errors.Join(errs...)
}

// removePods stops and removes the pods of prefix's archs (with their containers) and says
// how many.
func removePods(c context.Context, prefix string, archs []string) (int, error) {
	list, err := pods.List(c, new(pods.ListOptions).WithFilters(labelFilter(prefix, archs)))
	if err != nil {
		return 0, fmt.Errorf("list pods: %w", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	n := 0
	for _, p := range list {
		if !mine(p.Labels, prefix, archs) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The shop's processes stop in well under a second; 5s before SIGKILL.
			_, _ = pods.Stop(c, p.Name, new(pods.StopOptions).WithTimeout(5))
			_, err := pods.Remove(c, p.Name, new(pods.RemoveOptions).WithForce(true))
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("remove pod %s: %w", p.Name, err))
				return
			}
			n++
		}()
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// Logs returns the last lines of every container of prefix's architecture, each prefixed
// with its service: what a failed Play shows.
func Logs(c context.Context, prefix, arch string, tail int) string {
	ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(labelFilter(prefix, []string{arch})))
	if err != nil {
		return "(logs: " + err.Error() + ")"
	}
	sort.Slice(ctrs, func(i, j int) bool { return ctrs[i].Labels[stack.LabelService] < ctrs[j].Labels[stack.LabelService] })
	var b strings.Builder
	for _, ct := range ctrs {
		svc := ct.Labels[stack.LabelService]
		if svc == "" || !mine(ct.Labels, prefix, []string{arch}) {
			continue // the pod's infra container, or another's
		}
		fmt.Fprintf(&b, "--- %s/%s (%s, exit code %d, restarts %d)\n", arch, svc, ct.State, ct.ExitCode, ct.Restarts)
		lines := make(chan string, 64)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for l := range lines {
				b.WriteString(strings.TrimRight(l, "\n") + "\n")
			}
		}()
		lo := new(containers.LogOptions).WithStdout(true).WithStderr(true).WithTail(strconv.Itoa(tail))
		_ = containers.Logs(c, ct.ID, lo, lines, lines)
		close(lines)
		<-done
	}
	return b.String()
}
