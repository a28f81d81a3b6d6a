package manifests

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// beanstalkConfigFile is the bundle's .ebextensions/mitosis.config.
type beanstalkConfigFile struct {
	OptionSettings map[string]map[string]string `json:"option_settings"`
}

func readBeanstalkConfig(t *testing.T) beanstalkConfigFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "beanstalk", ".ebextensions", "mitosis.config"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg beanstalkConfigFile
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// beanstalkEnv is the bundle's .env as Beanstalk writes it when an instance starts: each
// environment secret of the config read from sm, as the README's steps fill Secrets Manager.
func beanstalkEnv(t *testing.T, sm secretsManager) map[string]string {
	t.Helper()
	env := map[string]string{}
	prefix := Options{}.withDefaults().arn("secretsmanager", "secret:")
	for name, arn := range readBeanstalkConfig(t).OptionSettings[beanstalkSecretsNamespace] {
		if !strings.HasPrefix(arn, prefix) || strings.HasSuffix(arn, ":") {
			t.Errorf("%s from %q: not a Secrets Manager ARN as Beanstalk takes it (<arn>[:<json key>])", name, arn)
		}
		env[name] = sm.resolve(t, arn)
	}
	return env
}

// The Beanstalk bundle is a compose file compose-go loads: the monolith's services from ECR,
// as hardened as compose.yaml's, the edge alone on the instance's port 80 where the load
// balancer's health check asks /readyz, every variable it requires filled by Beanstalk from
// Secrets Manager (with no other variable set, it loads), and none without.
func TestBeanstalkBundle(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "beanstalk")
	topo := shipped(t)
	env := beanstalkEnv(t, ecsSecrets(t, topo))
	p := loadCompose(t, filepath.Join(dir, "docker-compose.yml"), env)
	a, ok := archNamed(topo, topology.Monolith)
	if !ok {
		t.Fatal("no monolith in the shipped topologies")
	}
	if len(p.Services) != len(a.Services) {
		t.Errorf("%d services, the monolith's topology %d", len(p.Services), len(a.Services))
	}
	for _, s := range a.Services {
		cs, ok := p.Services[s.Name]
		if !ok {
			t.Errorf("no service %s", s.Name)
			continue
		}
		if cs.Image != (Options{}).withDefaults().ECSImage(s.Image) || !cs.ReadOnly || cs.User != "65532:65532" {
			t.Errorf("%s: image %s, read-only %v, user %s", s.Name, cs.Image, cs.ReadOnly, cs.User)
		}
		switch {
		case s.Edge != "":
			if len(cs.Ports) != 1 || cs.Ports[0].Published != "80" || cs.Ports[0].Target != uint32(s.Ports[0]) {
				t.Errorf("%s: ports %+v, want the edge on the instance's port 80", s.Name, cs.Ports)
			}
			if v := cs.Environment["SHOP_ADMIN_TOKEN"]; v == nil || *v != "token" {
				t.Errorf("%s: admin token %v, want the secret's", s.Name, v)
			}
		default:
			if len(cs.Ports) != 0 {
				t.Errorf("%s: ports %+v: only the edge is published", s.Name, cs.Ports)
			}
		}
		if v := cs.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; v != nil {
			t.Errorf("%s: exports to %q, but no collector runs on the instance", s.Name, *v)
		}
	}
	for name := range env {
		without := maps.Clone(env)
		delete(without, name)
		if _, err := loadComposeErr(filepath.Join(dir, "docker-compose.yml"), without); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v, want it named", name, err)
		}
	}
	proc := readBeanstalkConfig(t).OptionSettings
	if d := proc[beanstalkProcessNamespace]; d["HealthCheckPath"] != "/readyz" || d["Port"] != "80" || proc[beanstalkProxyNamespace]["ProxyServer"] != "none" {
		t.Errorf("option settings %v: the health check on /readyz of port 80, no proxy", proc)
	}
}

// The bundle runs as secure as ECS: once Beanstalk has filled .env from Secrets Manager,
// no process is insecure or mounts an identity folder, each with an identity reads it from
// its PEM variables as that identity (the monolith's host accepts it), and the monolith dials
// its NATS over TLS as its own user.
func TestBeanstalkBundleRunsSecure(t *testing.T) {
	topo := shipped(t)
	env := beanstalkEnv(t, ecsSecrets(t, topo))
	p := loadCompose(t, filepath.Join(repoRoot(t), "deploy", "beanstalk", "docker-compose.yml"), env)
	a, _ := archNamed(topo, topology.Monolith)
	n := 0
	for _, s := range a.Services {
		got := map[string]string{}
		for k, v := range p.Services[s.Name].Environment {
			if v != nil {
				got[k] = *v
			}
		}
		if s.Identity() == "" {
			t.Errorf("%s has no identity", s.Name)
		}
		n += checkSecure(t, "beanstalk/"+s.Name, s, got)
		if _, ok := s.Env[topology.NATSURLEnv]; ok {
			u := natsauth.UserOf(s)
			if want := "tls://" + u + ":" + testPasswords(natsauth.Users(topo))[u] + "@nats:4222"; got[topology.NATSURLEnv] != want {
				t.Errorf("%s dials %q, want %q", s.Name, got[topology.NATSURLEnv], want)
			}
		}
	}
	if n != len(a.Services) {
		t.Errorf("%d of %d services carry an identity", n, len(a.Services))
	}
}
