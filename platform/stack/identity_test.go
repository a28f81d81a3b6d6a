package stack_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Identities given to a container's user give it the CA and every identity of the folder
// too when the topology runs a renewer (which renews every identity as that user), and only
// then: the CA's key goes to no one who does not need it.
func TestIdentitiesGiveTheCAOnlyToARenewer(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	const uid = 65532
	for _, renewer := range []bool{true, false} {
		topo, err := topology.Get(topology.Monolith, topology.Options{Collector: topology.NoCollector, NoRenewer: !renewer})
		if err != nil {
			t.Fatal(err)
		}
		pki := t.TempDir()
		// Another topology's identity, made before by the caller (certs issue -t hybrid).
		ca, err := identity.OpenCA(pki, "st-ids")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Ensure("cart-orders"); err != nil {
			t.Fatal(err)
		}
		if _, err := stack.Identities("st-ids", topo, stack.UpOptions{PKI: pki}, &[2]int{uid, uid}); err != nil {
			t.Fatal(err)
		}
		owner := func(path string) int {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			return int(st.Sys().(*syscall.Stat_t).Uid)
		}
		for _, id := range topo.Identities() {
			if got := owner(filepath.Join(pki, id, identity.KeyFile)); got != uid {
				t.Errorf("renewer %v: %s's key is user %d's, want %d", renewer, id, got, uid)
			}
		}
		want := os.Getuid()
		if renewer {
			want = uid
		}
		for _, p := range []string{filepath.Join(pki, identity.CAKeyFile), filepath.Join(pki, identity.Tooling, identity.KeyFile),
			filepath.Join(pki, "cart-orders", identity.KeyFile)} {
			if got := owner(p); got != want {
				t.Errorf("renewer %v: %s is user %d's, want %d", renewer, p, got, want)
			}
		}
	}
}
