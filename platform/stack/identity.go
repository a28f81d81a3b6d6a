package stack

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// PKIDir is where the CA of the stack name is kept in the state folder state.
func PKIDir(state, name string) string { return filepath.Join(state, "pki", name) }

// ErrNoPKI is returned by Identities for an up given neither a PKI folder nor Insecure.
var ErrNoPKI = errors.New("no PKI folder for the stack's identities (UpOptions.PKI), and not told to run insecure")

// Identities makes sure every identity the topology's services need (Topology.Identities),
// and the tools' (identity.Tooling), has a certificate of the stack's CA in opts.PKI (the CA
// made there on first use, reused after), and returns their folders by identity. A
// certificate past half its life is renewed; processes read it again without a restart.
// Nothing for an insecure up.
//
// owner, when not nil, is the user and group the services' folders are given to (a
// container's user); the tools' stay the caller's, unless t has a renewer: it renews every
// identity of the folder as that user, so the CA's files and every identity's folder (the
// tools', another topology's) are given to it too (the caller, root or the user
// namespace's owner, still reads them).
func Identities(name string, t topology.Topology, opts UpOptions, owner *[2]int) (map[string]string, error) {
	if opts.Insecure {
		return map[string]string{}, nil
	}
	if opts.PKI == "" {
		return nil, ErrNoPKI
	}
	var dirs map[string]string
	err := identity.Locked(opts.PKI, func() error {
		ca, err := identity.OpenCA(opts.PKI, name)
		if err != nil {
			return err
		}
		if dirs, err = ca.EnsureAll(append(t.Identities(), identity.Tooling)); err != nil {
			return err
		}
		if owner == nil {
			return nil
		}
		ids := t.Identities()
		if t.Renewer != nil {
			if err := ca.ChownCA(owner[0], owner[1]); err != nil {
				return err
			}
			// Every identity of the folder, another topology's too: the renewer renews
			// them all (identity.CA.EnsureFound).
			if ids, err = identity.Found(opts.PKI); err != nil {
				return err
			}
		}
		for _, id := range ids {
			if err := ca.Chown(id, owner[0], owner[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", name, err)
	}
	return dirs, nil
}

// SecurityEnv is what an up adds to the environment of a service that serves or calls gRPC:
// SHOP_INSECURE=true when asked, else nothing (its identity folder is the {{tls}}
// placeholder's).
func SecurityEnv(opts UpOptions) map[string]string {
	if opts.Insecure {
		return map[string]string{topology.InsecureEnv: "true"}
	}
	return nil
}

// Archs is what a local runtime runs of t, in order: t.AllArchs(), but the renewer's when the
// up is insecure: there are no certificates to renew.
func Archs(t topology.Topology, opts UpOptions) []topology.Arch {
	return slices.DeleteFunc(t.AllArchs(), func(a topology.Arch) bool { return opts.Insecure && a.Name == topology.Renewer })
}
