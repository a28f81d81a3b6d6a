package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// eventsCmd is `mitosis events`: the dead letters of the shop's event consumers, in the NATS
// of each architecture that is up (see package natsjs for what a dead letter is).
func (a *app) eventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List and replay the events the shop's consumers gave up on (dead letters)",
		Long: `A consumer (shipping, notify, orders) gives an event up when its handler calls it
poison or has failed on it for the last of its deliveries (11 minutes of retries); the
event then waits in the dead-letter stream of its architecture's NATS, with the consumer,
the reason and the last error. ` + "`mitosis status`" + ` counts them on each NATS line.

Once the cause is fixed, replay puts them back for the consumer that gave up on them.
-t monolith or -t services picks one architecture (default both).`,
	}
	cmd.AddCommand(a.replayCmd(), a.deadLettersCmd(), a.forgetCmd())
	return cmd
}

func (a *app) forgetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "forget CONSUMER",
		Short: "Delete a consumer that this version's table no longer has, and the events kept for it",
		Long: `The event stream keeps each event until every consumer of its subject has processed it,
also a consumer that a newer version no longer has: ` + "`mitosis status`" + ` lists such a
consumer with the events it holds. Once no process of an older version runs it, forget
deletes it from the event stream of each architecture that is up, and with it what the
stream kept for it alone. A consumer of this version's table is refused: deleting it would
drop the events it has not processed, and its processes would create it again, empty.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := natsjs.CheckConsumer(name); err != nil {
				return usageError{err}
			}
			if slices.Contains(tableConsumers(), name) {
				return usageError{fmt.Errorf("%s is a consumer of this version's table (%s): it is not forgotten", name, strings.Join(tableConsumers(), ", "))}
			}
			deleted := 0
			var errs []error
			err := a.eachNATS(cmd.Context(), func(ep natsEndpoint, js jetstream.JetStream) {
				switch err := js.DeleteConsumer(cmd.Context(), natsjs.StreamName, name); {
				case errors.Is(err, jetstream.ErrConsumerNotFound):
					a.say("%s: no consumer %s", ep, name)
				case err != nil:
					errs = append(errs, fmt.Errorf("%s: delete consumer %s: %w", ep, name, err))
				default:
					deleted++
					a.say("%s: consumer %s deleted", ep, name)
				}
			})
			if err := errors.Join(append(errs, err)...); err != nil {
				return err
			}
			if deleted == 0 {
				return &exitError{code: exitNothing, err: fmt.Errorf("no event stream has a consumer %s", name)}
			}
			return nil
		},
	}
}

func (a *app) replayCmd() *cobra.Command {
	var consumer string
	cmd := &cobra.Command{
		Use:   "replay [--consumer NAME]",
		Short: "Give the dead letters back to the consumers that gave up on them",
		Long: `replay re-publishes every dead letter (or those of --consumer) into the event stream for
the consumer that gave up on it, and only that one, then removes it from the dead letters.
Running it twice, or while a replay runs, delivers each event once more at most, and the
consumers are idempotent. Dead letters of a consumer the stream no longer has stay.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkConsumerFlag(consumer); err != nil {
				return err
			}
			var errs []error
			err := a.eachNATS(cmd.Context(), func(ep natsEndpoint, js jetstream.JetStream) {
				replayed, err := natsjs.Replay(cmd.Context(), js, consumer)
				total := 0
				for _, n := range replayed {
					total += n
				}
				if total > 0 || err == nil {
					a.say("%s: replayed %d dead letter(s)%s", ep, total, byConsumer(replayed))
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ep, err))
				}
			})
			return errors.Join(append(errs, err)...)
		},
	}
	cmd.Flags().StringVar(&consumer, "consumer", "", "replay only this consumer's dead letters (shipping, notify, orders)")
	return cmd
}

func (a *app) deadLettersCmd() *cobra.Command {
	var consumer string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dead-letters [--consumer NAME]",
		Short: "List the dead letters, oldest first, with why each was given up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkConsumerFlag(consumer); err != nil {
				return err
			}
			type row struct {
				Runtime string `json:"runtime"`
				Arch    string `json:"arch"`
				natsjs.DeadLetter
			}
			rows := []row{}
			var errs []error
			err := a.eachNATS(cmd.Context(), func(ep natsEndpoint, js jetstream.JetStream) {
				dls, err := natsjs.DeadLetters(cmd.Context(), js, consumer, limit)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ep, err))
				}
				for _, dl := range dls {
					rows = append(rows, row{ep.Runtime, ep.Arch, dl})
				}
			})
			errs = append(errs, err)
			if asJSON {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rows); err != nil {
					return err
				}
				return errors.Join(errs...)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ARCH\tSEQ\tCONSUMER\tSUBJECT\tID\tREASON\tDELIVERIES\tDEAD AT\tERROR")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Arch, r.Sequence, r.Consumer, r.Subject, r.ID,
					r.Reason, r.Deliveries, r.DeadAt.UTC().Format(time.RFC3339), oneLine(r.Error))
			}
			_ = tw.Flush()
			a.say("%d dead letter(s)", len(rows))
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&consumer, "consumer", "", "only this consumer's dead letters")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many per architecture (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, payloads and headers included")
	return cmd
}

