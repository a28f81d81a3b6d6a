package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each service's state, readiness, CPU and memory",
		Long: `status lists every service of the stack with its state (running, exited, ...), its
readiness (its probe, run now through its published port), its CPU (percent of one core),
its memory (what it holds: a process's resident set, a container's working set, neither
counting the page cache of the files it reads and writes; a WARNING names one that holds
90% of its GOMEMLIMIT or more, where its garbage collector takes its CPU), where Prometheus
scrapes its metrics (METRICS: each host process's /metrics, published on 127.0.0.1), and on
each NATS line the dead letters waiting there (see mitosis events); then, per architecture,
its budget: the mode, the limits, and whether the runtime enforces them, checked now (a
shared budget's cgroup holds the total and every process).
Last, when the stack's certificates expire (mutual TLS between the services): the first
to, with a WARNING once one is overdue for renewal (past half its life by the renewer's
hour: pki/renewer does not run) or expired, "run mitosis up to renew" (up renews them in
place; the running processes read them at their next connection).
Exit code 0 when every service runs and is ready, 3 when one is not,
4 when nothing is up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rts, err := a.runtimes(cmd.Context(), nil, false)
			if err != nil {
				return err
			}
			type row struct {
				Runtime string `json:"runtime"`
				stack.Status
				DeadLetters *deadLetterCell `json:"dead_letters,omitempty"` // NATS lines only
				Metrics     string          `json:"metrics,omitempty"`      // its Prometheus endpoint, for a host
			}
			var rows []row
			for _, rt := range rts {
				sts, err := rt.Status(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: %w", rt.Name(), err)
				}
				for _, s := range sts {
					rows = append(rows, row{Runtime: rt.Name(), Status: s, Metrics: metricsURL(s)})
				}
			}
			names := natsServices()
			for i, r := range rows {
				rows[i].DeadLetters = countDeadLetters(cmd.Context(), r.Runtime, r.Status, names, a.pki())
			}
			if asJSON {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				if rows == nil {
					rows = []row{}
				}
				if err := enc.Encode(rows); err != nil {
					return err
				}
			}
			if len(rows) == 0 {
				if !asJSON {
					a.say("nothing is up (stack %s)", a.stack)
				}
				return &exitError{code: exitNothing, err: errors.New("")}
			}
			unready := 0
			var memTotal = map[string]uint64{}
			if !asJSON {
				tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RUNTIME\tARCH\tSERVICE\tSTATE\tHEALTH\tCPU\tMEMORY\tADDRESS\tMETRICS\tDEAD LETTERS\tDETAIL")
				for _, r := range rows {
					mem := fmt.Sprintf("%.1fMiB", float64(r.MemBytes)/(1<<20))
					if r.MemLimit > 0 && r.MemLimit < 1<<40 {
						mem += fmt.Sprintf(" / %.0fMiB", float64(r.MemLimit)/(1<<20))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f%%\t%s\t%s\t%s\t%s\t%s\n", r.Runtime, r.Arch, r.Service, r.State,
						r.Health, r.CPU, mem, r.Addr, cmp.Or(r.Metrics, "-"), r.DeadLetters, oneLine(r.Detail))
				}
				_ = tw.Flush()
			}
			for _, r := range rows {
				memTotal[r.Runtime+" "+r.Arch] += r.MemBytes
				if r.State != "running" || r.Health != stack.Ready {
					unready++
				}
			}
			if !asJSON {
				keys := make([]string, 0, len(memTotal))
				for k := range memTotal {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					a.say("memory %s: %.1fMiB", k, float64(memTotal[k])/(1<<20))
				}
				for _, k := range keys {
					rt, arch, _ := strings.Cut(k, " ")
					if i := slices.IndexFunc(rows, func(r row) bool { return r.Runtime == rt && r.Arch == arch && r.Budget != nil }); i >= 0 {
						a.say("budget %s: %s", k, rows[i].Budget)
					}
				}
				for _, r := range rows {
					a.sayDeadLetters(r.Runtime, r.Arch, r.DeadLetters)
				}
				for _, r := range rows {
					if mb := int(r.MemLimit >> 20); r.MemLimit < 1<<40 && topology.NearGoMemLimit(r.MemBytes, mb) {
						hint := ""
						if topology.HeapGrowsWithStores(r.Service) {
							hint = " (its heap grows with the keys its stores hold: mitosis down --volumes empties them)"
						}
						a.say("WARNING %s/%s holds %.0fMiB, %.0f%% of its Go memory limit (GOMEMLIMIT %dMiB of its %dMiB): its garbage collector takes its CPU, and every figure measured on it now says more about what it holds than about the architecture%s",
							r.Arch, r.Service, float64(r.MemBytes)/(1<<20), 100*float64(r.MemBytes)/float64(topology.GoMemLimitMB(mb)<<20), topology.GoMemLimitMB(mb), mb,
							hint)
					}
				}
			}
			// When the certificates expire: a stack left running past that fails every
			// gRPC and NATS connection it makes; the renewer renews them before, up too.
			var dirs []string
			for _, r := range rows {
				if r.TLSDir != "" && !slices.Contains(dirs, r.TLSDir) {
					dirs = append(dirs, r.TLSDir)
				}
			}
			if tooling := filepath.Join(a.pki(), identity.Tooling); len(dirs) > 0 && !slices.Contains(dirs, tooling) {
				if _, err := os.Stat(tooling); err == nil {
					dirs = append(dirs, tooling) // the tools' (mitosis events, grpcurl), renewed by up too
				}
			}
			lines, warn := certificates(dirs, time.Now())
			for _, l := range lines {
				if asJSON {
					if warn {
						fmt.Fprintln(a.errOut, l)
					}
					continue
				}
				a.say("%s", l)
			}
			if unready > 0 {
				return &exitError{code: exitUnready, err: fmt.Errorf("%d service(s) not running or not ready", unready)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// metricsURL is where Prometheus scrapes the service of the status line s (its published
// topology.MetricsPort), or "" for a service that serves none (NATS).
func metricsURL(s stack.Status) string {
	addr, ok := s.Ports[topology.MetricsPort]
	if !ok {
		return ""
	}
	return "http://" + addr + telemetry.MetricsPath
}
