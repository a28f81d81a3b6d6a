package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// insecureWarning is what up --insecure prints before anything runs.
const insecureWarning = `WARNING: --insecure: gRPC between the services runs in PLAINTEXT and ANY caller may call ANY
method (no mutual TLS, no authorization); NATS runs in PLAINTEXT and lets ANYONE in (no users).
Use this only to measure what security costs.`

// pki is the folder of the stack's CA and identities.
func (a *app) pki() string { return stack.PKIDir(a.state, a.stack) }

func (a *app) certsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Show or rotate the stack's workload identities (mutual TLS between the services)",
		Long: `Every service of a stack that serves or calls gRPC has a certificate naming it
spiffe://mitosis/<stack>/<service>, issued by the stack's own CA and kept in
<state>/pki/<stack> (one folder per identity: cert.pem, key.pem, ca.pem; every file mode
0600). up makes the CA once and reuses it, and renews a certificate once half of its week
is gone; so does, while the stack runs, its renewer (the service pki/renewer, which looks
every hour and at once on SIGHUP). The services read renewed files without a restart. The
folder tooling holds the certificate of people's tools: it may ask health and reflection,
nothing of the shop, e.g.

  P=<state>/pki/<stack>/tooling
  grpcurl -cacert $P/ca.pem -cert $P/cert.pem -key $P/key.pem \
    -servername catalog 127.0.0.1:9101 list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.showCerts() },
	}
	var forContainers bool
	issue := &cobra.Command{
		Use:   "issue",
		Short: "Make (or renew) the identities of the topology's services without running them",
		Long: `issue does what up does to the stack's identities, for the topology -t names (or
--split), without running anything: the CA made once, every service that serves or calls
gRPC and the tools given a certificate, renewed once half of its week is gone. Their
folders are what a Kubernetes Secret per service holds (deploy/README.md); with
--for-containers, the services' folders are given to the images' user (65532), so that
compose can mount them (MITOSIS_PKI=<state>/pki/<stack>), and so are the CA's files and
the tools' folder, which the compose files' renewer renews as that user.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := a.topology()
			if err != nil {
				return err
			}
			var owner *[2]int
			if forContainers {
				owner = &[2]int{imagebuild.UID, imagebuild.UID}
			}
			dirs, err := stack.Identities(a.stack, t, stack.UpOptions{PKI: a.pki()}, owner)
			if err != nil {
				return err
			}
			for _, name := range slices.Sorted(maps.Keys(dirs)) {
				a.say("%s\t%s", identity.ID{Stack: a.stack, Service: name}, dirs[name])
			}
			return nil
		},
	}
	issue.Flags().BoolVar(&forContainers, "for-containers", false, "give the identities and the CA to the images' user (compose's bind mounts and renewer)")
	cmd.AddCommand(issue)
	var format string
	natsUsers := &cobra.Command{
		Use:   "nats-users",
		Short: "Print the NATS users' passwords of the deploy files, as a Kubernetes Secret, an env file or JSON",
		Long: `nats-users prints the passwords of the NATS users of the deploy files (deploy/, compose/:
one per process of every topology of topologies/, the admin, and the route user of the
production cluster's routes), made once and kept in <state>/pki/<stack>/nats-<user> as up
keeps them. The files hold no password; each platform reads them from where this puts them:

  --format k8s   the Secret mitosis-nats-users, one key per user:
                 mitosis certs nats-users | kubectl -n mitosis apply -f -
  --format env   NATS_PASSWORD_<USER>=... lines, for compose's --env-file (and Beanstalk's,
                 Lambda's envsubst):
                 mitosis certs nats-users --format env > .mitosis/nats.env
  --format json  {"<user>": "<password>"}, the Secrets Manager secret mitosis/nats-users
                 (the ECS NATS tasks read it):
                 aws secretsmanager create-secret --name mitosis/nats-users \
                   --secret-string "$(mitosis certs nats-users --format json)"
  --format ecs-urls  {"<user>": "tls://<user>:<password>@nats:4222", "<user>-private": ...},
                 the secret mitosis/nats-urls: an ECS task's or Express service's whole
                 SHOP_NATS_URL (neither composes a variable from another)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := manifests.Shipped(filepath.Join(a.root, "topologies"))
			if err != nil {
				return err
			}
			users := append(natsauth.Users(t), natsauth.Route)
			pw, err := natsauth.Passwords(a.pki(), users)
			if err != nil {
				return err
			}
			var b []byte
			switch format {
			case "k8s":
				b, err = yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
					"metadata": map[string]any{"name": manifests.NATSUsersSecret}, "stringData": pw})
			case "env":
				for _, u := range users {
					b = fmt.Appendf(b, "%s=%s\n", natsauth.PasswordEnv(u), pw[u])
				}
			case "json":
				b, err = json.Marshal(pw)
				b = append(b, '\n')
			case "ecs-urls":
				var urls map[string]string
				if urls, err = manifests.NATSURLs(t, pw); err == nil {
					b, err = json.Marshal(urls)
					b = append(b, '\n')
				}
			default:
				return usageError{fmt.Errorf("--format %q: want k8s, env, json or ecs-urls", format)}
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	natsUsers.Flags().StringVar(&format, "format", "k8s", "k8s (a Secret), env (compose's --env-file), json or ecs-urls (Secrets Manager)")
	cmd.AddCommand(natsUsers)
	cmd.AddCommand(a.awsSecretCmd())
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Replace the stack's CA and every certificate it issued",
		Long: `rotate makes a new CA for the stack and issues every identity in its folder a new
certificate from it. The old CA stays trusted, beside the new one, until the next rotation,
so running services that have not yet read their new files still talk to those that have;
each reads them at its next connection, without a restart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ca *identity.CA
			var names []string
			err := identity.Locked(a.pki(), func() (err error) {
				if ca, err = identity.RotateCA(a.pki(), a.stack); err != nil {
					return err
				}
				if names, err = identity.Found(a.pki()); err != nil {
					return err
				}
				_, err = ca.EnsureAll(names)
				return err
			})
			if err != nil {
				return err
			}
			a.say("stack %s: new CA (serial %x), %d identities renewed in %s; the previous CA stays trusted until the next rotation",
				a.stack, ca.Certificate().SerialNumber, len(names), a.pki())
			return nil
		},
	})
	return cmd
}

