package identity

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile, in a PKI folder, is what its writers take turns on.
const lockFile = ".lock"

// Locked runs fn while it holds the lock of the PKI folder dir (made if missing): the writers
// of a stack's identities (an up, the stack's renewer, a rotation) take turns, for two
// renewing one identity at once could leave the key of one beside the certificate of the
// other. The lock is flock(2) on a file of the folder, so a renewer in a container that
// mounts the folder takes the same lock as the CLI on the host.
func Locked(dir string, fn func() error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("PKI folder: %w", err)
	}
	// Read-only is enough to flock, and lets a container's user lock a file the host's made.
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("PKI folder lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("PKI folder lock: %w", err)
	}
	return fn() // the deferred close unlocks

}
