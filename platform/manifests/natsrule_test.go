package manifests

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// renderedNATSAuth is one NATS server's users as a rendered deploy file gives them
// (NATSAuthEnv), and the architectures whose processes dial it.
type renderedNATSAuth struct {
	where string
	auth  string
	archs []topology.Arch
}

// renderedNATSAuths collects the users of every NATS the deploy files run for topo: the
// cluster base's (every architecture's processes), compose's and ECS's (one per
// architecture), and the Beanstalk bundle's.
func renderedNATSAuths(t *testing.T, topo topology.Topology) []renderedNATSAuth {
	t.Helper()
	var out []renderedNATSAuth
	objs, err := KubeOf(topo, topology.Services, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range findNATS(t, objs).Spec.Template.Spec.Containers[0].Env {
		if e.Name == NATSAuthEnv {
			out = append(out, renderedNATSAuth{"k8s base", e.Value, topo.AllArchs()})
		}
	}
	env := withStackEnv(topo, map[string]string{"SHOP_ADMIN_TOKEN": "x", "SHOP_REQUEST_KEY": "k"})
	for _, a := range topo.Archs {
		p := loadCompose(t, filepath.Join(repoRoot(t), filepath.FromSlash(ComposeFile(topo, a.Name))), env, a.Name)
		if auth := p.Services[ComposeName(topo, a.Name, topology.NATSService)].Environment[NATSAuthEnv]; auth != nil {
			out = append(out, renderedNATSAuth{"compose/" + a.Name, *auth, []topology.Arch{a}})
		}
	}
	bs := loadCompose(t, filepath.Join(repoRoot(t), "deploy", "beanstalk", "docker-compose.yml"), beanstalkEnv(t, ecsSecrets(t, topo)))
	if auth := bs.Services[topology.NATSService].Environment[NATSAuthEnv]; auth != nil {
		a, _ := archNamed(topo, topology.Monolith)
		out = append(out, renderedNATSAuth{"beanstalk", *auth, []topology.Arch{a}})
	}
	svcs, err := ECS(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range svcs {
		for _, kv := range e.Task.ContainerDefinitions[0].Environment {
			if deref(kv.Name) == NATSAuthEnv {
				out = append(out, renderedNATSAuth{"ecs/" + e.Arch, deref(kv.Value), []topology.Arch{archOf(topo, e.Arch)}})
			}
		}
	}
	return out
}

// Every NATS the deploy files run, read by nats-server's own parser, lets each process in
// as the running stack's NATS does (natsauth.Setup's users file): for every service, the
// same user with the same permissions, and the admin with all.
func TestDeployedNATSUsersAreTheRunningStacks(t *testing.T) {
	topo := shipped(t)
	creds, err := natsauth.Setup(t.TempDir(), topo)
	if err != nil {
		t.Fatal(err)
	}
	running, err := natsauth.ReadUsers(creds.Path())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*server.User{}
	for _, u := range running {
		byName[u.Username] = u
		t.Setenv(natsauth.PasswordEnv(u.Username), u.Password)
	}
	rendered := renderedNATSAuths(t, topo)
	if len(rendered) < 2+2*len(topo.Archs) {
		t.Fatalf("%d NATS servers rendered, want the base's, Beanstalk's and one per architecture in compose and ECS", len(rendered))
	}
	for _, r := range rendered {
		var o server.Options
		if err := o.ProcessConfigString(r.auth); err != nil {
			t.Fatalf("%s: nats-server reads %s: %v", r.where, NATSAuthEnv, err)
		}
		got := map[string]*server.User{}
		for _, u := range o.Users {
			got[u.Username] = u
			want, ok := byName[u.Username]
			if !ok {
				t.Errorf("%s: user %s, whom the running stack does not know", r.where, u.Username)
				continue
			}
			if !reflect.DeepEqual(u, want) {
				t.Errorf("%s: user %s is\n%+v\nthe running stack's\n%+v", r.where, u.Username, u, want)
			}
		}
		if got[natsauth.Admin] == nil {
			t.Errorf("%s: no admin", r.where)
		}
		for _, a := range r.archs {
			for _, s := range a.Services {
				if _, ok := s.Env[topology.NATSURLEnv]; ok && got[natsauth.UserOf(s)] == nil {
					t.Errorf("%s: no user for %s/%s", r.where, a.Name, s.Name)
				}
			}
		}
	}
}

// A changed rule is seen: a user with one subject fewer than the running stack's differs.
func TestDeployedNATSUsersCatchADifference(t *testing.T) {
	users, err := natsauth.ServerUsers([]string{"cart"}, func(string) string { return "pw" })
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(natsauth.PasswordEnv("cart"), "pw")
	auth, err := NATSAuth([]string{"cart"})
	if err != nil {
		t.Fatal(err)
	}
	allow := users[0].Permissions.Publish.Allow
	cut := strings.Replace(auth, `"`+allow[len(allow)-1]+`"`, "", 1)
	var o server.Options
	if err := o.ProcessConfigString(cut); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(o.Users[0], users[0]) {
		t.Errorf("a user missing %s compares equal to the running stack's", allow[len(allow)-1])
	}
	var whole server.Options
	if err := whole.ProcessConfigString(auth); err != nil || !reflect.DeepEqual(whole.Users[0], users[0]) {
		t.Errorf("the rendered cart differs from natsauth's (%v)", err)
	}
}