func (a *app) showCerts() error {
	names, err := identity.Found(a.pki())
	if err != nil {
		if os.IsNotExist(err) {
			a.say("stack %s has no identities yet: `mitosis up` makes them in %s", a.stack, a.pki())
			return nil
		}
		return err
	}
	for _, n := range names {
		src, err := identity.Load(filepath.Join(a.pki(), n))
		if err != nil {
			return err
		}
		leaf, err := src.Leaf()
		if err != nil {
			return err
		}
		note := ""
		switch now := time.Now(); {
		case !now.Before(leaf.NotAfter):
			note = "  EXPIRED: run mitosis up to renew"
		case identity.Overdue(leaf, now):
			note = "  renewal OVERDUE: is the renewer (" + renewerName + ") running? mitosis up renews it now"
		case !now.Before(identity.RenewAt(leaf)):
			note = "  past half its life: the renewer renews it within the hour"
		}
		a.say("%-40s %s  expires %s (%s)%s", src.ID(), filepath.Join(a.pki(), n), leaf.NotAfter.UTC().Format(time.RFC3339),
			life(time.Until(leaf.NotAfter)), note)
	}
	if len(names) == 0 {
		a.say("stack %s has no identities yet: `mitosis up` makes them in %s", a.stack, a.pki())
	}
	return nil
}