func checkConsumerFlag(consumer string) error {
	if consumer == "" {
		return nil
	}
	if err := natsjs.CheckConsumer(consumer); err != nil {
		return usageError{fmt.Errorf("--consumer: %w", err)}
	}
	return nil
}

// natsEndpoint is one architecture's NATS, where the CLI reaches it.
type natsEndpoint struct {
	Runtime, Arch string
	URL           string      // nats://127.0.0.1:<published port>
	TLS           nats.Option // the tools' TLS (natsauth.AdminTLS)
}

func (ep natsEndpoint) String() string { return ep.Runtime + " " + ep.Arch }

// natsServices maps each architecture to the name of its NATS service: the one that listens
// on topology.NATSPort.
func natsServices() map[string]string {
	out := map[string]string{}
	t, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		return out // the built-in topologies always resolve; their tests say so
	}
	for _, arch := range t.Archs {
		for _, s := range arch.Services {
			if slices.Contains(s.Ports, topology.NATSPort) {
				out[arch.Name] = s.Name
			}
		}
	}
	return out
}

// natsOf returns where the status line s reaches its architecture's NATS, ok false if s is
// not a NATS line, and an error if it is one that cannot be reached.
func natsOf(runtime string, s stack.Status, names map[string]string, pki string) (natsEndpoint, bool, error) {
	if names[s.Arch] != s.Service {
		return natsEndpoint{}, false, nil
	}
	ep := natsEndpoint{Runtime: runtime, Arch: s.Arch}
	if s.State != "running" {
		return ep, true, fmt.Errorf("%s: NATS is %s", ep, s.State)
	}
	addr, ok := s.Ports[topology.NATSPort]
	if !ok {
		return ep, true, fmt.Errorf("%s: NATS publishes no port for %d", ep, topology.NATSPort)
	}
	url, err := natsauth.AdminURL(pki, addr) // the stack's tools connect as its NATS admin
	if err != nil {
		return ep, true, err
	}
	ep.URL = url
	if ep.TLS, err = natsauth.AdminTLS(pki); err != nil {
		return ep, true, err
	}
	return ep, true, nil
}

