package natsauth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Admin is the user of the stack's own tools (mitosis events, the load test's checks, the
// tests' reads of a context's records): every permission, as a database's owner has.
const Admin = "admin"

// Folder is where Setup writes the server's users, under the stack's PKI folder.
const Folder = "nats"

// Creds are a stack's NATS users.
type Creds struct {
	Dir string // holds File, for the stack's NATS servers (mounted read-only)
	// File is the users file's name, users-<digest>.json: a NATS server reads its users when
	// it starts, so other users are another file, hence another spec, and a restarted NATS.
	File string
	Auth map[string]*url.Userinfo // by user: its name and password, for topology.NATSURL
}

// Setup makes the NATS users of the processes of t (one per group, named as its process:
// UserOf) and the admin, their passwords made once and kept in pki (mode 0600, like the
// certificates beside them), and writes the server's users file into <pki>/nats.
func Setup(pki string, t topology.Topology) (Creds, error) {
	c := Creds{Dir: filepath.Join(pki, Folder), Auth: map[string]*url.Userinfo{}}
	passwords, err := Passwords(pki, Users(t))
	if err != nil {
		return Creds{}, err
	}
	users, err := ServerUsers(Users(t), func(id string) string { return passwords[id] })
	if err != nil {
		return Creds{}, err
	}
	for _, id := range Users(t) {
		c.Auth[id] = url.UserPassword(id, passwords[id])
	}
	b, err := json.MarshalIndent(users, "", "  ")
	if err != nil {
		return Creds{}, err
	}
	sum := sha256.Sum256(b)
	c.File = "users-" + hex.EncodeToString(sum[:6]) + ".json"
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return Creds{}, err
	}
	tmp := filepath.Join(c.Dir, "."+c.File)
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return Creds{}, err
	}
	if st, err := os.Stat(c.Dir); err == nil {
		if uid, gid, ok := owner(st); ok {
			_ = os.Chown(tmp, uid, gid) // as the folder: a container's user reads it
		}
	}
	if err := os.Rename(tmp, filepath.Join(c.Dir, c.File)); err != nil {
		return Creds{}, err
	}
	return c, nil
}

// Users are the NATS users of t: one per group its architectures run (UserOf), sorted, then
// the admin.
func Users(t topology.Topology) []string {
	var names []string
	for _, a := range t.AllArchs() {
		for _, s := range a.Services {
			if n := UserOf(s); n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return append(names, Admin)
}

// Route is the user the nodes of a NATS cluster present to each other on their routes (the
// production overlay's): not a client, so in no users file, but its password is kept with
// the others and goes into the same Kubernetes Secret (deploy/README.md).
const Route = "route"

// Passwords are the passwords of users, by user, each made once and kept in pki as
// nats-<user> (mode 0600): Setup's, and what a cluster's Secret holds (mitosis certs
// nats-users).
func Passwords(pki string, users []string) (map[string]string, error) {
	out := make(map[string]string, len(users))
	for _, id := range users {
		pw, err := stack.Secret(pki, "nats-"+id, "")
		if err != nil {
			return nil, fmt.Errorf("NATS user %s: %w", id, err)
		}
		out[id] = pw
	}
	return out, nil
}

// PasswordEnv is the environment variable a NATS server's configuration reads user's
// password from ($NATS_PASSWORD_<USER>, '-' as '_'): the rendered deploy files fill it from
// the platform's secrets, so the files hold no password.
func PasswordEnv(user string) string {
	return "NATS_PASSWORD_" + strings.ToUpper(strings.ReplaceAll(user, "-", "_"))
}

// UserOf is the NATS user of a service's processes: its group's process name
// (bounded.Group.Name, as its identity), "" for a service that runs no group (NATS itself).
func UserOf(s topology.Service) string {
	if s.Group == "" {
		return ""
	}
	g, err := bounded.ParseGroup(s.Group)
	if err != nil {
		return ""
	}
	return g.Name()
}

// Resolve fills the NATS parts of r for service s: its user in its URL, or the users file
// for the NATS server, in dir (Dir as its process sees it).
//
// Users come with TLS: the runtimes make them for a secure up only, whose NATS has its
// identity (topology.Service.Identity), so the services' URLs are tls://.
func (c Creds) Resolve(r *topology.Resolver, s topology.Service, dir string) {
	r.NATSUser = c.Auth[UserOf(s)]
	r.NATSTLS = c.Dir != ""
	if _, ok := s.Env[topology.NATSUsersEnv]; ok && c.Dir != "" {
		r.NATSUsers = dir + "/" + c.File
	}
}

// Path is the users file on this machine; "" when there are no users.
func (c Creds) Path() string {
	if c.Dir == "" {
		return ""
	}
	return filepath.Join(c.Dir, c.File)
}

// ReadUsers reads a users file Setup wrote, as the stack's nats-server does
// (platform/cmd/nats-server -users).
func ReadUsers(path string) ([]*server.User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var users []*server.User
	if err := json.Unmarshal(b, &users); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return users, nil
}

// AdminURL is the URL of the stack's NATS at addr (host:port) with the admin's credentials
// kept in pki; nats://addr when pki holds none (a stack up insecure, or made before users).
// Its scheme is nats:// either way: AdminTLS gives the connection TLS where the server asks.
func AdminURL(pki, addr string) (string, error) {
	b, err := os.ReadFile(filepath.Join(pki, "nats-"+Admin))
	switch {
	case errors.Is(err, fs.ErrNotExist) || pki == "":
		return topology.NATSURL(false, nil, addr), nil
	case err != nil:
		return "", err
	}
	return topology.NATSURL(false, url.UserPassword(Admin, string(trim(b))), addr), nil
}

// AdminTLS is the TLS a tool of the stack whose PKI folder is pki uses with its NATS: the
// tools' certificate (identity.Tooling) presented, and only the stack's NATS server accepted.
// It is used when the server asks for TLS, as a secure stack's does; a stack up insecure
// (or without a PKI folder yet) gets a plain connection, as before.
func AdminTLS(pki string) (nats.Option, error) {
	dir := filepath.Join(pki, identity.Tooling)
	if _, err := os.Stat(filepath.Join(dir, "cert.pem")); pki == "" || errors.Is(err, fs.ErrNotExist) {
		return func(*nats.Options) error { return nil }, nil
	}
	src, err := identity.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("the tools' identity: %w", err)
	}
	return func(o *nats.Options) error {
		o.TLSConfig = src.ClientConfig(identity.Is(identity.NATS))
		return nil
	}, nil
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
