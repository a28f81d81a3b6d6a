package manifests

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Overlays of deploy/k8s: one per architecture for a local cluster (or Podman), named after
// it, and the production one (the services on EKS: NATS as a 3-node JetStream cluster, the
// ADOT collector, images from ECR).
const (
	OverlayMonolith   = topology.Monolith
	OverlayServices   = topology.Services
	OverlayProduction = "production"
)

// Overlays lists t's overlays in the order they are rendered: one per architecture, then
// production when t has the services.
func Overlays(t topology.Topology) []string {
	var out []string
	for _, a := range t.Archs {
		out = append(out, a.Name)
	}
	if _, ok := arch(t, OverlayServices); ok {
		out = append(out, OverlayProduction)
	}
	return out
}

// Images and names the manifests share.
const (
	// LocalRepo is where `mitosis build` names its images (imagebuild's default Repo).
	LocalRepo = "localhost/mitosis"
	// AdminSecret is the Secret holding the admin token (key AdminSecretKey) in a cluster.
	AdminSecret    = "shop-admin"
	AdminSecretKey = "token"
	// RequestKeySecret holds the key of checkout request hashes (key RequestKeySecretKey),
	// which the process that runs orders reads (services/bounded.RequestKeyEnv).
	RequestKeySecret    = "shop-request-key"
	RequestKeySecretKey = "key"
	// NATSImage is the NATS of the production overlay: the official image, since a JetStream
	// cluster needs routes and a config file that platform/cmd/nats-server does not take.
	// Its version is the nats-server module pinned in platform/go.mod (a test checks).
	NATSImage = "docker.io/library/nats:2.15.2-alpine"
	// ADOTImage is the AWS Distro for OpenTelemetry collector, in EKS and as the ECS sidecar.
	ADOTImage = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"
	// CollectorName is the collector's Deployment and Service in the production overlay.
	CollectorName = "otel-collector"
	// NATSClusterPort is the route port of the production NATS cluster.
	NATSClusterPort = 6222
	// NATSClusterSize is the production overlay's NATS replicas.
	NATSClusterSize = 3
)

// TLSVolume is the volume of a pod's identity (platform/identity): the Secret TLSSecret of
// its service, mounted read-only at topology.TLSMount.
const TLSVolume = "tls"

// TLSSecret is the Secret holding the identity of the process name identity
// (topology.Service.Identity): keys cert.pem, key.pem and ca.pem, as `mitosis certs issue`
// writes them into <state>/pki/<stack>/<identity>. deploy/README.md says how to make them,
// and how cert-manager's csi-driver-spiffe or a mesh replaces them.
func TLSSecret(identity string) string { return "mitosis-tls-" + identity }

// Labels of every rendered workload.
const (
	LabelName   = "app.kubernetes.io/name"
	LabelPartOf = "app.kubernetes.io/part-of"
	PartOf      = "mitosis"
)

// nonRoot is the user every image runs as (imagebuild's nonroot, 65532).
const nonRoot = 65532

// requestKeyMark stands for the key of checkout request hashes, as adminTokenMark does for
// the admin token.
const requestKeyMark = "\x00request-key\x00"

// secret is a secret of the stack, and where each platform keeps it.
type secret struct {
	mark     string // what stands for it while the topology is expanded
	env      string // the variable compose reads it from
	k8s, key string // the Secret, and its key, in a cluster
	aws      awsRef // where it is in Secrets Manager
}

// secretOf returns the secret a value expanded to stands for, if it is one.
func secretOf(v string) (secret, bool) {
	for _, s := range []secret{
		{adminTokenMark, "SHOP_ADMIN_TOKEN", AdminSecret, AdminSecretKey, awsRef{name: "mitosis/admin-token"}},
		{requestKeyMark, "SHOP_REQUEST_KEY", RequestKeySecret, RequestKeySecretKey, awsRef{name: "mitosis/request-key"}},
	} {
		if v == s.mark {
			return s, true
		}
	}
	if u, ok := natsPasswordOf(v); ok {
		return secret{v, natsauth.PasswordEnv(u), NATSUsersSecret, u, natsPasswordSecret(u)}, true
	}
	return secret{}, false
}

