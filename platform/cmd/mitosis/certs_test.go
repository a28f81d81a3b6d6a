package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
)

// certs nats-users prints the Secret the Kubernetes overlays read, with a key for every user
// the rendered base names and the production routes' user, each the password kept in the
// stack's PKI folder (the same across calls); and the same passwords as compose's env file
// and Secrets Manager's JSON.
func TestCertsNATSUsers(t *testing.T) {
	root, state := repoRoot(t), t.TempDir()
	code, out, errOut := runCLI(t, "certs", "nats-users", "--root", root, "--state", state, "--stack", "hnd")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var secret struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Type       string `json:"type"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		StringData map[string]string `json:"stringData"`
	}
	if err := yaml.UnmarshalStrict([]byte(out), &secret); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if secret.APIVersion != "v1" || secret.Kind != "Secret" || secret.Metadata.Name != manifests.NATSUsersSecret {
		t.Errorf("a %s named %s", secret.Kind, secret.Metadata.Name)
	}
	shipped, err := manifests.Shipped(filepath.Join(root, "topologies"))
	if err != nil {
		t.Fatal(err)
	}
	users := append(natsauth.Users(shipped), natsauth.Route)
	pki := stack.PKIDir(state, "hnd")
	for _, u := range users {
		b, err := os.ReadFile(filepath.Join(pki, "nats-"+u))
		if err != nil || secret.StringData[u] == "" || secret.StringData[u] != string(b) {
			t.Errorf("key %s: %q, kept %q (%v)", u, secret.StringData[u], b, err)
		}
	}
	if len(secret.StringData) != len(users) {
		t.Errorf("%d keys, want %d", len(secret.StringData), len(users))
	}
	_, envOut, _ := runCLI(t, "certs", "nats-users", "--format", "env", "--root", root, "--state", state, "--stack", "hnd")
	for _, u := range users {
		if line := natsauth.PasswordEnv(u) + "=" + secret.StringData[u] + "\n"; !strings.Contains(envOut, line) {
			t.Errorf("env lacks %q", line)
		}
	}
	_, jsonOut, _ := runCLI(t, "certs", "nats-users", "--format", "json", "--root", root, "--state", state, "--stack", "hnd")
	var byUser map[string]string
	if err := json.Unmarshal([]byte(jsonOut), &byUser); err != nil || len(byUser) != len(users) || byUser["cart"] != secret.StringData["cart"] {
		t.Errorf("json %v (%v)", byUser, err)
	}
	_, urlsOut, _ := runCLI(t, "certs", "nats-users", "--format", "ecs-urls", "--root", root, "--state", state, "--stack", "hnd")
	var urls map[string]string
	if err := json.Unmarshal([]byte(urlsOut), &urls); err != nil || urls["cart"] != "nats://cart:"+secret.StringData["cart"]+"@nats:4222" {
		t.Errorf("ecs-urls %v (%v)", urls, err)
	}
	if code, _, _ := runCLI(t, "certs", "nats-users", "--format", "xml", "--root", root, "--state", state); code != exitUsage {
		t.Errorf("--format xml: exit %d", code)
	}
}

// certs issue --for-containers gives the services' folders to the images' user, so that
// compose's bind mounts can read them; the tools' stays the caller's.
func TestCertsIssueForContainers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another user needs root")
	}
	root, state := repoRoot(t), t.TempDir()
	if code, _, errOut := runCLI(t, "certs", "issue", "-t", "services", "--for-containers", "--root", root, "--state", state, "--stack", "hnd"); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	pki := stack.PKIDir(state, "hnd")
	for id, want := range map[string]uint32{"cart": imagebuild.UID, identity.NATS: imagebuild.UID, identity.Tooling: 0} {
		st, err := os.Stat(filepath.Join(pki, id, identity.KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != want {
			t.Errorf("%s's key belongs to %d, want %d", id, uid, want)
		}
	}
}
