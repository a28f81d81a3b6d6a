package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/loadtest/podmanstats"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
)

// edgeChoice is what decides the architectures of a run: the flags, and where to ask what
// is up.
type edgeChoice struct {
	edges      string          // -edges
	shorthands []loadtest.Edge // -monolith and -services as given, in that order; URL "" leaves one out
	state      string          // mitosis' state folder: the process runtime's records are in <state>/run
	stack      string
	topologies string          // the topology files' folder
	defaults   []loadtest.Edge // the well-known edges, tried when the runtimes report nothing
}

// statusRows asks the runtimes of the stack what runs, as `mitosis status` does: the process
// runtime's records and Podman's pods. notes say which runtime could not be asked.
func statusRows(ctx context.Context, state, stackName string) (rows []stack.Status, notes []string) {
	proc := processrt.New(processrt.Options{State: filepath.Join(state, "run"), Stack: stackName})
	if r, err := proc.Status(ctx); err != nil {
		notes = append(notes, "process runtime: "+err.Error())
	} else {
		rows = append(rows, r...)
	}
	if r, err := podmanstats.Status(ctx, stackName); err != nil {
		notes = append(notes, "podman: "+err.Error())
	} else {
		rows = append(rows, r...)
	}
	return rows, notes
}

// choose returns the edges of the run, in the report's order.
func (c edgeChoice) choose(ctx context.Context, say func(string, ...any)) ([]loadtest.Edge, error) {
	var asked, leaveOut []loadtest.Edge
	for _, e := range c.shorthands {
		if e.URL == "" {
			leaveOut = append(leaveOut, e)
		} else {
			asked = append(asked, e)
		}
	}
	listed, err := loadtest.ParseEdges(c.edges)
	if err != nil {
		return nil, fmt.Errorf("-edges: %w", err)
	}
	for _, e := range listed {
		if slices.ContainsFunc(asked, func(a loadtest.Edge) bool { return a.Arch == e.Arch }) {
			return nil, fmt.Errorf("-edges: %s is given by -%s too", e.Arch, e.Arch)
		}
		asked = append(asked, e)
	}
	up, skipped, unasked := c.up(ctx, readyWait, say)
	if len(asked) > 0 {
		if len(leaveOut) > 0 {
			return nil, fmt.Errorf("-%s \"\" leaves an architecture out of the default, and -edges or a URL replaces the default: use one or the other", leaveOut[0].Arch)
		}
		return loadtest.ResolveEdges(asked, up, c.topologies)
	}
	for _, s := range skipped {
		say("left out: %s", s)
	}
	edges := slices.DeleteFunc(slices.Clone(up), func(e loadtest.Edge) bool {
		return slices.ContainsFunc(leaveOut, func(l loadtest.Edge) bool { return l.Arch == e.Arch })
	})
	if len(up) == 0 {
		for _, n := range unasked {
			say("%s", n)
		}
		say("no architecture is up that the runtimes of stack %s know of, nor at the well-known edges: trying those", c.stack)
		edges = slices.DeleteFunc(slices.Clone(c.defaults), func(e loadtest.Edge) bool {
			return slices.ContainsFunc(leaveOut, func(l loadtest.Edge) bool { return l.Arch == e.Arch })
		})
	}
	if len(edges) == 0 {
		return nil, errors.New("no architecture to test: every one up is left out (-monolith \"\", -services \"\")")
	}
	var names []string
	for _, e := range edges {
		names = append(names, e.Arch)
	}
	say("architectures: %s (the first is the baseline; -edges chooses)", strings.Join(names, ", "))
	return edges, nil
}

// readyWait is how long a run waits for an architecture whose edge runs but is not ready
// before it leaves that architecture out: `make load` right after `make up` once found the
// services' gateway unready for 6 s, while inventory's store answered slowly under its CPU
// quota, and ran the monolith alone.
const readyWait = 30 * time.Second

// up is every architecture up, in the default order: those the runtimes report, and those of
// the well-known edges that answer there though no runtime knows them (`make run`). An
// architecture whose edge runs but is not ready is waited for, up to wait (say tells). skipped
// says which architectures are up without a ready edge, unasked which runtime could not be
// asked.
func (c edgeChoice) up(ctx context.Context, wait time.Duration, say func(string, ...any)) (edges []loadtest.Edge, skipped []loadtest.Skip, unasked []string) {
	ask := func(ctx context.Context) ([]loadtest.Edge, []loadtest.Skip) {
		var rows []stack.Status
		rows, unasked = statusRows(ctx, c.state, c.stack)
		return loadtest.EdgesFromStatus(ctx, rows, c.topologies)
	}
	edges, skipped = loadtest.AwaitEdges(ctx, wait, time.Second, ask, func(pending []loadtest.Skip) {
		for _, s := range pending {
			say("waiting up to %s for %s", wait, s)
		}
	})
	for _, d := range c.defaults {
		if slices.ContainsFunc(edges, func(e loadtest.Edge) bool { return e.Arch == d.Arch }) {
			continue
		}
		if (loadtest.Shop{BaseURL: d.URL}).Ready(ctx) == nil {
			edges = append(edges, d)
		}
	}
	slices.SortStableFunc(edges, func(a, b loadtest.Edge) int { return loadtest.CompareArchs(a.Arch, b.Arch) })
	return edges, skipped, unasked
}

// edgesCmd prints the edges a run would drive, one per line (architecture, URL, edge
// service), and fails when an architecture of -need has none up and ready.
func edgesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := repoRoot()
	fs := flag.NewFlagSet("edges", flag.ContinueOnError)
	fs.SetOutput(stderr)
	need := fs.String("need", "", "architectures that must be up, comma-separated (topologies' names, or both)")
	state := fs.String("state", envOr("MITOSIS_STATE", filepath.Join(root, ".mitosis")), "mitosis state folder")
	stackName := fs.String("stack", envOr("MITOSIS_STACK", stack.DefaultName), "mitosis stack name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	needed, err := loadtest.ParseEdges(*need)
	if err != nil {
		return fmt.Errorf("-need: %w", err)
	}
	c := edgeChoice{state: *state, stack: *stackName, topologies: filepath.Join(root, "topologies"), defaults: loadtest.DefaultEdges()}
	up, skipped, unasked := c.up(ctx, 0, nil)
	for _, n := range skipped {
		fmt.Fprintln(stderr, "left out:", n)
	}
	if len(up) == 0 {
		for _, n := range unasked {
			fmt.Fprintln(stderr, n)
		}
	}
	for _, e := range up {
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", e.Arch, e.URL, e.Service)
	}
	var missing []string
	for _, n := range needed {
		if n.URL != "" {
			return fmt.Errorf("-need %s=%s: name architectures only", n.Arch, n.URL)
		}
		if !slices.ContainsFunc(up, func(e loadtest.Edge) bool { return e.Arch == n.Arch }) {
			missing = append(missing, n.Arch)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not up and ready: %s", strings.Join(missing, ", "))
	}
	return nil
}
