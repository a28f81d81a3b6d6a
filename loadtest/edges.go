package loadtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Edge is the public API of one architecture under test.
type Edge struct {
	Arch    string // the architecture's name: monolith, services, a topology file's, split...
	URL     string // its base URL, http://host:port; "" until resolved
	Service string // the edge's service name (its traces' service.name); "" when unknown
}

// ParseEdges reads a list of edges as -edges writes it: entries separated by commas, each
// name=URL or a name alone (its URL to be found among the architectures that are up).
// "both" stands for monolith and services, and placement@mode for the architecture it names
// (services@shared: services-shared), as for `mitosis up -t`. A URL without a scheme gets
// http://. Names are letters, digits and '-', each at most once.
func ParseEdges(s string) ([]Edge, error) {
	var out []Edge
	add := func(e Edge) error {
		if !validArchName(e.Arch) {
			return fmt.Errorf("edge %q: an architecture's name is letters, digits and '-'", e.Arch)
		}
		if slices.ContainsFunc(out, func(o Edge) bool { return o.Arch == e.Arch }) {
			return fmt.Errorf("edge %q named twice", e.Arch)
		}
		out = append(out, e)
		return nil
	}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, url, hasURL := strings.Cut(entry, "=")
		name, url = strings.TrimSpace(name), strings.TrimSpace(url)
		if placement, mode, ok := strings.Cut(name, "@"); ok { // as -t writes it: services@shared
			m, err := topology.ParseMode(mode)
			if err != nil {
				return nil, fmt.Errorf("edge %q: %w", entry, err)
			}
			name = topology.ModeName(placement, m)
		}
		if hasURL && url == "" {
			return nil, fmt.Errorf("edge %q: empty URL (write the name alone to find its URL among the architectures up)", entry)
		}
		if !hasURL && name == topology.Both {
			for _, n := range []string{topology.Monolith, topology.Services} {
				if err := add(Edge{Arch: n}); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := add(Edge{Arch: name, URL: NormalizeURL(url)}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NormalizeURL gives a base URL a scheme (http://) if it has none, and drops a trailing
// slash; "" stays "".
func NormalizeURL(u string) string {
	if u == "" {
		return ""
	}
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/")
}

func validArchName(name string) bool {
	return name != "" && !strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	})
}

// CompareArchs orders architectures as a report shows them by default: the monolith, the
// microservices, then the others by name.
func CompareArchs(a, b string) int {
	rank := func(n string) int {
		switch n {
		case topology.Monolith:
			return 0
		case topology.Services:
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
}

// DefaultEdges are the edges when no runtime can say what is up: the monolith's and the
// microservices' well-known addresses (DESIGN.md).
func DefaultEdges() []Edge {
	return []Edge{
		{Arch: topology.Monolith, URL: "http://" + topology.MonolithEdge, Service: "monolith"},
		{Arch: topology.Services, URL: "http://" + topology.ServicesEdge, Service: "gateway"},
	}
}

// FileEdgeService is the service that holds the edge in the topology file of arch in dir
// ("" for topologies/ of the repository): "monolith", "gateway"... It fails when arch has
// no file (a --split, or a name of the caller's own).
func FileEdgeService(dir, arch string) (string, error) {
	t, err := topology.Get(arch, topology.Options{Dir: dir, Collector: topology.NoCollector})
	if err != nil {
		return "", err
	}
	for _, a := range t.Archs {
		for _, s := range a.Services {
			if a.Name == arch && s.Edge != "" {
				return s.Name, nil
			}
		}
	}
	return "", fmt.Errorf("topology %s places no edge", arch)
}

// Skip is an architecture that runs but has no edge to drive, and why.
type Skip struct {
	Arch string
	Err  error // ErrEdgeUnready when its edge runs but does not say it is ready
}

func (s Skip) String() string { return s.Arch + ": " + s.Err.Error() }

// ErrEdgeUnready is an architecture's edge that runs but fails its readiness probe: often a
// matter of seconds (a process catching up after `mitosis up`, a store slow under its CPU
// quota), which AwaitEdges waits out.
var ErrEdgeUnready = errors.New("edge running but not ready")

// unready is ErrEdgeUnready, saying which edge and what its status says.
type unready struct{ msg string }

func (e unready) Error() string        { return e.msg }
func (e unready) Is(target error) bool { return target == ErrEdgeUnready }

// AwaitEdges asks for the edges (ask: EdgesFromStatus over a fresh status), and again every
// `every` while an architecture's edge runs without being ready, until wait has passed;
// waiting hears of those before the first wait. It returns the last answer: the edges, and
// what is left out then.
func AwaitEdges(ctx context.Context, wait, every time.Duration, ask func(context.Context) ([]Edge, []Skip), waiting func([]Skip)) ([]Edge, []Skip) {
	deadline := time.Now().Add(wait)
	for n := 0; ; n++ {
		edges, skipped := ask(ctx)
		var pending []Skip
		for _, s := range skipped {
			if errors.Is(s.Err, ErrEdgeUnready) {
				pending = append(pending, s)
			}
		}
		if len(pending) == 0 || !time.Now().Add(every).Before(deadline) {
			return edges, skipped
		}
		if n == 0 && waiting != nil {
			waiting(pending)
		}
		select {
		case <-ctx.Done():
			return edges, skipped
		case <-time.After(every):
		}
	}
}

// EdgesFromStatus finds the edge of every architecture the runtimes report (the rows of
// `mitosis status`: platform/stack.Status), in the order of CompareArchs, the stack's own
// architectures (topology.StackArch: the collector's, the renewer's) left out. An architecture's edge is the service its topology file in dir (its
// placement's, for placement@mode) places the edge in, when it runs and is ready; for an architecture without a file (a
// --split), the running service whose address answers GET /readyz, which only an edge does.
// skipped says, per architecture seen but left out, why.
func EdgesFromStatus(ctx context.Context, rows []stack.Status, dir string) (edges []Edge, skipped []Skip) {
	byArch := map[string][]stack.Status{}
	for _, r := range rows {
		if r.Arch != "" && !topology.StackArch(r.Arch) {
			byArch[r.Arch] = append(byArch[r.Arch], r)
		}
	}
	archs := make([]string, 0, len(byArch))
	for a := range byArch {
		archs = append(archs, a)
	}
	slices.SortFunc(archs, CompareArchs)
	for _, arch := range archs {
		e, err := edgeOf(ctx, arch, byArch[arch], dir)
		if err != nil {
			skipped = append(skipped, Skip{Arch: arch, Err: err})
			continue
		}
		edges = append(edges, e)
	}
	return edges, skipped
}

func edgeOf(ctx context.Context, arch string, rows []stack.Status, dir string) (Edge, error) {
	// services-shared runs the services' file (services@shared): its edge is where theirs is.
	placement := arch
	if i := slices.IndexFunc(rows, func(r stack.Status) bool { return r.Budget != nil && r.Budget.Placement != "" }); i >= 0 {
		placement = rows[i].Budget.Placement
	}
	if svc, err := FileEdgeService(dir, placement); err == nil {
		i := slices.IndexFunc(rows, func(r stack.Status) bool { return r.Service == svc })
		switch {
		case i < 0:
			return Edge{}, fmt.Errorf("its edge %s is not among its services", svc)
		case rows[i].State != "running" || rows[i].Health != stack.Ready || rows[i].Addr == "":
			r := rows[i]
			msg := fmt.Sprintf("its edge %s is %s, %s", svc, r.State, r.Health)
			if r.Detail != "" {
				msg += " (" + r.Detail + ")"
			}
			if r.State == "running" && r.Addr != "" {
				return Edge{}, unready{msg}
			}
			return Edge{}, errors.New(msg)
		}
		return Edge{Arch: arch, URL: "http://" + rows[i].Addr, Service: svc}, nil
	}
	var found []stack.Status
	for _, r := range rows {
		if r.State == "running" && r.Addr != "" && (Shop{BaseURL: "http://" + r.Addr}).Ready(ctx) == nil {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return Edge{}, errors.New("none of its running services answers GET /readyz as an edge does")
	case 1:
		return Edge{Arch: arch, URL: "http://" + found[0].Addr, Service: found[0].Service}, nil
	}
	return Edge{}, fmt.Errorf("%d of its services answer GET /readyz (%s, %s...): which is the edge?", len(found), found[0].Service, found[1].Service)
}

// ResolveEdges fills the URL and service of the edges asked for from those found up (by
// EdgesFromStatus), and else the service from the architecture's topology file in dir. An
// edge asked for by name alone that is not up is an error.
func ResolveEdges(asked, up []Edge, dir string) ([]Edge, error) {
	out := make([]Edge, len(asked))
	for i, e := range asked {
		j := slices.IndexFunc(up, func(u Edge) bool { return u.Arch == e.Arch })
		switch {
		case e.URL == "" && j < 0:
			return nil, fmt.Errorf("%s is not up, or its edge is not ready (mitosis status says more): bring it up (make up ARCH=%s) or give its URL (-edges %s=http://127.0.0.1:PORT)", e.Arch, e.Arch, e.Arch)
		case e.URL == "":
			e = up[j]
		case j >= 0 && up[j].URL == e.URL:
			e.Service = up[j].Service
		default:
			e.Service, _ = FileEdgeService(dir, e.Arch)
		}
		out[i] = e
	}
	return out, nil
}
