package topology

import (
	"slices"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Call is one service calling another over gRPC: the contexts of To that From's contexts (or
// its edge) call, according to the table (bounded), at To's gRPC port.
type Call struct {
	From, To string
	Port     int      // To's gRPC port (Service.GRPCPort)
	Contexts []string // the contexts of To that From calls, in table order
}

// Calls lists the gRPC calls between the architecture's services: each group's remote
// contexts (bounded.Group.Remote) at the service that runs them. Calls between contexts of
// one group stay in process and are not listed.
func (a Arch) Calls() []Call {
	var out []Call
	for _, s := range a.Services {
		g, err := bounded.ParseGroup(s.Group)
		if s.Group == "" || err != nil {
			continue
		}
		for _, c := range g.Remote() {
			to, ok := a.holder(c)
			if !ok {
				continue
			}
			i := slices.IndexFunc(out, func(call Call) bool { return call.From == s.Name && call.To == to.Name })
			if i < 0 {
				out = append(out, Call{From: s.Name, To: to.Name, Port: to.GRPCPort()})
				i = len(out) - 1
			}
			out[i].Contexts = append(out[i].Contexts, c)
		}
	}
	return out
}

// holder is the service that runs the context.
func (a Arch) holder(context string) (Service, bool) {
	for _, s := range a.Services {
		if g, err := bounded.ParseGroup(s.Group); s.Group != "" && err == nil && slices.Contains(g.Contexts, context) {
			return s, true
		}
	}
	return Service{}, false
}

// GRPCPort is the port the service's contexts answer gRPC on, 0 when it serves none (NATS,
// the gateway, the monolith).
func (s Service) GRPCPort() int {
	if _, ok := s.Env["SHOP_GRPC_ADDR"]; !ok || s.Group == "" {
		return 0
	}
	g, err := bounded.ParseGroup(s.Group)
	if err != nil || len(g.Contexts) == 0 {
		return 0
	}
	return grpcPort(g)
}

// UsesNATS reports whether the service's processes connect to the architecture's NATS: every
// group that runs a context keeps its state and events there.
func (s Service) UsesNATS() bool {
	_, ok := s.Env[NATSURLEnv]
	return ok
}

// NATSURLEnv is the variable of a process's NATS URL (services/host), with its user's
// credentials where the runtime gives them.
const NATSURLEnv = "SHOP_NATS_URL"
