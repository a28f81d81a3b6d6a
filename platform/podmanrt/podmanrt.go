// Package podmanrt runs a topology as Podman pods through Podman's REST API (the v4 bindings):
// it loads the images imagebuild made, creates one network with DNS per architecture (which
// the collector's pod joins too), one pod per service with its ports published on 127.0.0.1
// only, and one container in it, read-only, non-root, with every capability dropped, no new
// privileges and the topology's CPU and memory limits, and the restart policy on-failure
// (Podman is the supervisor: a process that dies is started again); it starts them in
// dependency order and waits for each to be ready. A shared budget (topology.Shared) gives
// the containers no limit of their own: the architecture's pods get one cgroup parent, made
// and limited to the architecture's total by platform/cgroup.
//
// Every object carries the stack's labels (stack.LabelStack, stack.LabelArch, ...), so Down
// removes exactly what Up made; Up is idempotent (a pod whose spec hash label matches and
// that runs is left alone, anything else is remade). Object names start with the stack's name,
// so two stacks (the real one and a test's) never collide.
//
// Build with the podman bindings' tags: remote exclude_graphdriver_btrfs btrfs_noversion
// exclude_graphdriver_devicemapper containers_image_openpgp.
package podmanrt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/stack"
)

// DefaultSocket is where `podman system service` listens as root (setup/podman.sh starts it).
const DefaultSocket = "unix:///run/podman/podman.sock"

// Socket is the API address to use: CONTAINER_HOST when set, else DefaultSocket.
func Socket() string {
	if v := os.Getenv("CONTAINER_HOST"); v != "" {
		return v
	}
	return DefaultSocket
}

// ErrUnavailable is returned by Connect when no Podman API answers.
var ErrUnavailable = errors.New("podman API unavailable")

// Runtime is the Podman runtime of one stack.
type Runtime struct {
	conn       context.Context // the bindings' connection lives in a context
	socket     string
	stack      string
	images     map[string]imagebuild.Image
	logger     *slog.Logger
	cgroupRoot string
	cgroups    sync.Map // container ID → its cgroup path: see cgroupOf

	afterCreate func(pod string) // tests: what happens between a pod's creation and its start
}

var _ stack.Runtime = (*Runtime)(nil)

// Options configure a Runtime.
type Options struct {
	Socket string                      // default Socket()
	Stack  string                      // default stack.DefaultName
	Images map[string]imagebuild.Image // by image name: what Up loads and runs
	Logger *slog.Logger
	// CgroupRoot is the cgroup filesystem of Podman's machine, where a shared budget's group
	// is made (cgroup.DefaultRoot): this machine's, so a shared budget needs a local socket.
	CgroupRoot string
}

// Connect reaches the Podman API; it fails fast (ErrUnavailable) when the socket does not
// answer, so callers can fall back to the process runtime.
func Connect(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Socket == "" {
		opts.Socket = Socket()
	}
	if opts.Stack == "" {
		opts.Stack = stack.DefaultName
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if u, err := url.Parse(opts.Socket); err == nil && u.Scheme == "unix" {
		if _, err := os.Stat(u.Path); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, opts.Socket, err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The bindings keep the context they were given for every later call: give them one that
	// is not cancelled when this function returns.
	conn, err := bindings.NewConnection(context.WithoutCancel(ctx), opts.Socket)
	if err == nil && pctx.Err() != nil {
		err = pctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, opts.Socket, err)
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = cgroup.DefaultRoot
	}
	return &Runtime{conn: conn, socket: opts.Socket, stack: opts.Stack, images: opts.Images, logger: opts.Logger, cgroupRoot: opts.CgroupRoot}, nil
}

// Name is "podman".
func (r *Runtime) Name() string { return "podman" }

// Stack is the stack's name.
func (r *Runtime) Stack() string { return r.stack }

// with returns a context carrying the connection and ctx's deadline and cancellation.
func (r *Runtime) with(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(r.conn)
	stop := context.AfterFunc(ctx, cancel)
	if d, ok := ctx.Deadline(); ok {
		var cancelT context.CancelFunc
		c, cancelT = context.WithDeadline(c, d)
		return c, func() { stop(); cancelT(); cancel() }
	}
	return c, func() { stop(); cancel() }
}

func (r *Runtime) labels(arch, service string) map[string]string {
	l := map[string]string{stack.LabelStack: r.stack, stack.LabelArch: arch}
	if service != "" {
		l[stack.LabelService] = service
	}
	return l
}

func (r *Runtime) filter(archs ...string) map[string][]string {
	f := []string{stack.LabelStack + "=" + r.stack}
	if len(archs) == 1 {
		f = append(f, stack.LabelArch+"="+archs[0])
	}
	return map[string][]string{"label": f}
}

func wantArch(archs []string, arch string) bool {
	if len(archs) == 0 {
		return true
	}
	for _, a := range archs {
		if a == arch {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no such") || strings.Contains(err.Error(), "not found"))
}

func hostPlatform() v1.Platform { return imagebuild.HostPlatform() }
