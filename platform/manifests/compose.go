package manifests

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Compose files, the way `mitosis up` runs a topology on Podman: one network per architecture
// (every service known there by its topology name, nats included, so each architecture has
// its own NATS), the edge published on 127.0.0.1 only, read-only, non-root, no capabilities,
// the topology's CPU and memory limits. Every architecture is a profile of its own name.
// Monolith and services share compose/compose.yaml, one project running both side by side as
// the comparison does (and as it has since the start); any other architecture has a file of
// its own, compose/<arch>/compose.yaml, so that its services' names never depend on what else
// is rendered, and that file stays the same whatever else is.
//
// They are written for Compose v1 (Debian's docker-compose 1.29, against Podman's Docker
// socket) as well as v2: no top-level name (v1 rejects it), no healthcheck (the images hold
// no shell; a process that starts before NATS exits and is restarted instead). Debian's
// podman-compose 1.0.3 ignores profiles, so it would start both architectures of compose.yaml.

type composeFile struct {
	Services map[string]composeService `json:"services"`
	Networks map[string]struct{}       `json:"networks"`
	Volumes  map[string]struct{}       `json:"volumes,omitempty"`
}

type composeService struct {
	Profiles        []string                  `json:"profiles,omitempty"`
	Image           string                    `json:"image"`
	Command         []string                  `json:"command,omitempty"`
	Environment     map[string]string         `json:"environment,omitempty"`
	Ports           []string                  `json:"ports,omitempty"`
	Networks        map[string]composeNetwork `json:"networks,omitempty"`
	NetworkMode     string                    `json:"network_mode,omitempty"` // "none" for the renewer, which has no peer
	DependsOn       []string                  `json:"depends_on,omitempty"`
	User            string                    `json:"user"`
	ReadOnly        bool                      `json:"read_only"`
	Tmpfs           []string                  `json:"tmpfs"`
	CapDrop         []string                  `json:"cap_drop"`
	SecurityOpt     []string                  `json:"security_opt"`
	Restart         string                    `json:"restart"`
	StopGracePeriod string                    `json:"stop_grace_period"`
	Deploy          composeDeploy             `json:"deploy"`
	Volumes         []string                  `json:"volumes,omitempty"`
}

type composeNetwork struct {
	Aliases []string `json:"aliases"`
}

type composeDeploy struct {
	Replicas  int `json:"replicas,omitempty"` // the topology's replicas of the group, when more than one
	Resources struct {
		Limits struct {
			CPUs   string `json:"cpus"`
			Memory string `json:"memory"`
		} `json:"limits"`
	} `json:"resources"`
}

// ComposeFile is the compose file of t's architecture arch: compose/compose.yaml for monolith
// and services when t has both, else compose/<arch>/compose.yaml.
func ComposeFile(t topology.Topology, arch string) string {
	pair := 0
	for _, a := range t.Archs {
		if a.Name == topology.Monolith || a.Name == topology.Services {
			pair++
		}
	}
	if pair == 2 && (arch == topology.Monolith || arch == topology.Services) {
		return "compose/compose.yaml"
	}
	return "compose/" + arch + "/compose.yaml"
}

// ComposeName is a topology service's name in its compose file: its own, unless another
// architecture of the file has a service of that name (nats), then <arch>-<name>. In its
// architecture's network it is also known by its own name.
func ComposeName(t topology.Topology, arch, service string) string {
	n := 0
	for _, a := range t.Archs {
		if _, ok := a.Service(service); ok && ComposeFile(t, a.Name) == ComposeFile(t, arch) {
			n++
		}
	}
	if n > 1 {
		return arch + "-" + service
	}
	return service
}

// Compose variables (all optional but the admin token).
const (
	ComposeRegistryVar = "MITOSIS_REGISTRY" // image prefix, default localhost/mitosis
	ComposeTagVar      = "MITOSIS_TAG"      // image tag, default latest
)

// ComposePKIVar is the variable of the host folder of the stack's identities (`mitosis certs
// issue --for-containers`: <state>/pki/<stack>): each service mounts its own, <folder>/<identity>,
// read-only at topology.TLSMount. compose refuses to start without it.
const ComposePKIVar = "MITOSIS_PKI"

