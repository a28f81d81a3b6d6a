package kube

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

func TestForPodman(t *testing.T) {
	full := shippedTopology(t) // monolith, services and the hybrid
	refs := map[string]string{}
	for _, im := range full.Images() {
		refs[im.Name] = "localhost/test/" + im.Name + ":abc"
	}
	for _, a := range full.Archs {
		t.Run(a.Name, func(t *testing.T) {
			objs, err := manifests.Kube(a.Name, manifests.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tls := map[string]string{}
			for _, id := range full.Identities() {
				tls[id] = "/pki/" + id
			}
			pw := map[string]string{}
			for _, u := range natsauth.Users(full) {
				pw[u] = "pw-" + u
			}
			ad := Adapt{Prefix: "p", Edge: "127.0.0.1:18999", Images: refs, AdminToken: "tok", TLS: tls, NATSPasswords: pw}
			ws, err := ForPodman(a.Name, objs, ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(ws) != len(a.Services) {
				t.Fatalf("%d workloads for %d services", len(ws), len(a.Services))
			}
			for _, w := range ws {
				s, _ := a.Service(w.Service)
				if w.Name != "p-"+a.Name+"-"+s.Name {
					t.Errorf("workload %s", w.Name)
				}
				y, err := w.YAML()
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(y), "kind: Service\n") || strings.Contains(string(y), "StatefulSet") || strings.Contains(string(y), "emptyDir") ||
					strings.Contains(string(y), "Probe") || strings.Contains(string(y), "secretKeyRef") || strings.Contains(string(y), "namespace") {
					t.Errorf("%s: Podman cannot play this:\n%s", w.Name, y)
				}
				var dep *manifests.Deployment
				claims := 0
				for _, o := range w.Objects {
					switch v := o.(type) {
					case *manifests.Deployment:
						dep = v
					case *manifests.PersistentVolumeClaim:
						claims++
						if !strings.HasPrefix(v.Metadata.Name, w.Name+"-") || v.Metadata.Labels[stack.LabelStack] != "p" {
							t.Errorf("claim %s, labels %v", v.Metadata.Name, v.Metadata.Labels)
						}
					default:
						t.Errorf("%s: unexpected %T", w.Name, o)
					}
				}
				if (s.DataDir != "") != (claims == 1) {
					t.Errorf("%s: %d claims with data dir %q", w.Name, claims, s.DataDir)
				}
				if dep == nil || *dep.Spec.Replicas != 1 {
					t.Fatalf("%s: want one Deployment of one replica", w.Name)
				}
				l := dep.Spec.Template.Metadata.Labels
				if l[stack.LabelStack] != "p" || l[stack.LabelArch] != a.Name || l[stack.LabelService] != s.Name {
					t.Errorf("%s: pod labels %v", w.Name, l)
				}
				c := dep.Spec.Template.Spec.Containers[0]
				if c.Image != refs[s.Image] || c.ImagePullPolicy != "Never" {
					t.Errorf("%s: image %s (%s)", w.Name, c.Image, c.ImagePullPolicy)
				}
				if s.Edge != "" {
					if len(c.Ports) != 1 || c.Ports[0].HostIP != "127.0.0.1" || c.Ports[0].HostPort != 18999 || c.Ports[0].ContainerPort != int32(s.Ports[0]) {
						t.Errorf("%s: edge ports %+v", w.Name, c.Ports)
					}
				} else if len(c.Ports) != 0 {
					t.Errorf("%s: publishes %+v", w.Name, c.Ports)
				}
				// No collector is played: nothing exports to localhost:4318.
				env := map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				if env["OTEL_TRACES_EXPORTER"] != "none" || env["OTEL_METRICS_EXPORTER"] != "none" {
					t.Errorf("%s: exports telemetry to no collector: %v", w.Name, env)
				}
				for _, e := range c.Env {
					if e.Name == "SHOP_ADMIN_TOKEN" && e.Value != "tok" {
						t.Errorf("%s: admin token %+v", w.Name, e)
					}
					// Its own NATS user, the password in its URL; NATS every user's.
					if u := natsauth.UserOf(s); e.Name == topology.NATSURLEnv && e.Value != "tls://"+u+":pw-"+u+"@nats:4222" {
						t.Errorf("%s: %+v", w.Name, e)
					}
					if u, ok := strings.CutPrefix(e.Name, "NATS_PASSWORD_"); ok && e.Value != "pw-"+strings.ReplaceAll(strings.ToLower(u), "_", "-") {
						t.Errorf("%s: %+v", w.Name, e)
					}
					// Podman resolves no status.podIP, nor $(VAR) references.
					if e.Name == manifests.PodIPEnv || strings.Contains(e.Value, "$(") {
						t.Errorf("%s: %+v left for Podman", w.Name, e)
					}
				}
				for _, a := range c.Args {
					if strings.Contains(a, "$(") {
						t.Errorf("%s: argument %q left for Podman", w.Name, a)
					}
				}
				// The identity's Secret is its folder on the host, mounted read-only.
				var mounted bool
				for _, v := range dep.Spec.Template.Spec.Volumes {
					if v.Name == manifests.TLSVolume {
						mounted = v.HostPath != nil && v.HostPath.Path == "/pki/"+s.Identity() && v.Secret == nil
					}
				}
				if mounted != (s.Identity() != "") {
					t.Errorf("%s (identity %q): identity volume %v", w.Name, s.Identity(), dep.Spec.Template.Spec.Volumes)
				}
				for _, m := range c.VolumeMounts {
					found := false
					for _, v := range dep.Spec.Template.Spec.Volumes {
						found = found || v.Name == m.Name
					}
					if !found {
						t.Errorf("%s: mount %s of no volume", w.Name, m.Name)
					}
				}
			}
		})
	}
}

// With the stack's PKI folder, the renewer is one workload more: the stack's (the prefix's),
// in no network, its image the loaded one, the folder mounted from the host read-write, no
// port published and no probe; without it, none.
func TestForPodmanPlaysTheRenewer(t *testing.T) {
	full := shippedTopology(t)
	refs := map[string]string{topology.RenewerService: "localhost/test/renewer:abc"}
	tls := map[string]string{}
	for _, im := range full.Images() {
		refs[im.Name] = "localhost/test/" + im.Name + ":abc"
	}
	for _, id := range full.Identities() {
		tls[id] = "/srv/pki/" + id
	}
	objs, err := manifests.Kube(topology.Monolith, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ad := Adapt{Prefix: "p", Edge: "127.0.0.1:18999", Images: refs, AdminToken: "tok", TLS: tls, PKI: "/srv/pki",
		NATSPasswords: map[string]string{}}
	for _, u := range natsauth.Users(full) {
		ad.NATSPasswords[u] = "pw"
	}
	ws, err := ForPodman(topology.Monolith, objs, ad)
	if err != nil {
		t.Fatal(err)
	}
	var r *Workload
	for i := range ws {
		if ws[i].Service == topology.RenewerService {
			r = &ws[i]
		}
	}
	if r == nil {
		t.Fatalf("no renewer among %d workloads", len(ws))
	}
	if r.Name != "p-monolith-renewer" || playNetwork(*r, "p-monolith") != "none" {
		t.Errorf("renewer %s played into %s", r.Name, playNetwork(*r, "p-monolith"))
	}
	if len(r.Objects) != 1 {
		t.Fatalf("renewer: %d objects", len(r.Objects))
	}
	dep := r.Objects[0].(*manifests.Deployment)
	pod := dep.Spec.Template.Spec
	if l := dep.Spec.Template.Metadata.Labels; l[stack.LabelStack] != "p" || l[stack.LabelArch] != topology.Monolith || l[stack.LabelService] != topology.RenewerService {
		t.Errorf("renewer's labels %v: kube down would not find it", l)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].HostPath == nil || pod.Volumes[0].HostPath.Path != "/srv/pki" {
		t.Errorf("renewer's volumes %+v, want the PKI folder alone", pod.Volumes)
	}
	c := pod.Containers[0]
	if c.Image != refs[topology.RenewerService] || c.ImagePullPolicy != "Never" || len(c.Ports) != 0 || c.ReadinessProbe != nil || c.LivenessProbe != nil {
		t.Errorf("renewer's container: image %s (%s), ports %v, probes %v %v", c.Image, c.ImagePullPolicy, c.Ports, c.ReadinessProbe, c.LivenessProbe)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != topology.PKIMount || c.VolumeMounts[0].ReadOnly {
		t.Errorf("renewer's mounts %+v, want the PKI folder read-write at %s", c.VolumeMounts, topology.PKIMount)
	}
	if args := strings.Join(c.Args, " "); !strings.Contains(args, "-pki "+topology.PKIMount) || !strings.Contains(args, "-stack p ") {
		t.Errorf("renewer's arguments %q: want the mounted folder and the stack p", args)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser != imagebuild.UID {
		t.Errorf("renewer's pod security %+v: want the images' user, who owns the CA's files", pod.SecurityContext)
	}

	ad.PKI = ""
	if ws, err := ForPodman(topology.Monolith, objs, ad); err != nil || slices.ContainsFunc(ws, func(w Workload) bool { return w.Service == topology.RenewerService }) {
		t.Errorf("without a PKI folder: %v, renewer played", err)
	}
}

func TestForPodmanRefuses(t *testing.T) {
	objs, err := manifests.Kube(topology.Monolith, manifests.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ForPodman(manifests.OverlayProduction, objs, Adapt{}); err == nil {
		t.Error("the production overlay played on Podman")
	}
	if _, err := ForPodman(topology.Monolith, objs, Adapt{Prefix: "p", Edge: "127.0.0.1:1", Images: map[string]string{},
		TLS: map[string]string{"nats-server": "/pki/nats-server", "monolith": "/pki/monolith"}}); err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Errorf("missing images: %v", err)
	}
	if _, err := ForPodman(topology.Monolith, objs, Adapt{Prefix: "p", Edge: "nonsense", Images: map[string]string{"monolith": "x", "nats-server": "y"}}); err == nil {
		t.Error("a bad edge was accepted")
	}
}

// shippedTopology is the topology of the repository's deploy files: every file of its
// topologies/.
func shippedTopology(t *testing.T) topology.Topology {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	topo, err := manifests.Shipped(filepath.Join(filepath.Dir(filepath.Dir(wd)), "topologies"))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}
