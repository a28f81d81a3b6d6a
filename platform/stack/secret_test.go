package stack_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// Many callers at once, as parallel `mitosis` commands are, all get one secret, kept 0600.
func TestSecretIsMadeOnceForConcurrentCallers(t *testing.T) {
	t.Setenv("TEST_SECRET", "")
	state := filepath.Join(t.TempDir(), "state")
	const n = 16
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = stack.Secret(state, "token", "TEST_SECRET") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] || len(got[0]) != 48 {
			t.Fatalf("caller %d: %q, %v; caller 0: %q", i, got[i], errs[i], got[0])
		}
	}
	fi, err := os.Stat(filepath.Join(state, "token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", fi, err)
	}
	entries, _ := os.ReadDir(state)
	if len(entries) != 1 {
		t.Errorf("state holds %d files, want the secret alone", len(entries))
	}
	t.Setenv("TEST_SECRET", "from-env")
	if s, err := stack.Secret(state, "token", "TEST_SECRET"); s != "from-env" || err != nil {
		t.Errorf("with the variable set: %q, %v", s, err)
	}
}