// adminTokenMark stands for the admin token while expanding the topology: each renderer puts
// the token where its platform keeps secrets (a Secret, a compose variable, Secrets Manager).
const adminTokenMark = "\x00admin-token\x00"

// Namespace is the namespace an overlay deploys into.
func Namespace(overlay string) string {
	if overlay == OverlayProduction {
		return PartOf
	}
	return PartOf + "-" + overlay
}

// Image is the local reference of an image of the topology, as the checked-in files name it.
func Image(name string) string { return LocalRepo + "/" + name + ":latest" }

// replicas is how many pods a cluster runs of a stateless service: the topology's replicas
// of its group (platform/topology), and never fewer than a cluster needs. The monolith runs
// alone, as its own process takes over at once every checkout an earlier one left
// unfinished; every other group runs at least two, so that a rollout or a lost node does not
// take a context away, and is told it is not alone (SHOP_SOLE_REPLICA false: orders then
// leaves a stalled checkout a minute before taking it over, see services/bounded). A
// cluster's Service fronts the edge's replicas, which one machine cannot (the topology
// refuses them there).
func replicas(s topology.Service) int32 {
	if g, err := bounded.ParseGroup(s.Group); err == nil && g.Whole() && g.Edge {
		return 1
	}
	return int32(max(s.Count(), clusterReplicas))
}

// clusterReplicas is the fewest pods a cluster runs of a stateless group.
const clusterReplicas = 2

// soleReplicaEnv tells a host whether it is its group's only process (services/host).
const soleReplicaEnv = "SHOP_SOLE_REPLICA"

// expanded is a service's arguments and environment for one platform.
type expanded struct {
	Args []string
	Env  map[string]string
}

// expand resolves a service's placeholders for a platform where every service is reached by
// its name (Kubernetes Services, compose aliases, ECS Service Connect), listening where
// listen says (anyInterface, or podListen in Kubernetes).
//
// With NATS users (natsUsers not nil: the users its NATS server knows), the NATS server gets
// them (NATSAuthEnv, and each password's variable as a secret's mark), and a process that
// uses NATS dials it as its own user (natsauth.UserOf): its password is natsURLPassword(user)
// in its URL, which each renderer replaces by its platform's reference to it, and a mark in
// NATSPasswordEnv.
func expand(a topology.Arch, s topology.Service, listen func(s topology.Service, port int) string, natsUsers []string) (expanded, error) {
	data := s.DataDir
	if data == "" {
		data = "/tmp/data" // on the tmp volume: the monolith's embedded store dir, unused with NATS
	}
	var natsUser *url.Userinfo
	if natsUsers != nil {
		natsUser = natsURLUserinfo(s)
	}
	args, env, err := topology.Expand(s, topology.Resolver{
		Addr: func(svc string, port int) (string, error) {
			o, ok := a.Service(svc)
			if !ok {
				return "", fmt.Errorf("unknown service %s", svc)
			}
			if port == 0 {
				port = o.Ports[0]
			}
			return net.JoinHostPort(svc, strconv.Itoa(port)), nil
		},
		Listen:     func(port int) string { return listen(s, port) },
		Data:       data,
		AdminToken: adminTokenMark,
		RequestKey: requestKeyMark,
		TLS:        topology.TLSMount,
		// NATS has its identity where the processes have theirs.
		NATSTLS:  true,
		NATSUser: natsUser,
	})
	if err != nil {
		return expanded{}, fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
	}
	if s.Group != "" && replicas(s) > 1 {
		env[soleReplicaEnv] = "false"
	}
	if _, ok := s.Env[topology.NATSUsersEnv]; ok && natsUsers != nil {
		// The rendered NATS has no users file: its users come in NATSAuthEnv.
		conf, err := NATSAuth(natsUsers)
		if err != nil {
			return expanded{}, fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
		}
		env[NATSAuthEnv] = conf
		for _, u := range natsUsers {
			env[natsauth.PasswordEnv(u)] = natsPasswordMark(u)
		}
	}
	if env[topology.NATSUsersEnv] == "" {
		delete(env, topology.NATSUsersEnv)
	}
	for _, mark := range []string{adminTokenMark, requestKeyMark} {
		for k, v := range env {
			if strings.Contains(v, mark) && v != mark {
				return expanded{}, fmt.Errorf("%s/%s: %s holds a secret inside a longer value", a.Name, s.Name, k)
			}
		}
		for _, v := range args {
			if strings.Contains(v, mark) {
				return expanded{}, fmt.Errorf("%s/%s: a secret in an argument would be visible to anyone", a.Name, s.Name)
			}
		}
	}
	return expanded{Args: args, Env: env}, nil
}