// composePKI is ComposePKIVar's value in a compose file.
const composePKI = "${" + ComposePKIVar + ":?set " + ComposePKIVar + " to the stack's identities}"

// ComposePortVar is the variable that moves an architecture's edge port.
func ComposePortVar(arch string) string {
	return "MITOSIS_" + strings.ToUpper(strings.ReplaceAll(arch, "-", "_")) + "_PORT"
}

// composeLiteral escapes a value for compose's interpolation.
func composeLiteral(v string) string { return strings.ReplaceAll(v, "$", "$$") }

// composeFiles renders the compose files of t's architectures (ComposeFile).
func composeFiles(t topology.Topology) (map[string][]byte, error) {
	byFile := map[string][]topology.Arch{}
	var order []string
	for _, a := range t.Archs {
		p := ComposeFile(t, a.Name)
		if _, ok := byFile[p]; !ok {
			order = append(order, p)
		}
		byFile[p] = append(byFile[p], a)
	}
	files := map[string][]byte{}
	for _, p := range order {
		b, _, err := composeYAML(t, byFile[p], identityMount)
		if err != nil {
			return nil, err
		}
		files[p] = b
	}
	return files, nil
}

// identityFrom is how a compose file gives each service its identity (platform/identity);
// either way NATS and gRPC speak mutual TLS, as in a cluster.
type identityFrom int

const (
	// identityMount mounts the service's folder of ComposePKIVar's (compose on a machine of
	// the user's, where `mitosis certs issue --for-containers` writes them).
	identityMount identityFrom = iota
	// identityEnv passes the PEM texts in variables from the environment (identity.Env), as
	// Beanstalk fills them from Secrets Manager: its instances have no PKI folder.
	identityEnv
)

// composeYAML renders one compose file, holding archs (of t), the identities given as ids
// says. It returns too the variables the file requires from its environment that hold
// secrets, with where each is in Secrets Manager (for a platform that fills them from there).
func composeYAML(t topology.Topology, archs []topology.Arch, ids identityFrom) ([]byte, map[string]awsRef, error) {
	f := composeFile{Services: map[string]composeService{}, Networks: map[string]struct{}{}, Volumes: map[string]struct{}{}}
	secrets := map[string]awsRef{}
	// required is the value of a variable taken from the environment, which compose refuses
	// to start without.
	required := func(name string, ref awsRef) string {
		secrets[name] = ref
		return "${" + name + ":?set " + name + "}"
	}
	for _, a := range archs {
		f.Networks[a.Name] = struct{}{}
		for _, s := range a.Services {
			name := ComposeName(t, a.Name, s.Name)
			x, err := expand(a, s, anyInterface, archNATSUsers(a))
			if err != nil {
				return nil, nil, err
			}
			cs := composeHardened(s)
			cs.Profiles = []string{a.Name}
			cs.Networks = map[string]composeNetwork{a.Name: {Aliases: []string{s.Name}}}
			for _, arg := range x.Args {
				cs.Command = append(cs.Command, composeLiteral(arg))
			}
			if ids == identityEnv {
				for _, dir := range []string{topology.TLSDirEnv, topology.NATSTLSDirEnv} {
					if _, ok := x.Env[dir]; !ok {
						continue
					}
					delete(x.Env, dir)
					for name, ref := range identityRefs(dir, s.Identity()) {
						if prev, ok := secrets[name]; ok && prev != ref {
							return nil, nil, fmt.Errorf("%s/%s: %s would hold two identities in one environment", a.Name, s.Name, name)
						}
						cs.Environment[name] = required(name, ref)
					}
				}
			}
			for k, v := range x.Env {
				if sec, ok := secretOf(v); ok {
					cs.Environment[k] = required(sec.env, sec.aws)
					continue
				}
				cs.Environment[k] = fillNATSURLPassword(composeLiteral(v), func(user string) string {
					return required(natsauth.PasswordEnv(user), natsPasswordSecret(user))
				})
			}
			if s.Env["OTEL_SERVICE_NAME"] != "" {
				// Where the caller's collector is, if any (unset: no export).
				cs.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
			}
			// One machine, as the local runtimes: the topology's replicas, which share the
			// name (compose's DNS answers with every replica's address).
			if s.Count() > 1 {
				cs.Deploy.Replicas = s.Count()
			}
			if s.Edge != "" {
				host, port, err := net.SplitHostPort(s.Edge)
				if err != nil {
					return nil, nil, fmt.Errorf("%s/%s: edge %q: %w", a.Name, s.Name, s.Edge, err)
				}
				cs.Ports = []string{fmt.Sprintf("%s:${%s:-%s}:%d", host, ComposePortVar(a.Name), port, s.Ports[0])}
			}
			for _, d := range s.DependsOn {
				cs.DependsOn = append(cs.DependsOn, ComposeName(t, a.Name, d))
			}
			if s.DataDir != "" {
				vol := name + "-data"
				f.Volumes[vol] = struct{}{}
				cs.Volumes = []string{vol + ":" + s.DataDir}
			}
			if id := s.Identity(); id != "" && ids == identityMount {
				cs.Volumes = append(cs.Volumes, composePKI+"/"+id+":"+topology.TLSMount+":ro")
			}
			f.Services[name] = cs
		}
	}
	if ids == identityMount {
		if _, ok := f.Services[topology.RenewerService]; ok {
			return nil, nil, fmt.Errorf("compose: a service of %s is named %s, the stack's renewer", archs[0].Name, topology.RenewerService)
		}
		r, err := composeRenewer(archs)
		if err != nil {
			return nil, nil, err
		}
		f.Services[topology.RenewerService] = r
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		return nil, nil, fmt.Errorf("compose: %w", err)
	}
	return append([]byte(composeHeader(t, archs)), b...), secrets, nil
}

