package stack

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Secret returns the stack's secret name: the environment variable env when set, else the
// one kept in <state>/<name>, made (24 random bytes, in hex, mode 0600) when there is none.
// Processes that ask at the same time get the same secret: the file appears whole or not at
// all (written aside, then linked into place, which fails if another got there first).
func Secret(state, name, env string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	path := filepath.Join(state, name)
	if s, err := readSecret(path); err == nil {
		return s, nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	tmp, err := os.CreateTemp(state, "."+name+"-*")
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(hex.EncodeToString(buf))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o600)
	}
	if werr != nil {
		return "", fmt.Errorf("%s: %w", name, werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return readSecret(path) // ours, or the one another process linked first
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// AdminToken is the stack's admin token (SHOP_ADMIN_TOKEN, else <state>/admin-token).
func AdminToken(state string) (string, error) {
	return Secret(state, "admin-token", "SHOP_ADMIN_TOKEN")
}

// RequestKey is the stack's key of checkout request hashes (SHOP_REQUEST_KEY, else
// <state>/request-key): the orders context keeps an HMAC of each request, not a hash anyone
// could match against card numbers.
func RequestKey(state string) (string, error) {
	return Secret(state, "request-key", "SHOP_REQUEST_KEY")
}
