package deploytest_test

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/kube"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
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
	needPodman(t)
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("REQUIRE_CONTAINERS") == "1" {
			t.Fatal("docker-compose is missing (apt-get install --no-install-recommends docker-compose); REQUIRE_CONTAINERS=1")
		}
		t.Skip("docker-compose not installed (apt-get install --no-install-recommends docker-compose)")
	}
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
	compose := func(args ...string) (string, error) {
		cmd := exec.Command(dc, append([]string{"-f", filepath.Join(dir, "docker-compose.yml"), "-p", project}, args...)...)
		// compose interpolates from its environment as from the .env Beanstalk writes; the
		// environment carries PEM's line breaks, whatever a .env's quoting.
		cmd.Env = append(append(os.Environ(), envFile...), "DOCKER_HOST="+podmanrt.Socket())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	labels := map[string][]string{"com.docker.compose.project": {project}}
	downed := false
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := compose("logs", "--no-color", "--tail", "40")
			t.Logf("compose logs:\n%s", out)
		}
		if !downed {
			if out, err := compose("down", "-v", "--remove-orphans"); err != nil {
				t.Errorf("compose down: %v\n%s", err, out)
			}
		}
		if err := kube.Untag(context.Background(), env.conn, names, opts.Registry(), tag); err != nil {
			t.Error(err)
		}
		if left := leftovers(t, project, labels); len(left) > 0 {
			t.Errorf("compose down left %v", left)
		}
	})
	start := time.Now()
	if out, err := compose("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	t.Logf("compose up: %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	_, _ = checkout(t, "http://"+edge, token)
	t.Logf("checkout: shipped in %s", time.Since(start).Round(time.Millisecond))
	out, err := compose("down", "-v", "--remove-orphans")
	downed = true
	if err != nil {
		t.Fatalf("compose down: %v\n%s", err, out)
	}
}
