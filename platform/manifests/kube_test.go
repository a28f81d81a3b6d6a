package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// repoRoot is the repository holding this package (platform/manifests).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// shipped is the topology of the checked-in files.
func shipped(t *testing.T) topology.Topology {
	t.Helper()
	topo, err := Shipped(filepath.Join(repoRoot(t), "topologies"))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestCheckedInFilesMatchTopology is `mitosis deploy check` as a test: the files in deploy/
// and compose/ are what the topology renders now.
func TestCheckedInFilesMatchTopology(t *testing.T) {
	files, err := Files(shipped(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	drift, err := Check(repoRoot(t), files)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drift {
		t.Errorf("%s (run `mitosis deploy render`)", d)
	}
}

func TestCheckFindsDrift(t *testing.T) {
	dir := t.TempDir()
	files, err := Files(shipped(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	if drift, err := Check(dir, files); err != nil || len(drift) != 0 {
		t.Fatalf("fresh render: drift %v, err %v", drift, err)
	}
	edited := filepath.Join(dir, "deploy/k8s/overlays/services/cart.yaml")
	b, _ := os.ReadFile(edited)
	if err := os.WriteFile(edited, bytes.Replace(b, []byte("replicas: 2"), []byte("replicas: 5"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "compose/compose.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy/ecs/services/old-task.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy/k8s/README.md"), []byte("by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	drift, err := Check(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(drift)
	for _, want := range []string{
		"deploy/k8s/overlays/services/cart.yaml: differs",
		"compose/compose.yaml: missing",
		"deploy/ecs/services/old-task.json: not rendered by the topology",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("drift %s lacks %q", got, want)
		}
	}
	if len(drift) != 3 {
		t.Errorf("drift %s: want exactly 3 (README.md is written by hand)", got)
	}
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	if drift, err := Check(dir, files); err != nil || len(drift) != 0 {
		t.Fatalf("after Write (which removes stale files): drift %v, err %v", drift, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "deploy/k8s/README.md")); err != nil {
		t.Errorf("Write removed a README.md written by hand: %v", err)
	}
}

// decodeStream reads a YAML stream into one generic object per document.
func decodeStream(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func objKey(m map[string]any) string {
	md, _ := m["metadata"].(map[string]any)
	return fmt.Sprintf("%v/%v/%v", m["kind"], md["namespace"], md["name"])
}

// TestKustomizeBuildsWhatKubeReturns checks that the checked-in kustomize tree, built by
// kustomize itself, gives exactly the objects Kube returns (which `kube render` prints and
// `kube play` runs): the patches and the Go edits of the production overlay agree.
func TestKustomizeBuildsWhatKubeReturns(t *testing.T) {
	topo := shipped(t)
	dir := t.TempDir()
	files, err := Files(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	checkKustomize(t, dir, topo)
}

// checkKustomize builds every overlay of topo rendered under dir with kustomize (its Go API,
// the one kubectl embeds) and compares the objects with what KubeOf returns.
func checkKustomize(t *testing.T, dir string, topo topology.Topology) {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	for _, overlay := range Overlays(topo) {
		t.Run("kustomize/"+overlay, func(t *testing.T) {
			res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(dir, "deploy/k8s/overlays", overlay))
			if err != nil {
				t.Fatalf("kustomize build: %v", err)
			}
			out, err := res.AsYaml()
			if err != nil {
				t.Fatalf("kustomize build: %v", err)
			}
			objs, err := KubeOf(topo, overlay, Options{})
			if err != nil {
				t.Fatal(err)
			}
			mine, err := MarshalObjects(objs)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]map[string]any{}
			for _, m := range decodeStream(t, out) {
				want[objKey(m)] = m
			}
			got := map[string]map[string]any{}
			for _, m := range decodeStream(t, mine) {
				if _, dup := got[objKey(m)]; dup {
					t.Errorf("Kube returns %s twice", objKey(m))
				}
				got[objKey(m)] = m
			}
			for k, w := range want {
				g, ok := got[k]
				if !ok {
					t.Errorf("kustomize builds %s, Kube does not return it", k)
					continue
				}
				if !reflect.DeepEqual(g, w) {
					gj, _ := json.MarshalIndent(g, "", " ")
					wj, _ := json.MarshalIndent(w, "", " ")
					t.Errorf("%s differs:\nKube:      %s\nkustomize: %s", k, gj, wj)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("Kube returns %s, kustomize does not build it", k)
				}
			}
		})
	}
}

// TestKubeInvariants checks what every shipped overlay promises.
func TestKubeInvariants(t *testing.T) {
	checkKube(t, shipped(t))
}

// sole reports whether a service runs as its group's only process: the group of every
// context and the edge (the monolith), which takes over every unfinished checkout at start.
func sole(s topology.Service) bool {
	g, err := bounded.ParseGroup(s.Group)
	return err == nil && g.Whole() && g.Edge
}

// peerAddr matches a value that names a peer: host:port, maybe behind a scheme.
var peerAddr = regexp.MustCompile(`^(?:[a-z]+://)?([a-z][-a-z0-9]*):(\d+)$`)

// checkKube checks what every overlay of topo promises: probes, limits, hardening, replicas
// (and SHOP_SOLE_REPLICA to match), a Service for every workload, every port a process listens
// on declared, every peer a process is told of served by a Service on that port, and
// NetworkPolicies that let through the table's calls and nothing else (checkPolicies).
func checkKube(t *testing.T, topo topology.Topology) {
	t.Helper()
	for _, overlay := range Overlays(topo) {
		t.Run("kube/"+overlay, func(t *testing.T) {
			objs, err := KubeOf(topo, overlay, Options{})
			if err != nil {
				t.Fatal(err)
			}
			name, extra := overlay, 0
			if overlay == OverlayProduction {
				name, extra = OverlayServices, 1 // the collector
			}
			a, ok := arch(topo, name)
			if !ok {
				t.Fatalf("overlay %s of no architecture", overlay)
			}
			services := map[string]*Service{}
			workloads := 0
			for _, o := range objs {
				tm, m := o.Meta()
				if m.Namespace != Namespace(overlay) {
					t.Errorf("%s %s in namespace %q", tm.Kind, m.Name, m.Namespace)
				}
				if s, ok := o.(*Service); ok {
					services[m.Name] = s
				}
			}
			for _, o := range objs {
				tm, m := o.Meta()
				tmpl := Workload(o)
				if tmpl == nil {
					continue
				}
				workloads++
				what := tm.Kind + " " + m.Name
				checkPod(t, what, tmpl, overlay)
				svc, ok := services[m.Name]
				if !ok {
					t.Errorf("%s has no Service", what)
				} else if !reflect.DeepEqual(svc.Spec.Selector, selectorOf(o)) {
					t.Errorf("%s: Service selects %v, the workload's pods are %v", what, svc.Spec.Selector, selectorOf(o))
				}
				for k, v := range selectorOf(o) {
					if tmpl.Metadata.Labels[k] != v {
						t.Errorf("%s: selector %s=%s does not match its pods' labels %v", what, k, v, tmpl.Metadata.Labels)
					}
				}
				for _, c := range tmpl.Spec.Containers {
					checkAddresses(t, what, c, services)
				}
				switch w := o.(type) {
				case *StatefulSet:
					want := int32(1)
					if overlay == OverlayProduction {
						want = NATSClusterSize
					}
					if *w.Spec.Replicas != want {
						t.Errorf("%s: %d replicas, want %d", what, *w.Spec.Replicas, want)
					}
				case *Deployment:
					if m.Name == CollectorName {
						continue
					}
					s, ok := a.Service(m.Name)
					if !ok {
						t.Errorf("%s is no service of %s", what, a.Name)
						continue
					}
					want := int32(max(2, s.Count())) // the topology's replicas, two at least
					if sole(s) {
						want = 1 // it recovers every unfinished checkout at start
						if w.Spec.Strategy == nil || w.Spec.Strategy.Type != "Recreate" {
							t.Errorf("%s: a sole replica must be recreated, not rolled", what)
						}
					}
					if *w.Spec.Replicas != want {
						t.Errorf("%s: %d replicas, want %d", what, *w.Spec.Replicas, want)
					}
					// A host that believes it is alone takes over its group's unfinished work
					// at once: only a sole replica may say so.
					for _, c := range w.Spec.Template.Spec.Containers {
						found := false
						for _, e := range c.Env {
							if e.Name == soleReplicaEnv {
								found = true
								if (e.Value == "true") != (want == 1) {
									t.Errorf("%s: %s=%s with %d replicas", what, soleReplicaEnv, e.Value, want)
								}
							}
						}
						if !found {
							t.Errorf("%s: no %s", what, soleReplicaEnv)
						}
					}
				}
			}
			if workloads != len(a.Services)+extra {
				t.Errorf("%d workloads, the topology has %d services (+%d)", workloads, len(a.Services), extra)
			}
			checkPolicies(t, a, overlay, objs)
		})
	}
}

// checkAddresses checks that a container declares every port it listens on (0.0.0.0:PORT or
// $(POD_IP):PORT in
// its arguments or environment) and that every peer it is told of (host:port) is a Service
// of the overlay with that port.
func checkAddresses(t *testing.T, what string, c Container, services map[string]*Service) {
	t.Helper()
	values := slices.Clone(c.Args)
	for _, e := range c.Env {
		values = append(values, e.Value)
	}
	for _, v := range values {
		port, ok := strings.CutPrefix(v, "0.0.0.0:")
		if !ok {
			port, ok = strings.CutPrefix(v, "$("+PodIPEnv+"):")
		}
		if ok {
			if !slices.ContainsFunc(c.Ports, func(p ContainerPort) bool { return strconv.Itoa(int(p.ContainerPort)) == port }) {
				t.Errorf("%s: listens on %s, a port it does not declare (%+v)", what, v, c.Ports)
			}
			continue
		}
		m := peerAddr.FindStringSubmatch(v)
		if m == nil {
			continue
		}
		svc, ok := services[m[1]]
		if !ok {
			t.Errorf("%s: told of %s, but the overlay has no Service %s", what, v, m[1])
			continue
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p ServicePort) bool { return strconv.Itoa(int(p.Port)) == m[2] }) {
			t.Errorf("%s: told of %s, but Service %s has no port %s", what, v, m[1], m[2])
		}
	}
}

func selectorOf(o Object) map[string]string {
	switch w := o.(type) {
	case *Deployment:
		return w.Spec.Selector.MatchLabels
	case *StatefulSet:
		return w.Spec.Selector.MatchLabels
	}
	return nil
}

func checkPod(t *testing.T, what string, tmpl *PodTemplate, overlay string) {
	t.Helper()
	ps := tmpl.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("%s: pod security context %+v does not run as non-root", what, ps)
	}
	for _, c := range tmpl.Spec.Containers {
		what := what + "/" + c.Name
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: readiness %v, liveness %v", what, c.ReadinessProbe, c.LivenessProbe)
		}
		if c.Resources == nil || c.Resources.Limits["cpu"] == "" || c.Resources.Limits["memory"] == "" ||
			c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
			t.Errorf("%s: resources %+v", what, c.Resources)
		}
		sc := c.SecurityContext
		if sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || *sc.Privileged ||
			!*sc.RunAsNonRoot || sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("%s: security context %+v is not hardened", what, sc)
		}
		if c.ImagePullPolicy != "IfNotPresent" {
			t.Errorf("%s: imagePullPolicy %q", what, c.ImagePullPolicy)
		}
		local := strings.HasPrefix(c.Image, LocalRepo+"/")
		if (overlay == OverlayProduction) == local {
			t.Errorf("%s: image %s in overlay %s", what, c.Image, overlay)
		}
		for _, e := range c.Env {
			if strings.Contains(e.Value, "{{") || strings.Contains(e.Value, "\x00") {
				t.Errorf("%s: %s=%q is not expanded", what, e.Name, e.Value)
			}
			if e.Name == "SHOP_ADMIN_TOKEN" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.Value != "") {
				t.Errorf("%s: the admin token must come from the %s Secret", what, AdminSecret)
			}
		}
		_, arch := tmpl.Metadata.Labels[stack.LabelArch]
		hasOTel := false
		replicas := ""
		for _, e := range c.Env {
			hasOTel = hasOTel || e.Name == "OTEL_EXPORTER_OTLP_ENDPOINT"
			if e.Name == natsjs.ReplicasEnv {
				replicas = e.Value
			}
		}
		if hasOTel != (overlay == OverlayProduction && arch) {
			t.Errorf("%s: OTLP endpoint set %v in overlay %s", what, hasOTel, overlay)
		}
		want := "" // one copy, as a lone NATS server has
		if overlay == OverlayProduction && arch {
			want = strconv.Itoa(NATSClusterSize) // every bucket and stream on every node
		}
		if replicas != want {
			t.Errorf("%s: %s=%q in overlay %s, want %q", what, natsjs.ReplicasEnv, replicas, overlay, want)
		}
	}
}

func TestNATSImageIsThePinnedModule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "platform", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("platform/go.mod does not require nats-server")
	}
	if want := ":" + string(m[1]) + "-alpine"; !strings.HasSuffix(NATSImage, want) {
		t.Errorf("NATSImage %s: the pinned nats-server is %s", NATSImage, m[1])
	}
}

