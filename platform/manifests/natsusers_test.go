package manifests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// testPasswords are the Secret NATSUsersSecret of a test: a password per key of users.
func testPasswords(users []string) map[string]string {
	out := map[string]string{}
	for _, u := range append(slices.Clone(users), natsauth.Route) {
		out[u] = "pw0" + strings.ReplaceAll(u, "-", "") + "9f"
	}
	return out
}

// shippedUsers returns the shipped topologies, their NATS users and a test password of each
// (testPasswords).
func shippedUsers(t *testing.T) (topology.Topology, []string, map[string]string) {
	t.Helper()
	topo, err := Shipped("")
	if err != nil {
		t.Fatal(err)
	}
	users := natsauth.Users(topo)
	return topo, users, testPasswords(users)
}

// testPKI is the identities' folder compose mounts from in the tests (ComposePKIVar).
const testPKI = "/srv/pki/mitosis"

// withStackEnv adds to env what the stack gives compose: the variables of every NATS user
// of topo, as `mitosis certs nats-users --format env` writes them, and the identities'
// folder.
func withStackEnv(topo topology.Topology, env map[string]string) map[string]string {
	env[ComposePKIVar] = testPKI
	for u, pw := range testPasswords(natsauth.Users(topo)) {
		env[natsauth.PasswordEnv(u)] = pw
	}
	return env
}

// kubeletEnv is a container's environment as the kubelet gives it: secrets read from
// secrets (Secret -> key -> value), fields from fields, and $(VAR) expanded from the
// variables defined before (Expand).
func kubeletEnv(t *testing.T, c Container, secrets map[string]map[string]string, fields map[string]string) map[string]string {
	t.Helper()
	var defined []EnvVar
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, ok := secrets[ref.Name][ref.Key]
			if !ok {
				t.Fatalf("%s: %s from Secret %s key %s, which the test's Secrets lack", c.Name, e.Name, ref.Name, ref.Key)
			}
			v = s
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v = fields[e.ValueFrom.FieldRef.FieldPath]
		default:
			v = Expand(v, defined)
		}
		defined = append(defined, EnvVar{Name: e.Name, Value: v})
	}
	env := map[string]string{}
	for _, e := range defined {
		env[e.Name] = e.Value
	}
	return env
}

// checkUsers says whether a server's users are users, each with natsauth.Permissions of its
// group and the password the Secret gives, the admin with every permission.
func checkUsers(t *testing.T, where string, got []*server.User, users []string, pw map[string]string) {
	t.Helper()
	var names []string
	for _, u := range got {
		names = append(names, u.Username)
		if u.Password != pw[u.Username] {
			t.Errorf("%s: user %s's password %q, the Secret's %q", where, u.Username, u.Password, pw[u.Username])
		}
		if u.Username == natsauth.Admin {
			if u.Permissions != nil {
				t.Errorf("%s: the admin is limited: %+v", where, u.Permissions)
			}
			continue
		}
		g, err := bounded.ParseName(u.Username)
		if err != nil {
			t.Errorf("%s: user %s: %v", where, u.Username, err)
			continue
		}
		if want := natsauth.Permissions(g); !reflect.DeepEqual(u.Permissions, want) {
			t.Errorf("%s: user %s's permissions\n%+v\nwant natsauth's\n%+v", where, u.Username, u.Permissions, want)
		}
	}
	if !slices.Equal(names, users) {
		t.Errorf("%s: users %v, want %v", where, names, users)
	}
}

