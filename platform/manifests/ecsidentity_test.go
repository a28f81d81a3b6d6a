package manifests

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
)

// secretsManager stands for Secrets Manager holding what the README's ECS steps put there:
// each identity of the shipped ECS files issued by a real CA (as `mitosis certs aws-secret`
// prints it), and the NATS users' URLs and passwords. resolve is what ECS does with a
// container's secrets when a task starts.
type secretsManager map[string]string

func ecsSecrets(t *testing.T, topo topology.Topology) secretsManager {
	t.Helper()
	ca, err := identity.OpenCA(t.TempDir(), "ecs")
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsManager{"mitosis/admin-token": "token", "mitosis/request-key": "key"}
	for _, id := range topo.Identities() {
		certPEM, keyPEM, err := ca.Issue(id, identity.LeafLifetime)
		if err != nil {
			t.Fatal(err)
		}
		b, err := AWSTLSSecretString(certPEM, keyPEM, ca.Bundle())
		if err != nil {
			t.Fatal(err)
		}
		sm[AWSTLSSecret(id)] = string(b)
	}
	pw := testPasswords(natsauth.Users(topo))
	urls, err := NATSURLs(topo, pw)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]map[string]string{AWSNATSURLsSecret: urls, AWSNATSUsersSecret: pw} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		sm[name] = string(b)
	}
	return sm
}

// resolve reads valueFrom as ECS does: arn:...:secret:<name>[:<json key>:<stage>:<version>].
func (sm secretsManager) resolve(t *testing.T, valueFrom string) string {
	t.Helper()
	_, ref, ok := strings.Cut(valueFrom, ":secret:")
	if !ok {
		t.Fatalf("valueFrom %s names no secret", valueFrom)
	}
	parts := strings.Split(ref, ":")
	v, ok := sm[parts[0]]
	if !ok {
		t.Fatalf("valueFrom %s: no secret %s in the README's steps", valueFrom, parts[0])
	}
	if len(parts) == 1 || parts[1] == "" {
		return v
	}
	var byKey map[string]string
	if err := json.Unmarshal([]byte(v), &byKey); err != nil {
		t.Fatalf("secret %s: %v", parts[0], err)
	}
	got, ok := byKey[parts[1]]
	if !ok {
		t.Fatalf("valueFrom %s: secret %s has no key %s", valueFrom, parts[0], parts[1])
	}
	return got
}

