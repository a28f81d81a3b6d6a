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
	if err := json.Unmarshal([]byte(urlsOut), &urls); err != nil || urls["cart"] != "tls://cart:"+secret.StringData["cart"]+"@nats:4222" {
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

// certs aws-secret prints an identity of the stack's CA as the secret an ECS task reads:
// the loader takes it as the task's variables, for the identity named, trusting the stack's
// CA; --list names every identity of the shipped ECS files, and a bad name is a usage error.
func TestCertsAWSSecret(t *testing.T) {
	root, state := repoRoot(t), t.TempDir()
	code, out, errOut := runCLI(t, "certs", "aws-secret", "cart", "--root", root, "--state", state, "--stack", "hnd")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var secret map[string]string
	if err := json.Unmarshal([]byte(out), &secret); err != nil || len(secret) != len(manifests.TLSSecretKeys) {
		t.Fatalf("%v: %s", err, out)
	}
	env := identity.EnvFor("SHOP_TLS_DIR")
	vars := map[string]string{}
	for i, k := range manifests.TLSSecretKeys {
		vars[env.PEMVars()[i]] = secret[k]
	}
	src, err := env.Open(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got := src.ID(); got != (identity.ID{Stack: "hnd", Service: "cart"}) {
		t.Errorf("identity %v", got)
	}
	ca, err := identity.OpenCA(stack.PKIDir(state, "hnd"), "hnd")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := src.Leaf()
	if err != nil || leaf.CheckSignatureFrom(ca.Certificate()) != nil || secret["ca"] != string(ca.Bundle()) {
		t.Errorf("not issued by the stack's CA, or another bundle (%v)", err)
	}

	_, listOut, _ := runCLI(t, "certs", "aws-secret", "--list", "--root", root, "--state", state, "--stack", "hnd")
	shipped, err := manifests.Shipped(filepath.Join(root, "topologies"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Fields(listOut), shipped.Identities(); strings.Join(got, " ") != strings.Join(want, " ") || len(want) == 0 {
		t.Errorf("--list %v, want %v", got, want)
	}
	for _, args := range [][]string{{"Cart"}, {}} {
		if code, _, _ := runCLI(t, append(append([]string{"certs", "aws-secret"}, args...), "--root", root, "--state", state)...); code != exitUsage {
			t.Errorf("aws-secret %v: exit %d, want a usage error", args, code)
		}
	}
}