// Every workload that serves or calls gRPC mounts its identity from its Secret, read-only,
// and is told where; the others have none. Platforms without identities say plainly that
// they run without (SHOP_INSECURE).
func TestIdentitiesFromSecrets(t *testing.T) {
	topo, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	eachWorkload(t, topo, func(a topology.Arch, s topology.Service, tmpl *PodTemplate) {
		id := s.Identity()
		var secret, mount, env bool
		for _, v := range tmpl.Spec.Volumes {
			secret = secret || (v.Name == TLSVolume && v.Secret != nil && v.Secret.SecretName == TLSSecret(id) &&
				v.Secret.DefaultMode != nil && *v.Secret.DefaultMode == 0o440)
		}
		c := tmpl.Spec.Containers[0]
		for _, vm := range c.VolumeMounts {
			mount = mount || (vm.Name == TLSVolume && vm.MountPath == topology.TLSMount && vm.ReadOnly)
		}
		dirEnv := topology.TLSDirEnv
		if s.Group == "" {
			dirEnv = topology.NATSTLSDirEnv // NATS's own (platform/cmd/nats-server -tls)
		}
		for _, e := range c.Env {
			env = env || (e.Name == dirEnv && e.Value == topology.TLSMount)
			if e.Name == topology.InsecureEnv {
				t.Errorf("%s/%s runs insecure in Kubernetes", a.Name, s.Name)
			}
			// NATS has its identity there too: TLS, and only TLS.
			if e.Name == topology.NATSURLEnv && !strings.HasPrefix(e.Value, "tls://") {
				t.Errorf("%s/%s: %s=%s in Kubernetes, where NATS speaks TLS only", a.Name, s.Name, e.Name, e.Value)
			}
		}
		if want := id != ""; secret != want || mount != want || env != want {
			t.Errorf("%s/%s (identity %q): secret volume %v, mount %v, %s %v", a.Name, s.Name, id, secret, mount, dirEnv, env)
		}
	})
}

