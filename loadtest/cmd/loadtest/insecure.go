package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// insecureEdges are the architectures up in stackName, a second stack up --insecure, that
// join the run beside targets (-insecure-stack): each must be named apart from every target
// (up it with --split-name, e.g. services-insecure), and its processes, where the process
// runtime says which they are, must run with SHOP_INSECURE=true. Said loudly: they are
// there to measure what security costs, and for nothing else.
func insecureEdges(ctx context.Context, state, stackName, topologies string, targets []loadtest.Edge, say func(string, ...any)) ([]loadtest.Edge, error) {
	rows, notes := statusRows(ctx, state, stackName)
	edges, skipped := loadtest.EdgesFromStatus(ctx, rows, topologies)
	for _, s := range skipped {
		say("-insecure-stack %s: left out: %s", stackName, s)
	}
	if len(edges) == 0 {
		return nil, fmt.Errorf("-insecure-stack %s: no architecture of it is up (%s); e.g. mitosis up --stack %s --insecure --runtime process --split '%s' --split-name services-insecure",
			stackName, strings.Join(notes, "; "), stackName, servicesSplit())
	}
	for _, e := range edges {
		if slices.ContainsFunc(targets, func(t loadtest.Edge) bool { return t.Arch == e.Arch }) {
			return nil, fmt.Errorf("-insecure-stack %s: its %s has the name of a secure one: up it with --split-name %s-insecure", stackName, e.Arch, e.Arch)
		}
		switch ok, err := runsInsecure(filepath.Join(state, "run"), stackName, e.Arch); {
		case err != nil:
			return nil, fmt.Errorf("-insecure-stack %s: %s: %w", stackName, e.Arch, err)
		case !ok:
			return nil, fmt.Errorf("-insecure-stack %s: %s runs with its identities: up it with --insecure", stackName, e.Arch)
		}
		say("%s (stack %s): %s: plaintext gRPC and NATS, no authorization", e.Arch, stackName, strings.ToUpper(loadtest.InsecureNote))
	}
	return edges, nil
}

// servicesSplit is the services' placement as --split writes it: one group per context.
func servicesSplit() string {
	t, err := topology.Get(topology.Services, topology.Options{Collector: topology.NoCollector})
	if err != nil || len(t.Archs) == 0 {
		return "catalog,cart,..."
	}
	return t.Archs[0].Split
}

// runsInsecure reports whether the processes the process runtime runs for arch of stackName
// were told SHOP_INSECURE=true (their environment, as /proc shows it); true when the process
// runtime knows none of them (Podman: the stack's up says so itself).
func runsInsecure(runDir, stackName, arch string) (bool, error) {
	procs, err := loadtest.ProcsFromProcessRuntime(runDir, stackName, arch)
	if err != nil || len(procs) == 0 {
		return true, nil //nolint:nilerr // not the process runtime's: nothing to read here
	}
	secured := 0
	for _, p := range procs {
		env, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/environ")
		if err != nil {
			return false, fmt.Errorf("process %s: %w", p.Name, err)
		}
		vars := bytes.Split(env, []byte{0})
		if slices.ContainsFunc(vars, func(v []byte) bool { return string(v) == topology.InsecureEnv+"=true" }) {
			continue
		}
		if slices.ContainsFunc(vars, func(v []byte) bool {
			return bytes.HasPrefix(v, []byte(topology.TLSDirEnv+"=")) && len(v) > len(topology.TLSDirEnv)+1
		}) {
			secured++
		}
	}
	return secured == 0, nil
}