// anyInterface listens on every interface of the container (compose, ECS).
func anyInterface(_ topology.Service, port int) string {
	return net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
}

// PodIPEnv is the variable that holds a pod's IP (the downward API's status.podIP), which
// the listen addresses of the Kubernetes overlays name as $(POD_IP): the kubelet expands it.
const PodIPEnv = "POD_IP"

// podListen listens on the pod's IP only, where NetworkPolicies apply, except for the
// edge's HTTP port: `kubectl port-forward` reaches a pod on its loopback, and the edge is
// open to everyone anyway.
func podListen(s topology.Service, port int) string {
	if s.Edge != "" && port == s.Ports[0] {
		return anyInterface(s, port)
	}
	return net.JoinHostPort("$("+PodIPEnv+")", strconv.Itoa(port))
}

// portName names a container port after what it serves.
func portName(s topology.Service, port int) string {
	switch {
	case s.DataDir != "" && port == topology.NATSPort:
		return "client"
	case s.DataDir != "" && port == topology.NATSMonitorPort:
		return "monitor"
	case port == topology.MetricsPort:
		return "metrics"
	case port == topology.HealthPort:
		return "health"
	case port == s.Probe.Port && s.Probe.Kind == topology.HTTP:
		return "http"
	case port == s.Probe.Port && s.Probe.Kind == topology.GRPC:
		return "grpc"
	case s.Group != "" && s.Edge != "" && port != s.Ports[0]:
		// A group with the edge whose contexts others call: gRPC after the edge's port.
		return "grpc"
	}
	return "tcp-" + strconv.Itoa(port)
}

// probesOwnPort says whether a service answers its probes on topology.HealthPort: a group
// whose readiness is its gRPC health, which the kubelet cannot ask of a port that requires
// a client certificate (its gRPC probe speaks plaintext only; a TCP connect would say ready
// while the store or a peer is down, and a rolling update would go on regardless).
func probesOwnPort(s topology.Service) bool {
	return s.Group != "" && s.Probe.Kind == topology.GRPC
}

// millicores writes a CPU amount in millicores.
func millicores(cpus float64) string { return strconv.Itoa(int(cpus*1000+0.5)) + "m" }

func mebibytes(mb int) string { return strconv.Itoa(mb) + "Mi" }

