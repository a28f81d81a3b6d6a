package manifests

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// loadCompose loads a compose file with compose-spec's own loader (schema validation,
// interpolation, normalization), the given profiles active.
func loadCompose(t *testing.T, path string, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	p, err := loadComposeErr(path, env, profiles...)
	if err != nil {
		t.Fatalf("compose-go rejects %s (profiles %v): %v", path, profiles, err)
	}
	return p
}

func loadComposeErr(path string, env map[string]string, profiles ...string) (*types.Project, error) {
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithName("mitosis"), cli.WithEnv(kv), cli.WithProfiles(profiles))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// shippedCompose is the checked-in compose.yaml of monolith and services.
func shippedCompose(t *testing.T) string {
	return filepath.Join(repoRoot(t), "compose", "compose.yaml")
}

func TestComposeValidatesAndFollowsTheTopology(t *testing.T) {
	checkCompose(t, repoRoot(t), shipped(t))
}

// checkCompose loads each architecture's compose file of topo under dir, its profile active,
// and checks that it runs exactly the topology's services: hardened, with the topology's
// limits and dependencies, each in its architecture's network under its own name, only the
// edge published, on 127.0.0.1, at the port its variable moves.
func checkCompose(t *testing.T, dir string, topo topology.Topology) {
	t.Helper()
	env := withStackEnv(topo, map[string]string{"SHOP_ADMIN_TOKEN": "secret-token", "SHOP_REQUEST_KEY": "secret-key"})
	for _, a := range topo.Archs {
		t.Run("compose/"+a.Name, func(t *testing.T) {
			path := filepath.Join(dir, filepath.FromSlash(ComposeFile(topo, a.Name)))
			p := loadCompose(t, path, env, a.Name)
			if len(p.Services) != len(a.Services)+1 {
				t.Errorf("profile %s has %d services, the topology %d and the renewer", a.Name, len(p.Services), len(a.Services))
			}
			checkComposeRenewer(t, p, stack.DefaultName, LocalRepo+"/"+topology.RenewerService+":latest")
			for _, s := range a.Services {
				name := ComposeName(topo, a.Name, s.Name)
				cs, ok := p.Services[name]
				if !ok {
					t.Errorf("no service %s", name)
					continue
				}
				if n := cs.Networks[a.Name]; n == nil || !slices.Contains(n.Aliases, s.Name) || len(cs.Networks) != 1 {
					t.Errorf("%s: networks %v: want only %s, alias %s", name, cs.Networks, a.Name, s.Name)
				}
				if !cs.ReadOnly || !slices.Equal(cs.CapDrop, []string{"ALL"}) || cs.User != "65532:65532" ||
					!slices.Contains(cs.SecurityOpt, "no-new-privileges:true") || !slices.Contains([]string(cs.Tmpfs), "/tmp") {
					t.Errorf("%s: not hardened: read_only %v, cap_drop %v, user %q, security_opt %v, tmpfs %v",
						name, cs.ReadOnly, cs.CapDrop, cs.User, cs.SecurityOpt, cs.Tmpfs)
				}
				if cs.Deploy == nil || cs.Deploy.Resources.Limits == nil || cs.Deploy.Resources.Limits.MemoryBytes != types.UnitBytes(s.MemoryMB)<<20 ||
					math.Abs(float64(cs.Deploy.Resources.Limits.NanoCPUs)-s.CPUs) > 1e-6 { // compose holds CPUs as a float32
					t.Errorf("%s: limits %+v, topology %v CPUs %d MB", name, cs.Deploy, s.CPUs, s.MemoryMB)
				}
				if cs.Image != LocalRepo+"/"+s.Image+":latest" {
					t.Errorf("%s: image %s", name, cs.Image)
				}
				for k, v := range cs.Environment {
					if v == nil || strings.Contains(*v, "{{") || strings.Contains(*v, "\x00") {
						t.Errorf("%s: %s=%v", name, k, v)
					}
				}
				if key, ok := s.Env["SHOP_REQUEST_KEY"]; ok && key != "" {
					if v := cs.Environment["SHOP_REQUEST_KEY"]; v == nil || *v != "secret-key" {
						t.Errorf("%s: request key %v, want the one from the environment", s.Name, v)
					}
				}
				if tok, ok := s.Env["SHOP_ADMIN_TOKEN"]; ok && tok != "" {
					if v := cs.Environment["SHOP_ADMIN_TOKEN"]; v == nil || *v != "secret-token" {
						t.Errorf("%s: the admin token is %v, not the caller's", name, v)
					}
				}
				for _, port := range cs.Ports {
					if port.HostIP != "127.0.0.1" {
						t.Errorf("%s: port %+v is published beyond 127.0.0.1", name, port)
					}
				}
				if (s.Edge != "") != (len(cs.Ports) == 1) {
					t.Errorf("%s: ports %v: only the edge is published", name, cs.Ports)
				}
				var deps []string
				for d := range cs.DependsOn {
					deps = append(deps, d)
				}
				want := []string{}
				for _, d := range s.DependsOn {
					want = append(want, ComposeName(topo, a.Name, d))
				}
				slices.Sort(deps)
				slices.Sort(want)
				if !slices.Equal(deps, want) && !(len(deps) == 0 && len(want) == 0) {
					t.Errorf("%s: depends on %v, topology %v", name, deps, want)
				}
			}
			// The edge's port moves with the architecture's variable.
			moved := loadCompose(t, path, withStackEnv(topo, map[string]string{"SHOP_ADMIN_TOKEN": "x", "SHOP_REQUEST_KEY": "k", ComposePortVar(a.Name): "18999"}), a.Name)
			published := 0
			for _, cs := range moved.Services {
				for _, port := range cs.Ports {
					published++
					if port.Published != "18999" || port.Target != topology.EdgePort {
						t.Errorf("%s: %s=18999 publishes %+v", cs.Name, ComposePortVar(a.Name), port)
					}
				}
			}
			if published != 1 {
				t.Errorf("%d ports published, want the edge's", published)
			}
		})
	}
}