// The base's NATS, read by nats-server's own parser as platform/cmd/nats-server -auth reads
// it, holds every process's user with natsauth's permissions, and the passwords of the
// Secret; the file holds none.
func TestBaseNATSUsersFromTheSecret(t *testing.T) {
	topo, users, pw := shippedUsers(t)
	objs, err := KubeOf(topo, topology.Services, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := findNATS(t, objs)
	env := kubeletEnv(t, ss.Spec.Template.Spec.Containers[0], map[string]map[string]string{NATSUsersSecret: pw}, nil)
	auth := env[NATSAuthEnv]
	for _, p := range pw {
		if strings.Contains(auth, p) {
			t.Fatalf("the rendered users hold a password")
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var o server.Options
	if err := o.ProcessConfigString(auth); err != nil {
		t.Fatalf("nats-server reads %s: %v\n%s", NATSAuthEnv, err, auth)
	}
	checkUsers(t, "base", o.Users, users, pw)
}

// The production cluster's nats.conf, read by nats-server's own parser with the environment
// its pods get: the users as in the base, client TLS with the NATS identity, and routes that
// ask the route user's password of each other and present it.
func TestProductionNATSConfig(t *testing.T) {
	topo, users, pw := shippedUsers(t)
	objs, err := KubeOf(topo, OverlayProduction, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var conf string
	for _, o := range objs {
		if cm, ok := o.(*ConfigMap); ok && cm.Metadata.Name == natsConfigName {
			conf = cm.Data["nats.conf"]
		}
	}
	if conf == "" {
		t.Fatal("the production overlay has no nats.conf")
	}
	// Its TLS files, where the Secret's volume puts them: a real identity of a test stack.
	ca, err := identity.OpenCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := ca.Ensure(identity.NATS)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(conf, topology.TLSMount, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	ss := findNATS(t, objs)
	env := kubeletEnv(t, ss.Spec.Template.Spec.Containers[0], map[string]map[string]string{NATSUsersSecret: pw},
		map[string]string{"metadata.name": "nats-1"})
	for k, v := range env {
		t.Setenv(k, v)
	}
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server reads nats.conf: %v\n%s", err, conf)
	}
	checkUsers(t, "production", o.Users, users, pw)
	if o.ServerName != "nats-1" || o.StoreDir != "/data" || o.Port != topology.NATSPort {
		t.Errorf("server_name %q, store_dir %q, port %d", o.ServerName, o.StoreDir, o.Port)
	}
	if o.TLSConfig == nil || o.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("clients without TLS and a verified certificate: %+v", o.TLSConfig)
	}
	if o.Cluster.Username != natsauth.Route || o.Cluster.Password != pw[natsauth.Route] || o.Cluster.Port != NATSClusterPort {
		t.Errorf("routes accept user %q password %q on %d", o.Cluster.Username, o.Cluster.Password, o.Cluster.Port)
	}
	// The routes: TLS both ways, and each node's certificate good for the names the others
	// dial it by, from the stack's CA, as the soliciting node checks it.
	if c := o.Cluster.TLSConfig; c == nil || c.ClientAuth != tls.RequireAndVerifyClientCert || len(c.Certificates) != 1 {
		t.Fatalf("routes without mutual TLS: %+v", c)
	}
	leaf, err := x509.ParseCertificate(o.Cluster.TLSConfig.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := range NATSClusterSize {
		name := fmt.Sprintf("nats-%d.nats", i)
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: o.Cluster.TLSConfig.RootCAs,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("route to %s: %v", name, err)
		}
	}
	var routes []string
	for _, r := range o.Routes {
		if p, _ := r.User.Password(); r.User.Username() != natsauth.Route || p != pw[natsauth.Route] {
			t.Errorf("route %s does not present the route user", r.Redacted())
		}
		routes = append(routes, r.Host)
	}
	var want []string
	for i := range NATSClusterSize {
		want = append(want, fmt.Sprintf("nats-%d.nats:%d", i, NATSClusterPort))
	}
	if !slices.Equal(routes, want) {
		t.Errorf("routes %v, want %v", routes, want)
	}
}

// A real nats-server with the users the base renders and the passwords the kubelet gives it:
// each process's rendered URL, as the kubelet expands it, lets it do its context's work and
// nothing else. The cart's cannot read payments_charges or publish an order-paid; the
// orders' publishes order-paid, the payments' reads its charges.
func TestRenderedUsersOnARealServer(t *testing.T) {
	topo, _, pw := shippedUsers(t)
	objs, err := KubeOf(topo, topology.Services, Options{})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]map[string]string{NATSUsersSecret: pw, AdminSecret: {AdminSecretKey: "tok"}, RequestKeySecret: {RequestKeySecretKey: "key"}}
	for k, v := range kubeletEnv(t, findNATS(t, objs).Spec.Template.Spec.Containers[0], secrets, nil) {
		t.Setenv(k, v)
	}
	var conf server.Options
	if err := conf.ProcessConfigString(os.Getenv(NATSAuthEnv)); err != nil {
		t.Fatal(err)
	}
	ns := natsjstest.Serve(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true, Users: conf.Users})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// connect dials the server as the service's rendered URL says (its user and password),
	// with the inbox prefix its host uses.
	connect := func(service string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		env := kubeletEnv(t, workloadOf(t, objs, service).Spec.Containers[0], secrets, map[string]string{"status.podIP": "10.0.0.1"})
		u, err := url.Parse(env[topology.NATSURLEnv])
		if err != nil {
			t.Fatal(err)
		}
		p, _ := u.User.Password()
		g, err := bounded.ParseName(u.User.Username())
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(u.User.Username(), p), nats.CustomInboxPrefix(g.InboxPrefix()))
		if err != nil {
			t.Fatalf("%s connects as %s: %v", service, u.User.Username(), err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	admin, err := nats.Connect(ns.ClientURL(), nats.UserInfo(natsauth.Admin, pw[natsauth.Admin]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if _, err := nats.Connect(ns.ClientURL()); err == nil {
		t.Error("a connection without credentials was let in")
	}
	if _, err := nats.Connect(ns.ClientURL(), nats.UserInfo("cart", pw["payments"])); err == nil {
		t.Error("the cart was let in with the payments' password")
	}

	_, pjs := connect("payments")
	charges, err := natsjs.OpenBucket(ctx, pjs, natsjs.StoreConfig{}, payments.ChargesBucket)
	if err != nil {
		t.Fatalf("payments opens its charges: %v", err)
	}
	if _, err := charges.Create(ctx, "ch-1", []byte(`{"card":"4242"}`)); err != nil {
		t.Fatalf("payments writes a charge: %v", err)
	}
	if _, err := charges.Get(ctx, "ch-1"); err != nil {
		t.Fatalf("payments reads its charge: %v", err)
	}
	_, ojs := connect("orders")
	if _, err := natsjs.OpenBus(ctx, ojs, natsjs.StoreConfig{}, bounded.Group{Contexts: []string{"orders"}}.EventConsumers(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("orders opens the bus: %v", err)
	}
	if _, err := ojs.Publish(ctx, events.OrderPaidSubject, []byte(`{"order_id":"ord-1"}`)); err != nil {
		t.Fatalf("orders publishes an order-paid: %v", err)
	}

	cart, cjs := connect("cart")
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Second) }
	c1, cancel1 := short()
	defer cancel1()
	if _, err := natsjs.OpenBucket(c1, cjs, natsjs.StoreConfig{}, payments.ChargesBucket); err == nil {
		t.Error("the cart opened the charges bucket")
	}
	if m, err := cart.Request("$JS.API.DIRECT.GET.KV_"+payments.ChargesBucket+".$KV."+payments.ChargesBucket+".ch-1", nil, time.Second); err == nil {
		t.Errorf("the cart read a charge by a direct get: %s", m.Data)
	}
	c2, cancel2 := short()
	defer cancel2()
	if _, err := cjs.Publish(c2, events.OrderPaidSubject, []byte(`{"order_id":"ord-2"}`)); err == nil {
		t.Error("the cart published an order-paid")
	}
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ajs.Stream(ctx, natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.OrderPaidSubject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Msgs; n != 1 {
		t.Errorf("the event stream holds %d order-paid, want the orders' one", n)
	}
}

// Every process that uses NATS dials it as its own user, its password from the Secret, in
// every overlay: the URL the kubelet expands names the user of its group and no password.
func TestProcessesDialNATSAsTheirUser(t *testing.T) {
	topo, _, pw := shippedUsers(t)
	for _, overlay := range Overlays(topo) {
		objs, err := KubeOf(topo, overlay, Options{})
		if err != nil {
			t.Fatal(err)
		}
		name := overlay
		if overlay == OverlayProduction {
			name = topology.Services
		}
		a, _ := arch(topo, name)
		for _, s := range a.Services {
			if s.DataDir != "" {
				continue
			}
			tmpl := workloadOf(t, objs, s.Name)
			c := tmpl.Spec.Containers[0]
			raw := ""
			for _, e := range c.Env {
				if e.Name == topology.NATSURLEnv {
					raw = e.Value
				}
			}
			user := natsauth.UserOf(s)
			if _, ok := s.Env[topology.NATSURLEnv]; !ok {
				if raw != "" {
					t.Errorf("%s/%s dials NATS: %s", overlay, s.Name, raw)
				}
				continue
			}
			env := kubeletEnv(t, c, map[string]map[string]string{NATSUsersSecret: pw, AdminSecret: {AdminSecretKey: "tok"},
				RequestKeySecret: {RequestKeySecretKey: "key"}}, map[string]string{"status.podIP": "10.0.0.1"})
			if want := "tls://" + user + ":" + pw[user] + "@nats:4222"; env[topology.NATSURLEnv] != want {
				t.Errorf("%s/%s: %s=%q, want %q", overlay, s.Name, topology.NATSURLEnv, env[topology.NATSURLEnv], want)
			}
			if strings.Contains(raw, pw[user]) {
				t.Errorf("%s/%s: the rendered URL holds the password", overlay, s.Name)
			}
		}
	}
}

func findNATS(t *testing.T, objs []Object) *StatefulSet {
	t.Helper()
	for _, o := range objs {
		if ss, ok := o.(*StatefulSet); ok && ss.Metadata.Name == topology.NATSService {
			return ss
		}
	}
	t.Fatal("no nats StatefulSet")
	return nil
}

func workloadOf(t *testing.T, objs []Object, name string) *PodTemplate {
	t.Helper()
	for _, o := range objs {
		if _, m := o.Meta(); m.Name == name {
			if tmpl := Workload(o); tmpl != nil {
				return tmpl
			}
		}
	}
	t.Fatalf("no workload %s", name)
	return nil
}

// Compose's NATS of each architecture, loaded by compose-go with the env file the CLI writes,
// holds the architecture's users with natsauth's permissions and their passwords, read by
// nats-server's own parser; each process dials it as its own user. Without a password,
// compose refuses to start, naming it.
func TestComposeNATSUsers(t *testing.T) {
	topo := shipped(t)
	pw := testPasswords(natsauth.Users(topo))
	env := withStackEnv(topo, map[string]string{"SHOP_ADMIN_TOKEN": "x", "SHOP_REQUEST_KEY": "k"})
	for _, a := range topo.Archs {
		p := loadCompose(t, filepath.Join(repoRoot(t), filepath.FromSlash(ComposeFile(topo, a.Name))), env, a.Name)
		for _, s := range a.Services {
			cs := p.Services[ComposeName(topo, a.Name, s.Name)]
			if _, ok := s.Env[topology.NATSUsersEnv]; ok {
				for k, v := range cs.Environment {
					if v != nil && strings.HasPrefix(k, "NATS_PASSWORD_") {
						t.Setenv(k, *v)
					}
				}
				auth := cs.Environment[NATSAuthEnv]
				if auth == nil {
					t.Fatalf("%s: its NATS has no users", a.Name)
				}
				var o server.Options
				if err := o.ProcessConfigString(*auth); err != nil {
					t.Fatalf("%s: nats-server reads %s: %v", a.Name, NATSAuthEnv, err)
				}
				checkUsers(t, "compose/"+a.Name, o.Users, archNATSUsers(a), pw)
				continue
			}
			u := natsauth.UserOf(s)
			got := cs.Environment[topology.NATSURLEnv]
			if _, ok := s.Env[topology.NATSURLEnv]; !ok {
				continue
			}
			if want := "tls://" + u + ":" + pw[u] + "@nats:4222"; got == nil || *got != want {
				t.Errorf("compose/%s/%s dials %s, want %s", a.Name, s.Name, deref(got), want)
			}
		}
	}
	delete(env, natsauth.PasswordEnv("cart"))
	if _, err := loadComposeErr(shippedCompose(t), env, topology.Services); err == nil || !strings.Contains(err.Error(), natsauth.PasswordEnv("cart")) {
		t.Errorf("without the cart's password: %v", err)
	}
}

// ECS's NATS task reads its users' passwords from Secrets Manager and its processes their
// whole URL (ECS composes no variable), each its own user's: no password in a definition.
func TestECSNATSUsers(t *testing.T) {
	topo := shipped(t)
	svcs, err := ECS(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range svcs {
		a, _ := arch(topo, e.Arch)
		s, _ := a.Service(e.Name)
		c := e.Task.ContainerDefinitions[0]
		secrets := map[string]string{}
		for _, sec := range c.Secrets {
			secrets[deref(sec.Name)] = deref(sec.ValueFrom)
		}
		env := map[string]string{}
		for _, kv := range c.Environment {
			env[deref(kv.Name)] = deref(kv.Value)
		}
		if _, ok := s.Env[topology.NATSUsersEnv]; ok {
			users := archNATSUsers(a)
			for _, u := range users {
				want := Options{}.withDefaults().arn("secretsmanager", "secret:"+AWSNATSUsersSecret+":"+u+"::")
				if got := secrets[natsauth.PasswordEnv(u)]; got != want {
					t.Errorf("%s/nats: %s from %q, want %q", e.Arch, natsauth.PasswordEnv(u), got, want)
				}
				t.Setenv(natsauth.PasswordEnv(u), "pw0"+strings.ReplaceAll(u, "-", "")+"9f")
			}
			var o server.Options
			if err := o.ProcessConfigString(env[NATSAuthEnv]); err != nil {
				t.Fatalf("%s/nats: %v", e.Arch, err)
			}
			checkUsers(t, "ecs/"+e.Arch, o.Users, users, testPasswords(users))
			continue
		}
		if _, ok := s.Env[topology.NATSURLEnv]; !ok {
			continue
		}
		want := Options{}.withDefaults().arn("secretsmanager", "secret:"+AWSNATSURLsSecret+":"+natsauth.UserOf(s)+"::")
		if got := secrets[topology.NATSURLEnv]; got != want || env[topology.NATSURLEnv] != "" {
			t.Errorf("%s/%s: %s from %q (env %q), want %q", e.Arch, e.Name, topology.NATSURLEnv, got, env[topology.NATSURLEnv], want)
		}
	}
	// The secret's values: each user's URL, with its password, where its task reaches NATS.
	urls, err := NATSURLs(topo, testPasswords(natsauth.Users(topo)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := urls["cart"], "tls://cart:pw0cart9f@nats:4222"; got != want {
		t.Errorf("the cart's URL %q, want %q", got, want)
	}
	if got, want := urls["monolith"+privateSuffix], "tls://monolith:pw0monolith9f@nats.monolith."+LambdaDomain+":4222"; got != want {
		t.Errorf("the monolith's private URL %q, want %q", got, want)
	}
}

// Compose runs secure as a cluster does: every service with an identity mounts its own
// folder of the stack's (MITOSIS_PKI) read-only where it is told to look, and none runs
// insecure; NATS speaks TLS only.
func TestComposeMountsIdentities(t *testing.T) {
	topo := shipped(t)
	env := withStackEnv(topo, map[string]string{"SHOP_ADMIN_TOKEN": "x", "SHOP_REQUEST_KEY": "k"})
	for _, a := range topo.Archs {
		p := loadCompose(t, filepath.Join(repoRoot(t), filepath.FromSlash(ComposeFile(topo, a.Name))), env, a.Name)
		for _, s := range a.Services {
			cs := p.Services[ComposeName(topo, a.Name, s.Name)]
			id := s.Identity()
			var mounts []string
			for _, v := range cs.Volumes {
				if v.Target == topology.TLSMount {
					mounts = append(mounts, fmt.Sprintf("%s %s ro=%v", v.Type, v.Source, v.ReadOnly))
				}
			}
			dirEnv := topology.TLSDirEnv
			if s.Group == "" {
				dirEnv = topology.NATSTLSDirEnv
			}
			if id == "" {
				if len(mounts) != 0 || cs.Environment[dirEnv] != nil {
					t.Errorf("compose/%s/%s has no identity but mounts %v", a.Name, s.Name, mounts)
				}
				continue
			}
			if want := "bind " + testPKI + "/" + id + " ro=true"; !slices.Equal(mounts, []string{want}) {
				t.Errorf("compose/%s/%s mounts %v at %s, want %s", a.Name, s.Name, mounts, topology.TLSMount, want)
			}
			if got := deref(cs.Environment[dirEnv]); got != topology.TLSMount {
				t.Errorf("compose/%s/%s: %s=%q", a.Name, s.Name, dirEnv, got)
			}
			if v := cs.Environment[topology.InsecureEnv]; v != nil {
				t.Errorf("compose/%s/%s runs insecure", a.Name, s.Name)
			}
		}
	}
	delete(env, ComposePKIVar)
	if _, err := loadComposeErr(shippedCompose(t), env, topology.Services); err == nil || !strings.Contains(err.Error(), ComposePKIVar) {
		t.Errorf("without the identities' folder: %v", err)
	}
}