// TestGRPCServicesAnswerProbesOnTheirHealthPort: the kubelet presents no certificate, so a
// process that serves gRPC only over mutual TLS is probed on its plain-HTTP health port
// (services/host, SHOP_HEALTH_ADDR): readiness is /readyz there, what its gRPC health says,
// and liveness /healthz; no probe of a group is a TCP connect, which would call a process
// ready while its store or a peer is down. An edge keeps its own /readyz and /healthz.
func TestGRPCServicesAnswerProbesOnTheirHealthPort(t *testing.T) {
	var seen int
	eachWorkload(t, shipped(t), func(a topology.Arch, s topology.Service, tmpl *PodTemplate) {
		if s.Group == "" {
			return // NATS: its own probes
		}
		c := tmpl.Spec.Containers[0]
		port, path := int32(s.Probe.Port), s.Probe.Path
		if s.Probe.Kind == topology.GRPC {
			seen++
			port, path = topology.HealthPort, "/readyz"
			var env, named bool
			for _, e := range c.Env {
				env = env || (e.Name == bounded.HealthAddrEnv && e.Value == "$("+PodIPEnv+"):"+strconv.Itoa(topology.HealthPort))
			}
			for _, p := range c.Ports {
				named = named || (p.ContainerPort == topology.HealthPort && p.Name == "health")
			}
			if !env || !named {
				t.Errorf("%s/%s: %s on the pod's IP %v, container port %d named health %v", a.Name, s.Name, bounded.HealthAddrEnv, env, topology.HealthPort, named)
			}
		}
		r, l := c.ReadinessProbe, c.LivenessProbe
		if r == nil || l == nil || r.HTTPGet == nil || l.HTTPGet == nil || r.TCPSocket != nil || l.TCPSocket != nil {
			t.Errorf("%s/%s: readiness %+v, liveness %+v, want HTTP GETs", a.Name, s.Name, r, l)
			return
		}
		if r.HTTPGet.Port != port || r.HTTPGet.Path != path || l.HTTPGet.Port != port || l.HTTPGet.Path != "/healthz" {
			t.Errorf("%s/%s: readiness GET %s on %d, liveness GET %s on %d; want %s and /healthz on %d",
				a.Name, s.Name, r.HTTPGet.Path, r.HTTPGet.Port, l.HTTPGet.Path, l.HTTPGet.Port, path, port)
		}
	})
	if seen == 0 {
		t.Fatal("no service that serves gRPC only: nothing checked")
	}
}

