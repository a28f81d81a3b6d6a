package manifests

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// NATSUsersSecret is the Secret of the NATS users' passwords in a cluster: one key per user
// (natsauth.Users of the rendered topology, and natsauth.Route), each the password
// natsauth.Setup keeps in the stack's PKI folder; `mitosis certs nats-users` prints it. The
// NATS server reads every key, each process its own.
const NATSUsersSecret = "mitosis-nats-users"

// The Secrets Manager secrets of the NATS users in ECS, each a JSON object by user (the task
// definitions name a key of it, <secret>:<user>::): AWSNATSUsersSecret their passwords, which
// the NATS task reads as NATSUsersSecret's keys, AWSNATSURLsSecret each process's whole
// SHOP_NATS_URL with its password (tls://<user>:<password>@nats:4222), since ECS composes
// no variable from another. `mitosis certs nats-users --format json|ecs-urls` prints them.
const (
	AWSNATSUsersSecret = "mitosis/nats-users"
	AWSNATSURLsSecret  = "mitosis/nats-urls"
)

// natsPasswordSecret is where user's NATS password is in Secrets Manager: its key of
// AWSNATSUsersSecret.
func natsPasswordSecret(user string) awsRef { return awsRef{AWSNATSUsersSecret, user} }

// NATSURLs are the values of AWSNATSURLsSecret for t's processes, by key: <user> for an ECS
// task (NATS by Service Connect, nats:4222), <user>-private for an Express service (NATS by
// private DNS, nats.<arch>.LambdaDomain:4222), each the URL its rendered file would hold
// (expand, privateEnv) with the user's password of passwords in place of its mark.
func NATSURLs(t topology.Topology, passwords map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range t.Archs {
		for _, s := range a.Services {
			u := natsauth.UserOf(s)
			if _, ok := s.Env[topology.NATSURLEnv]; !ok || u == "" {
				continue
			}
			pw, ok := passwords[u]
			if !ok {
				return nil, fmt.Errorf("no password for NATS user %s", u)
			}
			x, err := expand(a, s, anyInterface, archNATSUsers(a))
			if err != nil {
				return nil, err
			}
			private, err := privateEnv(a, s)
			if err != nil {
				return nil, err
			}
			// ECS's NATS speaks TLS only (ecsidentity.go), to its tasks and Express services.
			fill := func(string) string { return userinfoPassword(pw) }
			out[u] = fillNATSURLPassword(x.Env[topology.NATSURLEnv], fill)
			out[u+privateSuffix] = fillNATSURLPassword(private[topology.NATSURLEnv], fill)
		}
	}
	return out, nil
}

// privateSuffix marks the key of AWSNATSURLsSecret whose URL reaches NATS by private DNS.
const privateSuffix = "-private"

// archNATSUsers are the users of a's NATS where each architecture has a NATS of its own
// (compose, ECS, Beanstalk): its processes' and the admin.
func archNATSUsers(a topology.Arch) []string {
	return natsauth.Users(topology.Topology{Archs: []topology.Arch{a}})
}

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

// natsURLPassword stands for the NATS password of user inside a process's SHOP_NATS_URL while
// the topology is expanded: each renderer puts its platform's reference there
// (replaceNATSURLPassword), or the whole URL in a secret (natsURLUser).
func natsURLPassword(user string) string { return "\x00nats-url:" + user + "\x00" }

// natsURLUserinfo is s's NATS user with its password's mark, for topology.NATSURL; nil for a
// service that runs no group.
func natsURLUserinfo(s topology.Service) *url.Userinfo {
	u := natsauth.UserOf(s)
	if u == "" {
		return nil
	}
	return url.UserPassword(u, natsURLPassword(u))
}

// userinfoPassword is pw as a URL's user information holds it (topology.NATSURL escapes it).
func userinfoPassword(pw string) string {
	return strings.TrimPrefix(url.UserPassword("", pw).String(), ":")
}

// natsURLMark matches natsURLPassword's mark as it stands in a URL.
var natsURLMark = regexp.MustCompile(regexp.QuoteMeta(userinfoPassword("\x00nats-url:")) + "([a-z0-9-]+)" + regexp.QuoteMeta(userinfoPassword("\x00")))

// fillNATSURLPassword replaces the password's mark in v by value(user).
func fillNATSURLPassword(v string, value func(user string) string) string {
	return natsURLMark.ReplaceAllStringFunc(v, func(m string) string {
		return value(natsURLMark.FindStringSubmatch(m)[1])
	})
}

// replaceNATSURLPassword replaces the password's mark in v by ref, "$VAR" in ref standing for
// the user's natsauth.PasswordEnv.
func replaceNATSURLPassword(v, ref string) string {
	return fillNATSURLPassword(v, func(user string) string {
		return strings.ReplaceAll(ref, "$VAR", natsauth.PasswordEnv(user))
	})
}

// natsURLUser returns the user whose password v (a URL) holds, if it holds one.
func natsURLUser(v string) (string, bool) {
	m := natsURLMark.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// NATSAuth is the authorization block of a NATS server's configuration (nats.conf syntax, as
// nats-server's own parser reads it) for users: natsauth.ServerUsers, as the running stacks'
// NATS has them, every password a $VAR reference to natsauth.PasswordEnv, which the server
// reads from its environment.
func NATSAuth(users []string) (string, error) {
	su, err := natsauth.ServerUsers(users, func(u string) string { return "$" + natsauth.PasswordEnv(u) })
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range su {
		fmt.Fprintf(&b, "    {\n      user: %q\n      password: %s\n", u.Username, u.Password)
		if p := u.Permissions; p != nil {
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

// natsPasswordRef is the variable name holding user's password from NATSUsersSecret.
func natsPasswordRef(name, user string) EnvVar {
	return EnvVar{Name: name, ValueFrom: &EnvVarSource{SecretKeyRef: &KeyRef{Name: NATSUsersSecret, Key: user}}}
}