// probes returns a service's readiness and liveness probes. Readiness is the topology's
// probe. Liveness must only say whether the process is stuck: /healthz for an HTTP edge
// (/readyz also fails when a dependency is down, and restarting for that helps nobody), and
// NATS's own probe. A process that serves gRPC only answers both on a port of its own
// (probesOwnPort): /readyz says what its gRPC health says, /healthz whether it serves at all.
func probes(s topology.Service) (ready, live *Probe) {
	p := s.Probe
	port := int32(p.Port)
	switch {
	case probesOwnPort(s):
		ready = &Probe{HTTPGet: &HTTPGetAction{Path: "/readyz", Port: topology.HealthPort}}
		live = &Probe{HTTPGet: &HTTPGetAction{Path: "/healthz", Port: topology.HealthPort}}
	case p.Kind == topology.HTTP:
		ready = &Probe{HTTPGet: &HTTPGetAction{Path: p.Path, Port: port}}
		livePath := p.Path
		if p.Path == "/readyz" {
			livePath = "/healthz"
		}
		live = &Probe{HTTPGet: &HTTPGetAction{Path: livePath, Port: port}}
	default:
		ready = &Probe{TCPSocket: &PortAction{Port: port}}
		live = &Probe{TCPSocket: &PortAction{Port: port}}
	}
	ready.PeriodSeconds, ready.TimeoutSeconds, ready.FailureThreshold = 5, 2, 3
	live.PeriodSeconds, live.TimeoutSeconds, live.FailureThreshold = 10, 2, 3
	return ready, live
}

// hardened is the security context of every container: non-root, read-only root, no
// capabilities, no privilege escalation.
func hardened() *SecurityContext {
	return &SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		Privileged:               ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		RunAsNonRoot:             ptr(true),
		Capabilities:             &Capabilities{Drop: []string{"ALL"}},
	}
}

func podSecurity(uid int64) *PodSecurityContext {
	return &PodSecurityContext{
		RunAsNonRoot:   ptr(true),
		RunAsUser:      ptr(uid),
		RunAsGroup:     ptr(uid),
		FSGroup:        ptr(uid),
		SeccompProfile: &SeccompProfile{Type: "RuntimeDefault"},
	}
}

// tmpVolume is the writable /tmp of a read-only root.
const tmpVolume = "tmp"

// resources are a service's requests and limits. Memory is requested whole so the scheduler
// never overcommits it (an OOM kill is worse than a pending pod); CPU is requested at half
// the limit and may burst.
func resources(s topology.Service) *Resources {
	return &Resources{
		Requests: map[string]string{"cpu": millicores(s.CPUs / 2), "memory": mebibytes(s.MemoryMB)},
		Limits:   map[string]string{"cpu": millicores(s.CPUs), "memory": mebibytes(s.MemoryMB)},
	}
}

// container renders one service's container.
func container(a topology.Arch, s topology.Service, natsUsers []string) (Container, error) {
	x, err := expand(a, s, podListen, natsUsers)
	if err != nil {
		return Container{}, err
	}
	c := Container{
		Name:            s.Name,
		Image:           Image(s.Image),
		ImagePullPolicy: "IfNotPresent",
		Args:            x.Args,
		Resources:       resources(s),
		SecurityContext: hardened(),
		VolumeMounts:    []VolumeMount{{Name: tmpVolume, MountPath: "/tmp"}},
	}
	// First: a variable names only those defined before it.
	c.Env = append(c.Env, EnvVar{Name: PodIPEnv, ValueFrom: &EnvVarSource{FieldRef: &FieldRef{FieldPath: "status.podIP"}}})
	env := x.Env
	if probesOwnPort(s) {
		env = maps.Clone(env)
		env[bounded.HealthAddrEnv] = podListen(s, topology.HealthPort)
	}
	if user, ok := natsURLUser(env[topology.NATSURLEnv]); ok {
		// A cluster's processes take their NATS password from the Secret, in a variable of
		// its own that their URL names (the other platforms put it in the URL).
		env = maps.Clone(env)
		env[NATSPasswordEnv] = natsPasswordMark(user)
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := env[k]
		if sec, ok := secretOf(v); ok {
			c.Env = append(c.Env, EnvVar{Name: k, ValueFrom: &EnvVarSource{SecretKeyRef: &KeyRef{Name: sec.k8s, Key: sec.key}}})
			continue
		}
		// The process's NATS password: the variable the Secret fills, which the kubelet
		// expands as it was defined before (NATSPasswordEnv sorts first).
		c.Env = append(c.Env, EnvVar{Name: k, Value: replaceNATSURLPassword(v, "$("+NATSPasswordEnv+")")})
	}
	for _, p := range s.Ports {
		c.Ports = append(c.Ports, ContainerPort{Name: portName(s, p), ContainerPort: int32(p), Protocol: "TCP"})
	}
	if probesOwnPort(s) {
		c.Ports = append(c.Ports, ContainerPort{Name: portName(s, topology.HealthPort), ContainerPort: topology.HealthPort, Protocol: "TCP"})
	}
	c.ReadinessProbe, c.LivenessProbe = probes(s)
	if s.DataDir != "" {
		c.VolumeMounts = append(c.VolumeMounts, VolumeMount{Name: "data", MountPath: s.DataDir})
	}
	if s.Identity() != "" {
		c.VolumeMounts = append(c.VolumeMounts, VolumeMount{Name: TLSVolume, MountPath: topology.TLSMount, ReadOnly: true})
	}
	return c, nil
}

