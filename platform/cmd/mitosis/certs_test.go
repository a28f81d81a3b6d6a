package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/identity/identitytest"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
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
// compose's bind mounts can read them, and the CA and the tools' folder too, which the
// compose files' renewer renews as that user. certs rotate then trusts both CAs, issues
// every identity anew from the new one, and keeps every file that user's, the previous
// CA's too: the renewer still reads the whole CA.
func TestCertsIssueForContainersAndRotate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another user needs root")
	}
	root, state := repoRoot(t), t.TempDir()
	common := []string{"--root", root, "--state", state, "--stack", "hnd"}
	if code, _, errOut := runCLI(t, append([]string{"certs", "issue", "-t", "services", "--for-containers"}, common...)...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	pki := stack.PKIDir(state, "hnd")
	owned := func(when string, files ...string) {
		t.Helper()
		for _, f := range files {
			st, err := os.Stat(filepath.Join(pki, f))
			if err != nil {
				t.Fatal(err)
			}
			if uid := st.Sys().(*syscall.Stat_t).Uid; uid != imagebuild.UID {
				t.Errorf("%s: %s belongs to %d, want the images' user %d", when, f, uid, imagebuild.UID)
			}
		}
	}
	keys := []string{identity.CAKeyFile, identity.CAFile, filepath.Join("cart", identity.KeyFile),
		filepath.Join(identity.NATS, identity.KeyFile), filepath.Join(identity.Tooling, identity.KeyFile)}
	owned("issued", keys...)
	old, err := identity.LoadCA(pki, "hnd")
	if err != nil {
		t.Fatal(err)
	}

	if code, out, errOut := runCLI(t, append([]string{"certs", "rotate"}, common...)...); code != exitOK || !strings.Contains(out, "new CA") {
		t.Fatalf("rotate: exit %d: %s%s", code, out, errOut)
	}
	owned("rotated", append(keys, identity.PreviousCAFile, filepath.Join("cart", identity.CAFile), filepath.Join("cart", identity.CertFile))...)
	ca, err := identity.LoadCA(pki, "hnd")
	if err != nil {
		t.Fatal(err)
	}
	if ca.Certificate().Equal(old.Certificate()) {
		t.Fatal("rotate kept the CA")
	}
	if err := identitytest.Leaf(t, filepath.Join(pki, "cart")).CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Errorf("cart's certificate after rotate: %v, want one of the new CA", err)
	}
	bundle, err := os.ReadFile(filepath.Join(pki, "cart", identity.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(bundle), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("cart's bundle holds %d CAs after rotate, want the new and the previous", n)
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

// serverSerial is the serial of the certificate the server at addr presents to a client
// with the tools' certificate of the PKI folder pki.
func serverSerial(t *testing.T, pki, addr string) string {
	t.Helper()
	src, err := identity.Load(filepath.Join(pki, identity.Tooling))
	if err != nil {
		t.Fatal(err)
	}
	cfg := src.ClientConfig(nil)
	cfg.NextProtos = []string{"h2"} // a gRPC server wants HTTP/2
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer c.Close()
	return fmt.Sprintf("%x", c.ConnectionState().PeerCertificates[0].SerialNumber)
}

// A stack left running while its certificates age: status says when they expire, warns
// once one is overdue for renewal ("run mitosis up to renew"), and an up with nothing else
// changed renews it in place: the same processes (their PIDs) present the renewed
// certificate on their next connection, and status has nothing more to warn of. With no up
// at all, the stack's renewer renews it in place as well.
func TestUpRenewsCertificatesInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds images and runs a stack of processes")
	}
	state, name := t.TempDir(), stacktest.StackName(t)
	pki := stack.PKIDir(state, name)
	common := []string{"--runtime", "process", "--root", repoRoot(t), "--state", state, "--stack", name,
		"--split", strings.Join(bounded.Names(), "+"), "--edges", topology.SplitName + "=" + stacktest.AnyPort, "--collector-edge", "none"}
	t.Cleanup(func() { runBinary(context.Background(), t, append([]string{"down", "--volumes"}, common...)...) })
	up := func() {
		t.Helper()
		if code, out, errOut := runBinary(t.Context(), t, append([]string{"up"}, common...)...); code != exitOK {
			t.Fatalf("up: exit %d\n%s\n%s", code, out, errOut)
		}
	}
	status := func() string {
		t.Helper()
		code, out, errOut := runBinary(t.Context(), t, append([]string{"status"}, common...)...)
		if code != exitOK {
			t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
		}
		return out
	}
	up()
	before := statusRows(t, common)
	g, err := bounded.ParseGroup(strings.Join(bounded.Names(), "+"))
	if err != nil {
		t.Fatal(err)
	}
	id := g.Name()
	var group stack.Status // the process serving every context's gRPC, its probe's address
	for _, r := range before {
		if r.TLSDir != "" && filepath.Base(r.TLSDir) == id {
			group = r
		}
	}
	if group.Addr == "" {
		t.Fatalf("no process of the split serves gRPC as %s: %+v", id, before)
	}
	if out := status(); !strings.Contains(out, "certificates: ") || strings.Contains(out, "WARNING: certificates") {
		t.Errorf("status of a stack just up:\n%s", out)
	}

	// Aged: the group's certificate replaced by one past half its life (a minute long, and
	// backdated), as a week-old stack's would be. (The renewer, which would renew it within
	// the hour, is not due before the test ends.)
	ca, err := identity.OpenCA(pki, name)
	if err != nil {
		t.Fatal(err)
	}
	aged := identitytest.Age(t, ca, id)
	if got := serverSerial(t, pki, group.Addr); got != aged {
		t.Errorf("the running process presents %s, its files hold %s", got, aged)
	}
	if out := status(); !strings.Contains(out, "WARNING: certificates overdue for renewal: "+id) || !strings.Contains(out, "run mitosis up to renew") {
		t.Errorf("status with a certificate overdue for renewal:\n%s", out)
	}

	up()
	renewed := identitytest.Leaf(t, group.TLSDir)
	if serial := fmt.Sprintf("%x", renewed.SerialNumber); serial == aged || time.Until(renewed.NotAfter) < identity.LeafLifetime-time.Hour {
		t.Errorf("up kept the aged certificate, or made one that expires at %v", renewed.NotAfter)
	}
	after := statusRows(t, common)
	if len(after) != len(before) {
		t.Fatalf("%d processes after the renewing up, %d before", len(after), len(before))
	}
	pids := map[string]int{}
	for _, r := range before {
		pids[r.Name] = r.PID
	}
	for _, r := range after {
		if r.PID == 0 || r.PID != pids[r.Name] {
			t.Errorf("%s: pid %d after the renewing up, %d before: it was restarted", r.Name, r.PID, pids[r.Name])
		}
	}
	if got, want := serverSerial(t, pki, group.Addr), fmt.Sprintf("%x", renewed.SerialNumber); got != want {
		t.Errorf("after up, the running process presents %s, want the renewed %s", got, want)
	}
	if out := status(); strings.Contains(out, "WARNING") || !strings.Contains(out, "certificates: ") {
		t.Errorf("status after the renewing up:\n%s", out)
	}

	// Aged again with no up to come: the stack's renewer renews it in place, at its next
	// pass (hourly; a SIGHUP makes it look now), and the same process presents it.
	aged = identitytest.Age(t, ca, id)
	i := slices.IndexFunc(after, func(r stack.Status) bool { return r.Arch == topology.Renewer && r.Service == topology.RenewerService })
	if i < 0 || after[i].PID <= 0 || after[i].Health != stack.Ready {
		t.Fatalf("no renewer running and ready: %+v", after)
	}
	if err := syscall.Kill(after[i].PID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for serial := aged; serial == aged; serial = fmt.Sprintf("%x", identitytest.Leaf(t, group.TLSDir).SerialNumber) {
		if time.Now().After(deadline) {
			t.Fatalf("the renewer did not renew %s within 30 s of its SIGHUP", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	byRenewer := identitytest.Leaf(t, group.TLSDir)
	if got, want := serverSerial(t, pki, group.Addr), fmt.Sprintf("%x", byRenewer.SerialNumber); got != want || time.Until(byRenewer.NotAfter) < identity.LeafLifetime-time.Hour {
		t.Errorf("after the renewer, the running process presents %s, want the renewed %s (expiring %v)", got, want, byRenewer.NotAfter)
	}
	for _, r := range statusRows(t, common) {
		if r.PID != pids[r.Name] {
			t.Errorf("%s: pid %d after the renewer's pass, %d before", r.Name, r.PID, pids[r.Name])
		}
	}
}

// What status says of a stack's certificates at points of their life: when the first
// expires, also once one is past half its life and due (the renewer's next pass renews it);
// a warning to run up once one is overdue (the renewer should have renewed it); louder once
// one expired.
func TestCertificatesLine(t *testing.T) {
	pki := t.TempDir()
	ca, err := identity.OpenCA(pki, "hc-life")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := ca.EnsureAll([]string{"cart", "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	list := []string{dirs["cart"], dirs["gateway"]}
	now := time.Now()
	for _, tc := range []struct {
		at   time.Time
		warn bool
		want string
	}{
		{now, false, "certificates: 2 identities, the first expires at "},
		{now.Add(identity.LeafLifetime/2 + identity.RenewEvery/2), false, "certificates: 2 identities, the first expires at "},
		{now.Add(identity.LeafLifetime/2 + identity.RenewEvery), true, "WARNING: certificates overdue for renewal: cart, gateway; the first expires at "},
		{now.Add(identity.LeafLifetime + time.Hour), true, "WARNING: certificates EXPIRED: cart, gateway (the first at "},
	} {
		lines, warn := certificates(list, tc.at)
		if len(lines) != 1 || warn != tc.warn || !strings.HasPrefix(lines[0], tc.want) {
			t.Errorf("at %v: %q (warn %v), want a line starting %q", tc.at, lines, warn, tc.want)
		}
		if tc.warn && !strings.Contains(lines[0], "run mitosis up to renew") {
			t.Errorf("at %v: %q does not say what to do", tc.at, lines[0])
		}
	}
	if lines, warn := certificates(nil, now); lines != nil || warn {
		t.Errorf("no folder (nothing up, or insecure): %q", lines)
	}
	if err := os.WriteFile(filepath.Join(dirs["cart"], identity.CertFile), []byte("-----BEGIN CERT"), 0o600); err != nil {
		t.Fatal(err)
	}
	if lines, warn := certificates(list, now); !warn || len(lines) != 2 || !strings.Contains(lines[0], dirs["cart"]) {
		t.Errorf("an unreadable certificate: %q", lines)
	}
}