// composeHardened is how every service of a compose file runs, s's image and limits: non-root,
// read-only, no capabilities, restarted unless stopped.
func composeHardened(s topology.Service) composeService {
	cs := composeService{
		Image:           "${" + ComposeRegistryVar + ":-" + LocalRepo + "}/" + s.Image + ":${" + ComposeTagVar + ":-latest}",
		User:            strconv.Itoa(nonRoot) + ":" + strconv.Itoa(nonRoot),
		ReadOnly:        true,
		Tmpfs:           []string{"/tmp"},
		CapDrop:         []string{"ALL"},
		SecurityOpt:     []string{"no-new-privileges:true"},
		Restart:         "unless-stopped",
		StopGracePeriod: stopGrace.String(),
		Environment:     map[string]string{},
	}
	cs.Deploy.Resources.Limits.CPUs = strconv.FormatFloat(s.CPUs, 'f', -1, 64)
	cs.Deploy.Resources.Limits.Memory = strconv.Itoa(s.MemoryMB) + "M"
	return cs
}

// ComposeStackVar names the stack whose identities MITOSIS_PKI holds (default
// stack.DefaultName), as the CLI's --stack does: the renewer checks its CA by it.
const ComposeStackVar = "MITOSIS_STACK"

// composeRenewer is the stack's renewer (topology.NewRenewer) in a compose file of archs,
// started with any of their profiles: the only service that mounts the PKI folder itself,
// read-write, the CA's key in it (`mitosis certs issue --for-containers` gives it to the
// images' user), to renew the identities the others mount while the project runs, as
// `mitosis up`'s renewer does. It has no network: it reads and writes files.
func composeRenewer(archs []topology.Arch) (composeService, error) {
	r := topology.NewRenewer()
	const stackMark = "\x00stack\x00"
	args, env, err := topology.Expand(r, topology.Resolver{
		Listen: func(port int) string { return anyInterface(r, port) },
		PKI:    topology.PKIMount,
		Stack:  stackMark,
	})
	if err != nil {
		return composeService{}, fmt.Errorf("compose: %s: %w", r.Name, err)
	}
	cs := composeHardened(r)
	for _, a := range archs {
		cs.Profiles = append(cs.Profiles, a.Name)
	}
	cs.NetworkMode = "none"
	for _, arg := range args {
		cs.Command = append(cs.Command, strings.ReplaceAll(composeLiteral(arg), stackMark, "${"+ComposeStackVar+":-"+stack.DefaultName+"}"))
	}
	for k, v := range env {
		cs.Environment[k] = composeLiteral(v)
	}
	cs.Volumes = []string{composePKI + ":" + topology.PKIMount}
	return cs, nil
}