func workloadLabels(a topology.Arch, s topology.Service) map[string]string {
	l := map[string]string{LabelName: s.Name, LabelPartOf: PartOf}
	if s.DataDir == "" {
		// Stateful services sit in the base, shared by both architectures.
		l[stack.LabelArch] = a.Name
	}
	return l
}

func podTemplate(a topology.Arch, s topology.Service, natsUsers []string) (PodTemplate, error) {
	c, err := container(a, s, natsUsers)
	if err != nil {
		return PodTemplate{}, err
	}
	volumes := []Volume{{Name: tmpVolume, EmptyDir: &EmptyDir{SizeLimit: "64Mi"}}}
	if id := s.Identity(); id != "" {
		// Readable by the pod's group (fsGroup) only: the key is the identity.
		volumes = append(volumes, Volume{Name: TLSVolume, Secret: &SecretVolume{SecretName: TLSSecret(id), DefaultMode: ptr(int32(0o440))}})
	}
	return PodTemplate{
		Metadata: ObjectMeta{Labels: workloadLabels(a, s)},
		Spec: PodSpec{
			AutomountServiceAccountToken: ptr(false), // none of them talks to the API server
			// No {SVC}_SERVICE_HOST variables: services are reached by DNS, and NATS_* ones
			// would meet the nats-server's own NATS_* settings.
			EnableServiceLinks:            ptr(false),
			SecurityContext:               podSecurity(nonRoot),
			TerminationGracePeriodSeconds: ptr(int64(stopGrace.Seconds())),
			Containers:                    []Container{c},
			Volumes:                       volumes,
		},
	}, nil
}

func service(a topology.Arch, s topology.Service) *Service {
	svc := &Service{
		TypeMeta: TypeMeta{APIVersion: "v1", Kind: "Service"},
		Metadata: ObjectMeta{Name: s.Name, Labels: workloadLabels(a, s)},
		Spec:     ServiceSpec{Selector: map[string]string{LabelName: s.Name}},
	}
	for _, p := range s.Ports {
		svc.Spec.Ports = append(svc.Spec.Ports, ServicePort{Name: portName(s, p), Port: int32(p), TargetPort: int32(p), Protocol: "TCP"})
	}
	if s.DataDir != "" {
		// Headless: the StatefulSet's pods get stable names (nats-0.nats), which the
		// production cluster's routes use, and clients are handed every pod.
		svc.Spec.ClusterIP = "None"
		svc.Spec.PublishNotReadyAddresses = true
	}
	return svc
}