// eachNATS calls f with the JetStream of the NATS of every architecture -t selects that is
// up, in every runtime that holds the stack. Nothing up is exit code 4.
func (a *app) eachNATS(ctx context.Context, f func(natsEndpoint, jetstream.JetStream)) error {
	archs, err := a.archsOf()
	if err != nil {
		return err
	}
	rts, err := a.runtimes(ctx, nil, false)
	if err != nil {
		return err
	}
	names := natsServices()
	found := false
	var errs []error
	for _, rt := range rts {
		sts, err := rt.Status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rt.Name(), err))
			continue
		}
		for _, s := range sts {
			if archs != nil && !slices.Contains(archs, s.Arch) {
				continue
			}
			ep, ok, err := natsOf(rt.Name(), s, names, a.pki())
			if !ok {
				continue
			}
			found = true
			if err == nil {
				err = withJetStream(ep, func(js jetstream.JetStream) { f(ep, js) })
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !found && len(errs) == 0 {
		return &exitError{code: exitNothing, err: fmt.Errorf("no NATS is up (stack %s, topology %s)", a.stack, a.topo)}
	}
	return errors.Join(errs...)
}

// withJetStream connects to ep and calls f with its JetStream.
func withJetStream(ep natsEndpoint, f func(jetstream.JetStream)) error {
	opts := []nats.Option{nats.Name("mitosis"), nats.Timeout(5 * time.Second), nats.NoReconnect()}
	if ep.TLS != nil {
		opts = append(opts, ep.TLS)
	}
	nc, err := nats.Connect(ep.URL, opts...)
	if err != nil {
		return fmt.Errorf("%s: connect %s: %w", ep, ep.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("%s: %w", ep, err)
	}
	f(js)
	return nil
}

// deadLetterCell is the dead-letter count of a NATS line of `status`, what each of the
// shop's consumers has not processed yet (a consumer whose process is down falls behind) and
// how full that makes the event stream: it keeps every event until each consumer it is for
// has processed it, and refuses new ones once full.
type deadLetterCell struct {
	natsjs.DeadLetterCount
	Backlogs []natsjs.Backlog `json:"backlogs,omitempty"`
	Stream   *natsjs.Usage    `json:"stream,omitempty"` // nil without an event stream
	Err      string           `json:"error,omitempty"`
}

// countDeadLetters counts the dead letters of the NATS that s is (as the admin of the stack
// whose PKI folder is pki), or returns nil if s is no NATS (or one not running: its state
// says so already).
func countDeadLetters(ctx context.Context, runtime string, s stack.Status, names map[string]string, pki string) *deadLetterCell {
	ep, ok, err := natsOf(runtime, s, names, pki)
	if !ok || s.State != "running" {
		return nil
	}
	cell := &deadLetterCell{}
	if err == nil {
		var countErr error
		err = withJetStream(ep, func(js jetstream.JetStream) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			cell.DeadLetterCount, countErr = natsjs.CountDeadLetters(ctx, js)
			if countErr == nil {
				cell.Backlogs, countErr = natsjs.Backlogs(ctx, js)
			}
			if countErr == nil {
				u, ok, err := natsjs.StreamUsage(ctx, js)
				if ok {
					cell.Stream = &u
				}
				countErr = err
			}
		})
		err = errors.Join(err, countErr)
	}
	if err != nil {
		cell.Err = err.Error()
	}
	return cell
}

// sayDeadLetters says, under the status table, what to do about the dead letters of one
// architecture's NATS, if there are any, or why they could not be counted.
func (a *app) sayDeadLetters(runtime, arch string, c *deadLetterCell) {
	switch {
	case c == nil:
	case c.Err != "":
		a.say("dead letters %s %s: cannot count: %s", runtime, arch, c.Err)
	case c.Total > 0:
		a.say("dead letters %s %s: %d%s; `mitosis events dead-letters -t %s` lists them, `mitosis events replay -t %s` replays them",
			runtime, arch, c.Total, byConsumer(c.ByConsumer), arch, arch)
	}
	if c != nil {
		for _, line := range eventLines(c.Stream, c.Backlogs, tableConsumers(), time.Now()) {
			a.say("events %s %s: %s", runtime, arch, line)
		}
	}
}

// backlogWorth is how long an event may wait for its consumer before status mentions it:
// longer than a busy consumer's queue, or the redeliveries of a peer's short outage.
const backlogWorth = time.Minute

// fullWorth is how full the event stream may be before status warns. The stream keeps every
// event until each consumer it is for has processed it, however long that takes, so nothing
// is lost to a consumer that is down; but once full it refuses new events (publishes fail,
// and so do the checkouts that make them). Half full leaves time to act.
const fullWorth = 0.5

// tableConsumers are the names of the event consumers this version's table has.
func tableConsumers() []string {
	var out []string
	for _, k := range bounded.EventConsumers() {
		out = append(out, k.Name)
	}
	return out
}

// eventLines says what deserves a look in one NATS's event stream: a WARNING when it is at
// least fullWorth full; each consumer whose events have waited for longer than backlogWorth;
// and each consumer that the table (known) no longer has, for which the stream keeps the
// events of its subjects until someone deletes it (nothing does by itself: a process of an
// older version may still run it while a deployment rolls).
func eventLines(u *natsjs.Usage, bs []natsjs.Backlog, known []string, now time.Time) []string {
	var lines []string
	if u != nil && u.Full() >= fullWorth {
		lines = append(lines, fmt.Sprintf("WARNING: the event stream %s is %.0f%% full (%s of %s, %d event(s) not yet processed by every consumer); "+
			"once full it refuses new events and the checkouts that publish them fail: start the consumers that fall behind",
			natsjs.StreamName, 100*u.Full(), mib(int64(u.Bytes)), mib(u.MaxBytes), u.Messages))
	}
	for _, b := range bs {
		age := now.Sub(b.Oldest)
		waiting := ""
		if b.Waiting > 0 && !b.Oldest.IsZero() {
			waiting = fmt.Sprintf(", the oldest for %s", age.Round(time.Second))
		}
		if !slices.Contains(known, b.Consumer) {
			lines = append(lines, fmt.Sprintf("%s is no consumer of this version's table: the event stream keeps %d event(s) for it%s, and every new one of its subjects, "+
				"until it is deleted (mitosis events forget %s, once no process of an older version runs it)", b.Consumer, b.Waiting, waiting, b.Consumer))
			continue
		}
		if b.Waiting == 0 || b.Oldest.IsZero() || age < backlogWorth {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s has %d event(s) waiting%s (is its process up?)", b.Consumer, b.Waiting, waiting))
	}
	return lines
}

// String is the cell as the status table shows it: "-" for a line that is no NATS.
func (c *deadLetterCell) String() string {
	switch {
	case c == nil:
		return "-"
	case c.Err != "":
		return "?"
	}
	return fmt.Sprintf("%d%s", c.Total, byConsumer(c.ByConsumer))
}

// byConsumer writes counts as " (notify 1, shipping 2)", or "" when there are none.
func byConsumer(counts map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
