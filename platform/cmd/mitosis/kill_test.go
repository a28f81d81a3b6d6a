package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
)

func TestKillAndStartNeedSomethingUp(t *testing.T) {
	common := []string{"--runtime", "process", "--root", repoRoot(t), "--state", t.TempDir(), "--stack", stacktest.StackName(t)}
	for _, verb := range []string{"kill", "start"} {
		if code, out, _ := runCLI(t, verb, "--help"); code != exitOK || !strings.Contains(out, "mitosis "+verb+" SERVICE|ARCH/SERVICE") {
			t.Errorf("%s --help: exit %d\n%s", verb, code, out)
		}
		if code, _, errOut := runCLI(t, append([]string{verb, "payments"}, common...)...); code != exitNothing || !strings.Contains(errOut, "nothing is up") {
			t.Errorf("%s with nothing up: exit %d (%s), want %d", verb, code, errOut, exitNothing)
		}
		if code, _, _ := runCLI(t, append([]string{verb}, common...)...); code != exitUsage {
			t.Errorf("%s without a service: exit %d, want %d", verb, code, exitUsage)
		}
	}
}

func TestMatchService(t *testing.T) {
	rt := processrt.New(processrt.Options{State: t.TempDir()})
	all := []serviceTarget{
		{rt, "monolith", "monolith"}, {rt, "monolith", "nats"},
		{rt, "services", "gateway"}, {rt, "services", "nats"}, {rt, "services", "payments"},
	}
	for _, tc := range []struct {
		name  string
		archs []string
		want  string // arch/service, or the start of the error
	}{
		{"payments", nil, "services/payments"},
		{"services/nats", nil, "services/nats"},
		{"nats", []string{"monolith"}, "monolith/nats"},
		{"nats", nil, `error: "nats" names monolith/nats (process) and services/nats (process)`},
		{"orders", nil, `error: no service "orders" is up; up: monolith/monolith, monolith/nats, services/gateway`},
		{"payments", []string{"monolith"}, `error: no service "payments" is up in monolith`},
		{"monolith/payments", nil, `error: no service "monolith/payments"`},
	} {
		got, err := matchService(all, tc.archs, tc.name)
		s := got.arch + "/" + got.service
		if err != nil {
			s = "error: " + err.Error()
		}
		if !strings.HasPrefix(s, tc.want) {
			t.Errorf("matchService(%q, %v) = %s, want %s", tc.name, tc.archs, s, tc.want)
		}
	}
}

// kill and start act on every service named, in turn: one already as asked is said so and
// is no error, one that fails leaves the others their turn and its error is returned.
func TestEachServiceHasItsTurn(t *testing.T) {
	rt := processrt.New(processrt.Options{State: t.TempDir()})
	targets := []serviceTarget{{rt, "services", "payments"}, {rt, "services", "orders"}, {rt, "monolith", "monolith"}, {rt, "services", "cart"}}
	broken := errors.New("the runtime refused")
	var acted []string
	v := serviceVerb{
		act: func(_ context.Context, t serviceTarget) error {
			acted = append(acted, t.String())
			switch t.service {
			case "orders":
				return stack.ErrNotRunning
			case "monolith":
				return broken
			}
			return nil
		},
		already: stack.ErrNotRunning,
		skipped: func(t serviceTarget) string { return t.String() + " was down" },
		done:    func(t serviceTarget, took time.Duration) string { return t.String() + " done" },
	}
	var out bytes.Buffer
	err := (&app{out: &out}).each(t.Context(), targets, v)
	if !errors.Is(err, broken) || errors.Is(err, stack.ErrNotRunning) {
		t.Errorf("error %v, want the runtime's refusal alone", err)
	}
	if got := strings.Join(acted, " "); got != "services/payments services/orders monolith/monolith services/cart" {
		t.Errorf("acted on %s, want every service in turn", got)
	}
	if want := "services/payments done\nservices/orders was down\nservices/cart done\n"; out.String() != want {
		t.Errorf("said %q, want %q", out.String(), want)
	}
}