// statefulSet renders a service with a data directory: its data on a volume claim per pod.
func statefulSet(a topology.Arch, s topology.Service, natsUsers []string) (*StatefulSet, error) {
	tmpl, err := podTemplate(a, s, natsUsers)
	if err != nil {
		return nil, err
	}
	return &StatefulSet{
		TypeMeta: TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		Metadata: ObjectMeta{Name: s.Name, Labels: workloadLabels(a, s)},
		Spec: StatefulSetSpec{
			ServiceName: s.Name,
			Replicas:    ptr(int32(1)),
			// The cluster's nodes must all start to elect a leader: no one-by-one rollout.
			PodManagementPolicy: "Parallel",
			Selector:            LabelSelector{MatchLabels: map[string]string{LabelName: s.Name}},
			Template:            tmpl,
			VolumeClaimTemplates: []ClaimTemplate{{
				Metadata: ObjectMeta{Name: "data"},
				Spec: ClaimSpec{
					AccessModes: []string{"ReadWriteOnce"},
					// cmd/nats-server's JetStream file store is limited to 8 GiB.
					Resources: Resources{Requests: map[string]string{"storage": "10Gi"}},
				},
			}},
		},
	}, nil
}

func deployment(a topology.Arch, s topology.Service, natsUsers []string) (*Deployment, error) {
	tmpl, err := podTemplate(a, s, natsUsers)
	if err != nil {
		return nil, err
	}
	d := &Deployment{
		TypeMeta: TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: ObjectMeta{Name: s.Name, Labels: workloadLabels(a, s)},
		Spec: DeploymentSpec{
			Replicas:             ptr(replicas(s)),
			RevisionHistoryLimit: ptr(int32(3)),
			Selector:             LabelSelector{MatchLabels: map[string]string{LabelName: s.Name}},
			Template:             tmpl,
		},
	}
	if replicas(s) == 1 {
		// A sole process must never overlap its successor.
		d.Spec.Strategy = &Strategy{Type: "Recreate"}
	}
	return d, nil
}

// PKIVolume is the renewer's volume: the stack's PKI folder, mounted read-write at
// topology.PKIMount.
const PKIVolume = "pki"

// Renewer is the stack's renewer (topology.NewRenewer) as a Deployment for a machine whose
// identities are host folders, as compose's are: `mitosis kube play` on Podman plays it beside
// an overlay, so that pods left up past half a week keep their TLS. Its volume PKIVolume is
// the host folder pki, the stack's (identity.OpenCA: the CA of stackName). No overlay holds
// it: a cluster's identities are Secrets, renewed by what makes them (cert-manager...).
func Renewer(stackName, pki string) (*Deployment, error) {
	r := topology.NewRenewer()
	a := topology.Arch{Name: topology.Renewer, Services: []topology.Service{r}}
	args, env, err := topology.Expand(r, topology.Resolver{
		Listen: func(port int) string { return anyInterface(r, port) },
		PKI:    topology.PKIMount,
		Stack:  stackName,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Name, err)
	}
	c := Container{
		Name:            r.Name,
		Image:           Image(r.Image),
		ImagePullPolicy: "IfNotPresent",
		Args:            args,
		Resources:       resources(r),
		SecurityContext: hardened(),
		VolumeMounts:    []VolumeMount{{Name: PKIVolume, MountPath: topology.PKIMount}},
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		c.Env = append(c.Env, EnvVar{Name: k, Value: env[k]})
	}
	c.ReadinessProbe, c.LivenessProbe = probes(r)
	labels := workloadLabels(a, r)
	return &Deployment{
		TypeMeta: TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		Metadata: ObjectMeta{Name: r.Name, Labels: labels},
		Spec: DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: LabelSelector{MatchLabels: map[string]string{LabelName: r.Name}},
			// Two renewers of one folder take turns on its lock; still, one at a time.
			Strategy: &Strategy{Type: "Recreate"},
			Template: PodTemplate{
				Metadata: ObjectMeta{Labels: labels},
				Spec: PodSpec{
					AutomountServiceAccountToken: ptr(false),
					EnableServiceLinks:           ptr(false),
					SecurityContext:              podSecurity(nonRoot),
					Containers:                   []Container{c},
					Volumes:                      []Volume{{Name: PKIVolume, HostPath: &HostPath{Path: pki, Type: "Directory"}}},
				},
			},
		},
	}, nil
}

