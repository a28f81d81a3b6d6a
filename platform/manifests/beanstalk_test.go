package manifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// The Beanstalk bundle is a compose file compose-go loads: the monolith's services from ECR,
// as hardened as compose.yaml's, the edge alone on the instance's port 80 where the load
// balancer's health check asks /readyz, the secrets required from the environment.
func TestBeanstalkBundle(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "beanstalk")
	p := loadCompose(t, filepath.Join(dir, "docker-compose.yml"), withStackEnv(shipped(t), map[string]string{"SHOP_ADMIN_TOKEN": "tok", "SHOP_REQUEST_KEY": "key"}))
	a, ok := archNamed(shipped(t), topology.Monolith)
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
			if v := cs.Environment["SHOP_ADMIN_TOKEN"]; v == nil || *v != "tok" {
				t.Errorf("%s: admin token %v, want the environment's", s.Name, v)
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
	if _, err := (loadComposeErr(filepath.Join(dir, "docker-compose.yml"), map[string]string{})); err == nil || !strings.Contains(err.Error(), "SHOP_ADMIN_TOKEN") {
		t.Errorf("without the secrets: %v, want the missing token named", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ".ebextensions", "mitosis.config"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		OptionSettings map[string]map[string]string `json:"option_settings"`
	}
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	proc := cfg.OptionSettings["aws:elasticbeanstalk:environment:process:default"]
	if proc["HealthCheckPath"] != "/readyz" || proc["Port"] != "80" || cfg.OptionSettings["aws:elasticbeanstalk:environment:proxy"]["ProxyServer"] != "none" {
		t.Errorf("option settings %v: the health check on /readyz of port 80, no proxy", cfg.OptionSettings)
	}
}