// eachWorkload calls fn with every workload of topo's overlays that runs one of its
// services: the architecture, the service and the workload's pod template.
func eachWorkload(t *testing.T, topo topology.Topology, fn func(a topology.Arch, s topology.Service, tmpl *PodTemplate)) {
	t.Helper()
	for _, a := range topo.Archs {
		objs, err := KubeOf(topo, a.Name, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			tmpl := Workload(o)
			if tmpl == nil {
				continue
			}
			_, m := o.Meta()
			if s, ok := a.Service(m.Name); ok {
				fn(a, s, tmpl)
			}
		}
	}
}

// No rendered file runs a service insecure (SHOP_INSECURE): every platform carries the
// identities. Those where no folder can be mounted (Beanstalk, ECS) name none: their
// identities come in PEM variables.
func TestNoRenderedFileRunsInsecure(t *testing.T) {
	topo, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	all, err := Files(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range all {
		if strings.Contains(string(b), topology.InsecureEnv) {
			t.Errorf("%s names %s", path, topology.InsecureEnv)
		}
	}
	files, err := beanstalkFiles(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for path, b := range files {
		for _, no := range []string{topology.TLSDirEnv, topology.NATSTLSDirEnv, ComposePKIVar} {
			if strings.Contains(string(b), no) {
				t.Errorf("%s names %s: Beanstalk mounts no identity folder", path, no)
			}
		}
	}
	ecs, err := ECS(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ecs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, no := range []string{topology.TLSDirEnv, topology.NATSTLSDirEnv, "tls://"} {
			if strings.Contains(string(b), no) {
				t.Errorf("ECS %s names %s", e.Name, no)
			}
		}
	}
}
