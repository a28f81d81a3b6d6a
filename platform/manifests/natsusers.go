package manifests

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// NATSUsersSecret is the Secret of the NATS users' passwords in a cluster: one key per user
// (natsauth.Users of the rendered topology, and natsauth.Route), each the password
// natsauth.Setup keeps in the stack's PKI folder; `mitosis certs nats-users` prints it. The
// NATS server reads every key, each process its own.
const NATSUsersSecret = "mitosis-nats-users"

// NATSAuthEnv is the users of the base's NATS (platform/cmd/nats-server -auth): NATSAuth's
// text, whose passwords are $NATS_PASSWORD_<USER> references (natsauth.PasswordEnv).
const NATSAuthEnv = "NATS_AUTH"

// NATSPasswordEnv holds a process's own NATS password in a cluster, from NATSUsersSecret: its
// SHOP_NATS_URL names it as $(SHOP_NATS_PASSWORD), which the kubelet expands (it sorts before
// SHOP_NATS_URL, as the expansion needs).
const NATSPasswordEnv = "SHOP_NATS_PASSWORD"

// natsPasswordMark stands for the NATS password of user while the topology is expanded, as
// adminTokenMark does for the admin token.
func natsPasswordMark(user string) string { return natsPasswordPrefix + user + "\x00" }

const natsPasswordPrefix = "\x00nats-password:"

// natsPasswordOf returns the user whose password mark v is.
func natsPasswordOf(v string) (string, bool) {
	u, ok := strings.CutPrefix(v, natsPasswordPrefix)
	if !ok || !strings.HasSuffix(u, "\x00") {
		return "", false
	}
	return strings.TrimSuffix(u, "\x00"), true
}

// NATSAuth is the authorization block of a NATS server's configuration (nats.conf syntax, as
// nats-server's own parser reads it) for users: each group's user with natsauth.Permissions
// of its group, the admin with every permission, and every password a $VAR reference to
// natsauth.PasswordEnv, which the server reads from its environment.
func NATSAuth(users []string) (string, error) {
	var b strings.Builder
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range users {
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: $%s\n", u, natsauth.PasswordEnv(u))
		if u != natsauth.Admin {
			g, err := bounded.ParseName(u)
			if err != nil {
				return "", fmt.Errorf("NATS user %s: %w", u, err)
			}
			p := natsauth.Permissions(g)
			fmt.Fprintf(&b, "      permissions {\n        publish { allow: %s }\n        subscribe { allow: %s }\n      }\n",
				confList(p.Publish.Allow), confList(p.Subscribe.Allow))
		}
		b.WriteString("    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}

// confList writes subjects as a nats.conf list, one a line.
func confList(subjects []string) string {
	var b strings.Builder
	b.WriteString("[\n")
	for _, s := range subjects {
		b.WriteString("          " + strconv.Quote(s) + "\n")
	}
	b.WriteString("        ]")
	return b.String()
}

// natsAuthEnv is what the base's NATS container adds to its environment: its users
// (NATSAuthEnv) and every password they name, from NATSUsersSecret.
func natsAuthEnv(t topology.Topology) ([]EnvVar, error) {
	users := natsauth.Users(t)
	conf, err := NATSAuth(users)
	if err != nil {
		return nil, err
	}
	env := []EnvVar{{Name: NATSAuthEnv, Value: conf}}
	for _, u := range users {
		env = append(env, natsPasswordRef(natsauth.PasswordEnv(u), u))
	}
	return env, nil
}

func natsPasswordRef(name, user string) EnvVar {
	return EnvVar{Name: name, ValueFrom: &EnvVarSource{SecretKeyRef: &KeyRef{Name: NATSUsersSecret, Key: user}}}
}