// awsSecretCmd prints an identity as the Secrets Manager secret an ECS task reads it from.
func (a *app) awsSecretCmd() *cobra.Command {
	var list bool
	cmd := &cobra.Command{
		Use:   "aws-secret <identity>",
		Short: "Print a service's identity as the Secrets Manager secret its ECS task reads",
		Long: `aws-secret issues <identity> (a service's process name: cart, gateway, nats-server...) a
new certificate from the stack's CA, valid for a week from now, and prints it with its key and
the trust bundle as the JSON the secret mitosis/tls/<identity> holds ({"cert", "key", "ca"},
PEM), which the ECS task definitions (and the Express services) take as SHOP_TLS_CERT_PEM,
SHOP_TLS_KEY_PEM and SHOP_TLS_CA_PEM (NATS: NATS_TLS_*_PEM). Fargate mounts no secret file,
so the task reads its identity from variables, once, when it starts: renew the secrets and
redeploy the services well within the week (deploy/README.md, "ECS on Fargate"). --list
prints the identities the shipped ECS files name:

  for id in $(mitosis certs aws-secret --list); do
    aws secretsmanager create-secret --name mitosis/tls/$id \
      --secret-string "$(mitosis certs aws-secret $id)"; done

Nothing is written: the key exists only in what is printed (and then in Secrets Manager).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := manifests.Shipped(filepath.Join(a.root, "topologies"))
			if err != nil {
				return err
			}
			ids := t.Identities()
			if list {
				for _, id := range ids {
					a.say("%s", id)
				}
				return nil
			}
			if len(args) != 1 {
				return usageError{fmt.Errorf("name an identity (%s), or --list", strings.Join(ids, ", "))}
			}
			if err := (identity.ID{Stack: a.stack, Service: args[0]}).Check(); err != nil {
				return usageError{err}
			}
			var ca *identity.CA
			err = identity.Locked(a.pki(), func() (err error) { // it makes the CA when there is none
				ca, err = identity.OpenCA(a.pki(), a.stack)
				return err
			})
			if err != nil {
				return err
			}
			certPEM, keyPEM, err := ca.Issue(args[0], identity.LeafLifetime)
			if err != nil {
				return err
			}
			b, err := manifests.AWSTLSSecretString(certPEM, keyPEM, ca.Bundle())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(append(b, '\n'))
			return err
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "print the identities the shipped ECS files need a secret of")
	return cmd
}

// renewerName is how status names the stack's renewer: arch/service.
const renewerName = topology.Renewer + "/" + topology.RenewerService

// certificates says when the certificates in the identity folders dirs expire (the running
// processes' and the tools'): the first to, or, with warn, those overdue for renewal
// (identity.Overdue: the renewer should have renewed them) or expired. Nothing for no folder
// (nothing up, or up insecure).
func certificates(dirs []string, now time.Time) (lines []string, warn bool) {
	if len(dirs) == 0 {
		return nil, false
	}
	var first *x509.Certificate
	var firstName string
	var due, expired []string
	for _, dir := range slices.Sorted(slices.Values(dirs)) {
		src, err := identity.Load(dir)
		var leaf *x509.Certificate
		if err == nil {
			leaf, err = src.Leaf()
		}
		if err != nil {
			lines = append(lines, fmt.Sprintf("WARNING: certificate in %s: %v: run mitosis up to renew", dir, err))
			warn = true
			continue
		}
		name := src.ID().Service
		switch {
		case !now.Before(leaf.NotAfter):
			expired = append(expired, name)
		case identity.Overdue(leaf, now):
			due = append(due, name)
		}
		if first == nil || leaf.NotAfter.Before(first.NotAfter) {
			first, firstName = leaf, name
		}
	}
	if first == nil {
		return lines, warn
	}
	when := fmt.Sprintf("at %s (%s, %s)", first.NotAfter.UTC().Format(time.RFC3339), life(first.NotAfter.Sub(now)), firstName)
	const renew = "is the renewer (" + renewerName + ") running? run mitosis up to renew (in place: nothing restarts, each process reads its new files at its next connection)"
	switch {
	case len(expired) > 0:
		lines = append(lines, fmt.Sprintf("WARNING: certificates EXPIRED: %s (the first %s); every gRPC and NATS connection they make fails: %s",
			strings.Join(expired, ", "), when, renew))
		warn = true
	case len(due) > 0:
		lines = append(lines, fmt.Sprintf("WARNING: certificates overdue for renewal: %s; the first expires %s: %s",
			strings.Join(due, ", "), when, renew))
		warn = true
	default:
		lines = append(lines, fmt.Sprintf("certificates: %d identities, the first expires %s; the renewer (%s) renews each once past half its life",
			len(dirs), when, renewerName))
	}
	return lines, warn
}

// life says how long until an expiry d from now, or how long ago.
func life(d time.Duration) string {
	ago := d < 0
	if ago {
		d = -d
	}
	var s string
	if d >= 24*time.Hour {
		s = fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	} else {
		s = strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	if ago {
		return s + " ago"
	}
	return "in " + s
}