// stateful lists the services of the base: those with a data directory, the same in every
// architecture (the topology gives each its own NATS, of one description).
func stateful(t topology.Topology) ([]topology.Service, error) {
	var out []topology.Service
	byName := map[string]topology.Service{}
	for _, a := range t.Archs {
		for _, s := range a.Services {
			if s.DataDir == "" {
				continue
			}
			if prev, ok := byName[s.Name]; ok {
				if !reflect.DeepEqual(prev, s) {
					return nil, fmt.Errorf("%s differs between architectures: the base holds one", s.Name)
				}
				continue
			}
			byName[s.Name] = s
			out = append(out, s)
		}
	}
	return out, nil
}

// baseObjects are deploy/k8s/base: the stateful services.
func baseObjects(t topology.Topology) ([]Object, error) {
	svcs, err := stateful(t)
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, s := range svcs {
		a := t.Archs[0]
		// NATS's users: every process of every architecture of t (the base is theirs), and
		// the admin.
		ss, err := statefulSet(a, s, natsauth.Users(t))
		if err != nil {
			return nil, err
		}
		out = append(out, service(a, s), ss)
	}
	return out, nil
}

// archObjects are one overlay's own files: each stateless service's Deployment and Service.
func archObjects(a topology.Arch, natsUsers []string) (map[string][]Object, []string, error) {
	files := map[string][]Object{}
	var order []string
	for _, s := range a.Services {
		if s.DataDir != "" {
			continue
		}
		d, err := deployment(a, s, natsUsers)
		if err != nil {
			return nil, nil, err
		}
		files[s.Name] = []Object{d, service(a, s)}
		order = append(order, s.Name)
	}
	return files, order, nil
}

// Kube returns a shipped overlay built (Shipped, from the topologies/ the current folder is
// in): every object `kubectl kustomize deploy/k8s/overlays/<overlay>` prints (the same objects,
// in the renderer's order). It is what `mitosis kube render` writes and what `mitosis kube
// play` adapts to Podman.
func Kube(overlay string, opts Options) ([]Object, error) {
	t, err := Shipped("")
	if err != nil {
		return nil, err
	}
	return KubeOf(t, overlay, opts)
}

// KubeOf returns the overlay of t (one of Overlays(t)) built, as Kube does.
func KubeOf(t topology.Topology, overlay string, opts Options) ([]Object, error) {
	if err := checkNames(t); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	name := overlay
	if overlay == OverlayProduction {
		name = OverlayServices
	}
	a, ok := arch(t, name)
	if !ok {
		return nil, fmt.Errorf("unknown overlay %q (want one of %s)", overlay, strings.Join(Overlays(t), ", "))
	}
	objs, err := baseObjects(t)
	if err != nil {
		return nil, err
	}
	files, order, err := archObjects(a, natsauth.Users(t))
	if err != nil {
		return nil, err
	}
	for _, name := range order {
		objs = append(objs, files[name]...)
	}
	objs = append(objs, networkPolicies(a)...)
	if overlay == OverlayProduction {
		extra, err := collectorObjects(opts)
		if err != nil {
			return nil, err
		}
		conf, err := natsConfig(natsauth.Users(t))
		if err != nil {
			return nil, err
		}
		objs = append(objs, conf)
		objs = append(objs, extra...)
		objs = append(objs, productionPolicies()...)
		if err := production(objs, a, opts); err != nil {
			return nil, err
		}
	}
	for _, o := range objs {
		_, m := o.Meta()
		m.Namespace = Namespace(overlay)
	}
	return objs, nil
}

// Workload returns the pod template of a Deployment or StatefulSet (nil for other kinds).
func Workload(o Object) *PodTemplate {
	switch w := o.(type) {
	case *Deployment:
		return &w.Spec.Template
	case *StatefulSet:
		return &w.Spec.Template
	}
	return nil
}
