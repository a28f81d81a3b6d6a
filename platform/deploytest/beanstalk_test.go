package deploytest_test

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/kube"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// TestBeanstalkBundle brings the Beanstalk bundle up as the platform does, with
// docker-compose against Podman's Docker-compatible socket, every variable it requires
// taken from a Secrets Manager of this test through the environment secrets its
// .ebextensions/mitosis.config names (identities issued by a CA of the run), checks out, and
// takes it down. The bundle is rendered for the run's image tag; its one change is the edge's
// port, published on 127.0.0.1 at a free port instead of the instance's port 80. So the
// monolith starts secure with its identity from PEM variables and reaches its NATS over TLS
// as its own user, or the checkout fails.
func TestBeanstalkBundle(t *testing.T) {
	dc := needCompose(t)
	prefix := cmp.Or(os.Getenv("MITOSIS_TEST_STACK_PREFIX"), "mitosis-") + "beanstalk-test-"
	project := runID(prefix)
	tag := strings.TrimPrefix(project, prefix)
	opts := manifests.Options{Tag: tag}
	topo, err := manifests.Shipped(filepath.Join(env.root, "topologies"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := manifests.Files(topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	edge := stacktest.FreeAddr(t)
	for _, name := range []string{"docker-compose.yml", ".ebextensions/mitosis.config"} {
		b := files["deploy/beanstalk/"+name]
		if name == "docker-compose.yml" {
			published := "- " + edge + ":8080"
			if n := strings.Count(string(b), "- 80:8080"); n != 1 {
				t.Fatalf("the bundle publishes the edge %d times on the instance's port 80", n)
			}
			b = []byte(strings.Replace(string(b), "- 80:8080", published, 1))
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cfg struct {
		OptionSettings map[string]map[string]string `json:"option_settings"`
	}
	if err := yaml.UnmarshalStrict(files["deploy/beanstalk/.ebextensions/mitosis.config"], &cfg); err != nil {
		t.Fatal(err)
	}
	secrets := cfg.OptionSettings["aws:elasticbeanstalk:application:environmentsecrets"]
	if len(secrets) == 0 {
		t.Fatal("the bundle names no environment secret")
	}

	// Secrets Manager as the README's steps fill it.
	token := apitest.NewID("beanstalk-token")
	ca, err := identity.OpenCA(t.TempDir(), project)
	if err != nil {
		t.Fatal(err)
	}
	sm := map[string]string{"mitosis/admin-token": token, "mitosis/request-key": token + "-request-key"}
	users := map[string]string{}
	for _, id := range topo.Identities() {
		certPEM, keyPEM, err := ca.Issue(id, identity.LeafLifetime)
		if err != nil {
			t.Fatal(err)
		}
		b, err := manifests.AWSTLSSecretString(certPEM, keyPEM, ca.Bundle())
		if err != nil {
			t.Fatal(err)
		}
		sm[manifests.AWSTLSSecret(id)] = string(b)
	}
	for _, u := range []string{"monolith", "admin"} {
		users[u] = apitest.NewID("pw")
	}
	b, err := json.Marshal(users)
	if err != nil {
		t.Fatal(err)
	}
	sm[manifests.AWSNATSUsersSecret] = string(b)
	// What Beanstalk writes into .env: each environment secret's value, <arn>[:<json key>].
	var envFile []string
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		_, ref, ok := strings.Cut(secrets[name], ":secret:")
		if !ok {
			t.Fatalf("%s from %s: no secret", name, secrets[name])
		}
		secret, key, _ := strings.Cut(ref, ":")
		v, ok := sm[secret]
		if !ok {
			t.Fatalf("%s: no secret %s", name, secret)
		}
		if key != "" {
			var byKey map[string]string
			if err := json.Unmarshal([]byte(v), &byKey); err != nil {
				t.Fatalf("%s: %v", secret, err)
			}
			if v, ok = byKey[key]; !ok {
				t.Fatalf("%s: secret %s has no key %s", name, secret, key)
			}
		}
		envFile = append(envFile, name+"="+v)
	}

	names := slices.Collect(maps.Keys(env.images))
	ctx := context.Background()
	if _, err := kube.TagAs(ctx, env.conn, env.images, opts.Registry(), tag); err != nil {
		t.Fatal(err)
	}
	composeCheckout(t, dc, []string{"-f", filepath.Join(dir, "docker-compose.yml"), "-p", project}, envFile, project, "http://"+edge, token,
		func() error { return kube.Untag(context.Background(), env.conn, names, opts.Registry(), tag) }, nil)
}