// composeHeader is a compose file's comment: what it holds and how to run it.
func composeHeader(t topology.Topology, archs []topology.Arch) string {
	if ComposeFile(t, archs[0].Name) == "compose/compose.yaml" {
		return `# mitosis with Docker Compose: both architectures, one profile each.
# Generated by ` + "`mitosis deploy render`" + ` from platform/topology: do not edit (make deploy-check).
#
#   mitosis kube load                           # the built images, as localhost/mitosis/<name>:latest
#   export SHOP_ADMIN_TOKEN=$(cat .mitosis/admin-token) SHOP_REQUEST_KEY=$(cat .mitosis/request-key)
#   mitosis certs nats-users --format env > .mitosis/nats.env   # NATS's users' passwords
#   mitosis certs issue -t monolith,services --for-containers; export MITOSIS_PKI=$PWD/.mitosis/pki/mitosis
#   export DOCKER_HOST=unix:///run/podman/podman.sock   # with Podman
#   docker-compose --env-file .mitosis/nats.env -f compose/compose.yaml -p mitosis --profile monolith up -d   # http://127.0.0.1:8080
#   docker-compose --env-file .mitosis/nats.env -f compose/compose.yaml -p mitosis --profile services up -d   # http://127.0.0.1:8081
#   docker-compose --env-file .mitosis/nats.env -f compose/compose.yaml -p mitosis --profile monolith --profile services down -v
#
# The service renewer, in every profile, renews the identities of MITOSIS_PKI while the
# project runs. docker compose v2 works alike; Debian's podman-compose 1.0.3 ignores profiles
# (it would start both). Variables: MITOSIS_REGISTRY and MITOSIS_TAG (images),
# MITOSIS_MONOLITH_PORT and MITOSIS_SERVICES_PORT (edges), OTEL_EXPORTER_OTLP_ENDPOINT (traces,
# passed to every process), MITOSIS_STACK (the stack of MITOSIS_PKI, if not mitosis).
`
	}
	a := archs[0]
	run := "docker-compose --env-file .mitosis/nats.env -f " + ComposeFile(t, a.Name) + " -p " + PartOf + "-" + a.Name + " --profile " + a.Name
	return `# mitosis with Docker Compose: the ` + a.Name + ` topology (` + a.Split + `), profile ` + a.Name + `.
# Generated by ` + "`mitosis deploy render`" + ` from platform/topology: do not edit (make deploy-check).
#
#   mitosis kube load                           # the built images, as localhost/mitosis/<name>:latest
#   export SHOP_ADMIN_TOKEN=$(cat .mitosis/admin-token) SHOP_REQUEST_KEY=$(cat .mitosis/request-key)
#   mitosis certs nats-users --format env > .mitosis/nats.env   # NATS's users' passwords
#   mitosis certs issue -t ` + a.Name + ` --for-containers; export MITOSIS_PKI=$PWD/.mitosis/pki/mitosis
#   export DOCKER_HOST=unix:///run/podman/podman.sock   # with Podman
#   ` + run + ` up -d   # http://` + a.Edge + `
#   ` + run + ` down -v
#
# The service renewer renews the identities of MITOSIS_PKI while the project runs. docker
# compose v2 works alike. Variables: MITOSIS_REGISTRY and MITOSIS_TAG (images),
# ` + ComposePortVar(a.Name) + ` (the edge), OTEL_EXPORTER_OTLP_ENDPOINT (traces, passed to every process),
# MITOSIS_STACK (the stack of MITOSIS_PKI, if not mitosis).
`
}