// Every ECS task of the shipped files runs secure: no SHOP_INSECURE, no identity folder (no
// file is mounted), no PEM in its plain environment; every service with an identity gets it
// from its secret, which the processes' loader reads as that identity, the NATS server as
// its own (NATS_TLS_*), and every process dials NATS over TLS.
func TestECSTasksCarryIdentities(t *testing.T) {
	topo := shipped(t)
	sm := ecsSecrets(t, topo)
	tasks, _ := readECS(t, repoRoot(t))
	n := 0
	for _, a := range topo.Archs {
		for _, s := range a.Services {
			task, ok := tasks[a.Name+"/"+s.Name]
			if !ok {
				t.Errorf("no task definition for %s/%s", a.Name, s.Name)
				continue
			}
			for _, c := range task.ContainerDefinitions {
				if aws.ToString(c.Name) == s.Name {
					n += checkSecure(t, a.Name+"/"+s.Name, s, sm.environ(t, c.Environment, c.Secrets))
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no service of the shipped topologies has an identity")
	}
}

// The Express services (the monolith, the gateways) call the contexts and NATS on ECS, which
// let in nobody without an identity of the stack: they carry theirs as the ECS tasks do.
func TestExpressServicesCarryIdentities(t *testing.T) {
	topo := shipped(t)
	sm := ecsSecrets(t, topo)
	svcs, err := Express(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range svcs {
		i := slices.IndexFunc(topo.Archs, func(a topology.Arch) bool { return a.Name == e.Arch })
		s, ok := topo.Archs[i].Service(e.Name)
		if !ok {
			t.Fatalf("express %s/%s: no such service", e.Arch, e.Name)
		}
		c := e.Input.PrimaryContainer
		n += checkSecure(t, "express "+e.Arch+"/"+e.Name, s, sm.environ(t, c.Environment, c.Secrets))
	}
	if n == 0 {
		t.Fatal("no Express service has an identity")
	}
}

// environ is a container's environment once ECS has filled its secrets from sm.
func (sm secretsManager) environ(t *testing.T, plain []types.KeyValuePair, secrets []types.Secret) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, kv := range plain {
		env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
	}
	for _, sec := range secrets {
		name := aws.ToString(sec.Name)
		if _, ok := env[name]; ok {
			t.Errorf("%s is set twice", name)
		}
		env[name] = sm.resolve(t, aws.ToString(sec.ValueFrom))
	}
	return env
}

// checkSecure checks that the process s runs with env is secure, and returns 1 if it has an
// identity (0 if it needs none).
func checkSecure(t *testing.T, name string, s topology.Service, env map[string]string) int {
	t.Helper()
	shop, nats := identity.EnvFor(topology.TLSDirEnv), identity.EnvFor(topology.NATSTLSDirEnv)
	for _, banned := range []string{topology.InsecureEnv, shop.Dir, nats.Dir} {
		if _, ok := env[banned]; ok {
			t.Errorf("%s: %s is set", name, banned)
		}
	}
	if u, ok := env[topology.NATSURLEnv]; ok && !strings.HasPrefix(u, "tls://") {
		_, host, _ := strings.Cut(u, "@")
		t.Errorf("%s dials NATS in clear (%s)", name, host)
	}
	id := s.Identity()
	if id == "" {
		return 0
	}
	vars := shop
	if id == identity.NATS {
		vars = nats
	}
	src, err := vars.Open(func(k string) string { return env[k] })
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return 1
	}
	if got := src.ID(); got != (identity.ID{Stack: "ecs", Service: id}) {
		t.Errorf("%s runs as %s, want %s", name, got, id)
	}
	if id == identity.NATS {
		return 1
	}
	// The process itself takes it: it starts secure with this environment.
	cfg, err := host.ConfigFrom(func(k string) string { return env[k] }, bounded.Group{})
	if err != nil {
		t.Errorf("%s: the host refuses its environment: %v", name, err)
	} else if cfg.Security.Insecure || cfg.Security.Identity == nil || cfg.Security.Identity.ID() != src.ID() {
		t.Errorf("%s: the host runs with %+v, want the identity %s", name, cfg.Security, src.ID())
	}
	return 1
}

// The HTTP functions carry their identity as the ECS tasks do, filled in at deploy time: the
// README's step (envsubst of the file, the PEM JSON-escaped) gives a valid function whose
// environment the loader reads as its identity, dials NATS over TLS, and stays within
// Lambda's 4 KB of environment with the largest bundle (two CAs, after a rotation) and
// secrets as long as the ones mitosis makes.
func TestLambdaIdentityFits(t *testing.T) {
	dir := t.TempDir()
	if _, err := identity.OpenCA(dir, "ecs"); err != nil {
		t.Fatal(err)
	}
	ca, err := identity.RotateCA(dir, "ecs")
	if err != nil {
		t.Fatal(err)
	}
	topo := shipped(t)
	fns, err := Lambda(topo, Options{})
	if err != nil || len(fns) == 0 {
		t.Fatalf("%d functions (%v)", len(fns), err)
	}
	for _, fn := range fns {
		i := slices.IndexFunc(topo.Archs, func(a topology.Arch) bool { return a.Name == fn.Arch })
		s, _ := topo.Archs[i].Service(fn.Name)
		in := filledLambdaEnv(t, ca, s, fn.Input)
		size := 0
		for k, v := range in.Variables {
			size += len(k) + len(v)
		}
		if size > 4096 {
			t.Errorf("%s/%s: %d bytes of environment, Lambda takes 4 KB", fn.Arch, fn.Name, size)
		}
		t.Logf("%s/%s: %d bytes of environment with its identity", fn.Arch, fn.Name, size)
		in.Variables[host.LambdaRuntimeEnv] = "127.0.0.1:9001" // Lambda sets it
		if checkSecure(t, "lambda "+fn.Arch+"/"+fn.Name, s, in.Variables) == 0 {
			t.Errorf("%s/%s has no identity", fn.Arch, fn.Name)
		}
	}
}

// filledLambdaEnv is the environment of the function input (a CreateFunctionInput) once
// filled in as deploy/README.md does it: envsubst of the file, s's identity issued by ca and
// JSON-escaped, every other secret 64 characters long.
func filledLambdaEnv(t *testing.T, ca *identity.CA, s topology.Service, input any) lambdatypes.Environment {
	t.Helper()
	pemVars := identity.EnvFor(topology.TLSDirEnv).PEMVars()
	placeholder := regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`)
	certPEM, keyPEM, err := ca.Issue(s.Identity(), identity.LeafLifetime)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for i, b := range [][]byte{certPEM, keyPEM, ca.Bundle()} {
		q, err := json.Marshal(string(b))
		if err != nil {
			t.Fatal(err)
		}
		values[pemVars[i]] = string(q[1 : len(q)-1]) // jq -r '.cert | tojson | .[1:-1]'
	}
	b, err := MarshalLambda(input)
	if err != nil {
		t.Fatal(err)
	}
	filled := placeholder.ReplaceAllStringFunc(string(b), func(m string) string {
		if v, ok := values[m[2:len(m)-1]]; ok {
			return v
		}
		return strings.Repeat("f", 64) // a token, key or password: 64 hexadecimal characters at most
	})
	var whole struct{ Environment *lambdatypes.Environment }
	if err := json.Unmarshal([]byte(filled), &whole); err != nil || whole.Environment == nil {
		t.Fatalf("%s filled in: %v", s.Name, err)
	}
	return *whole.Environment
}

// The checkout's step functions serve no gRPC, but their NATS speaks TLS only and asks for
// a client certificate: each carries its context's identity, filled in at deploy time as
// the HTTP functions' (TestLambdaIdentityFits), and dials NATS over TLS.
func TestCheckoutFunctionsCarryIdentities(t *testing.T) {
	ca, err := identity.OpenCA(t.TempDir(), "ecs")
	if err != nil {
		t.Fatal(err)
	}
	topo := shipped(t)
	fns, err := CheckoutFunctions(topo, Options{})
	if err != nil || len(fns) == 0 {
		t.Fatalf("%d functions (%v)", len(fns), err)
	}
	for _, fn := range fns {
		_, s, ok := alone(topo, fn.Context)
		if !ok {
			t.Fatalf("no architecture runs %s alone", fn.Context)
		}
		in := filledLambdaEnv(t, ca, s, fn.Input)
		in.Variables[host.LambdaRuntimeEnv] = "127.0.0.1:9001" // Lambda sets it
		if checkSecure(t, "checkout function "+fn.Context, s, in.Variables) == 0 {
			t.Errorf("%s has no identity", fn.Context)
		}
	}
}