// checkComposeRenewer checks the stack's renewer of a compose project: hardened, no
// network, the PKI folder of MITOSIS_PKI mounted read-write, renewing the identities of
// stackName, from image.
func checkComposeRenewer(t *testing.T, p *types.Project, stackName, image string) {
	t.Helper()
	r, ok := p.Services[topology.RenewerService]
	if !ok {
		t.Errorf("no renewer: the identities of %s would expire a week after they were issued", ComposePKIVar)
		return
	}
	if !r.ReadOnly || !slices.Equal(r.CapDrop, []string{"ALL"}) || r.User != "65532:65532" || !slices.Contains(r.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("renewer: not hardened: read_only %v, cap_drop %v, user %q, security_opt %v", r.ReadOnly, r.CapDrop, r.User, r.SecurityOpt)
	}
	if r.NetworkMode != "none" || len(r.Networks) != 0 || len(r.Ports) != 0 {
		t.Errorf("renewer: network_mode %q, networks %v, ports %v: want none", r.NetworkMode, r.Networks, r.Ports)
	}
	if len(r.Volumes) != 1 || r.Volumes[0].Source != testPKI || r.Volumes[0].Target != topology.PKIMount || r.Volumes[0].ReadOnly {
		t.Errorf("renewer: volumes %+v, want %s read-write at %s", r.Volumes, testPKI, topology.PKIMount)
	}
	cmd := strings.Join(r.Command, " ")
	if want := "-pki " + topology.PKIMount + " -stack " + stackName + " "; !strings.Contains(cmd, want) {
		t.Errorf("renewer: command %q, want it to hold %q", cmd, want)
	}
	if r.Image != image {
		t.Errorf("renewer: image %s, want %s", r.Image, image)
	}
}

func TestComposeVariables(t *testing.T) {
	p := loadCompose(t, shippedCompose(t), withStackEnv(shipped(t), map[string]string{
		"SHOP_ADMIN_TOKEN": "x", "SHOP_REQUEST_KEY": "k", ComposeRegistryVar: "localhost/other", ComposeTagVar: "v9",
		ComposePortVar(topology.Monolith): "18999", ComposeStackVar: "other-stack",
	}), topology.Monolith)
	m := p.Services["monolith"]
	if m.Image != "localhost/other/monolith:v9" {
		t.Errorf("image %s", m.Image)
	}
	if len(m.Ports) != 1 || m.Ports[0].Published != "18999" || m.Ports[0].Target != topology.EdgePort {
		t.Errorf("ports %+v", m.Ports)
	}
	checkComposeRenewer(t, p, "other-stack", "localhost/other/renewer:v9")
}

func TestComposeNeedsTheAdminToken(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{shippedCompose(t)},
		cli.WithName("mitosis"), cli.WithEnv([]string{"SHOP_ADMIN_TOKEN=", "SHOP_REQUEST_KEY=k"}), cli.WithProfiles([]string{topology.Monolith}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.LoadProject(context.Background()); err == nil || !strings.Contains(err.Error(), "SHOP_ADMIN_TOKEN") {
		t.Errorf("loading without SHOP_ADMIN_TOKEN: %v, want an error naming it", err)
	}
}
