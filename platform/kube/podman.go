// Package kube runs the Kubernetes manifests of deploy/k8s on Podman, through the REST API's
// kube play (the v4 bindings), so that what ships for clusters is tested on this machine:
// `mitosis kube play` takes an overlay as platform/manifests renders it (the same objects
// `kubectl kustomize` builds), adapts what Podman cannot play (ForPodman), plays each workload
// into a network of its own with DNS, and waits for the edge's /readyz on its published port.
// `mitosis kube down` removes exactly what it made (labels), `kube render` prints an overlay,
// `kube load` puts the built images into Podman under the names compose.yaml and the
// manifests use.
//
// It is not a Kubernetes: no Services, no scheduling, one replica per workload. Build with the
// Podman bindings' tags (remote exclude_graphdriver_btrfs btrfs_noversion
// exclude_graphdriver_devicemapper containers_image_openpgp).
package kube

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Workload is one service of an overlay as Podman plays it: one Deployment (and the volume
// claims of a StatefulSet), played into the architecture's network with the service's name
// as its DNS alias.
type Workload struct {
	Service string // the topology's name, the alias peers reach it by (nats, catalog...)
	Name    string // the Deployment's name; Podman names the pod <Name>-pod-0
	Objects []manifests.Object
}

// YAML is the workload's kube YAML.
func (w Workload) YAML() ([]byte, error) { return manifests.MarshalObjects(w.Objects) }

// Pod is the name Podman gives the workload's only pod.
func (w Workload) Pod() string { return w.Name + "-pod-0" }

// Adapt says how ForPodman adapts an overlay.
type Adapt struct {
	Prefix     string            // every name starts with it: <Prefix>-<arch>-<service>
	Edge       string            // host:port the edge is published on (127.0.0.1 only)
	Images     map[string]string // image name -> reference loaded into Podman
	AdminToken string
	RequestKey string // the key of checkout request hashes
	// TLS are the host folders of the services' identities, by identity
	// (topology.Service.Identity; stack.Identities makes them): each replaces the Secret
	// volume the overlay mounts, read-only as there.
	TLS map[string]string
	// NATSPasswords are the NATS users' passwords, by user (natsauth.Passwords of the
	// overlay's topology): each replaces its key of the Secret manifests.NATSUsersSecret.
	NATSPasswords map[string]string
	// PKI is the stack's PKI folder (the CA of Prefix, and the folders of TLS): the stack's
	// renewer (manifests.Renewer) joins the workloads, with no network, and renews every
	// identity of it while the pods run. "" plays no renewer.
	PKI string
}

// ObjectName is the name of an overlay's workload in Podman.
func ObjectName(prefix, arch, service string) string { return stack.ObjectName(prefix, arch, service) }

// NetworkName is the network an architecture's workloads join.
func NetworkName(prefix, arch string) string { return prefix + "-" + arch }

// ForPodman adapts the objects of an architecture's overlay (monolith, services, hybrid...:
// any topology file's) to Podman 4's kube play.
// Each change stands for something Kubernetes does and Podman does not:
//
//   - Services are dropped: Podman ignores them. Peers find each other by the DNS alias each
//     workload gets in the network (the service's name, as a Service would give it).
//   - A StatefulSet becomes a Deployment and a PersistentVolumeClaim (a named volume): Podman
//     plays neither StatefulSets nor claim templates.
//   - One replica: a published host port cannot be shared, and no Service balances.
//   - No probes: Podman runs them inside the container (curl, nc), which the images, holding
//     only their binary, do not have. Readiness is checked from outside, on the edge.
//   - Container ports are dropped but the edge's, published on 127.0.0.1: Podman 4.3 would
//     publish every containerPort on the host, on all interfaces.
//   - emptyDir volumes are dropped: Podman 4.3 makes a named volume of the volume's name,
//     shared between plays; a read-only root gets a tmpfs /tmp from Podman anyway.
//   - Listen addresses on the pod's IP (status.podIP, which Podman does not resolve) listen
//     on every interface instead; NetworkPolicies are dropped with the Services.
//   - No collector is played: a container's telemetry export is off unless its overlay
//     names an OTLP endpoint (noExport).
//   - The admin token Secret becomes the variable's value, an identity's Secret volume the
//     host folder of that identity (Adapt.TLS); images are the loaded ones, never pulled;
//     names carry the prefix and objects the stack's labels (Down finds them).
//
// With Adapt.PKI, the stack's renewer is one more workload (topology.RenewerService), whose
// PKI folder is a host folder already.
func ForPodman(overlay string, objs []manifests.Object, o Adapt) ([]Workload, error) {
	if overlay == manifests.OverlayProduction {
		return nil, fmt.Errorf("overlay %q does not run on Podman (it is for EKS; want an architecture: %s, %s, hybrid...)", overlay, topology.Monolith, topology.Services)
	}
	t, err := topology.Get(overlay, topology.Options{Collector: topology.NoCollector, NoRenewer: true})
	if err != nil {
		return nil, err
	}
	arch := t.Archs[0]
	if o.PKI != "" {
		r, err := manifests.Renewer(o.Prefix, o.PKI)
		if err != nil {
			return nil, err
		}
		objs = append(slices.Clone(objs), r)
	}
	var out []Workload
	renewers := 0
	for _, obj := range objs {
		tm, m := obj.Meta()
		tmpl := manifests.Workload(obj)
		if tmpl == nil {
			continue // Services and the rest: see above
		}
		svc, ok := arch.Service(m.Name)
		if !ok && m.Name == topology.RenewerService && o.PKI != "" {
			svc, ok = topology.NewRenewer(), true
			renewers++
		}
		if !ok {
			return nil, fmt.Errorf("%s %s is not a service of the %s topology", tm.Kind, m.Name, overlay)
		}
		name := ObjectName(o.Prefix, overlay, svc.Name)
		labels := map[string]string{stack.LabelStack: o.Prefix, stack.LabelArch: overlay, stack.LabelService: svc.Name}
		w := Workload{Service: svc.Name, Name: name}
		pod := *tmpl
		pod.Metadata.Labels = maps.Clone(pod.Metadata.Labels)
		maps.Copy(pod.Metadata.Labels, labels)
		pod.Spec.Volumes = slices.DeleteFunc(slices.Clone(pod.Spec.Volumes), func(v manifests.Volume) bool { return v.EmptyDir != nil })
		for i, v := range pod.Spec.Volumes {
			if v.Secret == nil {
				continue
			}
			if v.Secret.SecretName != manifests.TLSSecret(svc.Identity()) || o.TLS[svc.Identity()] == "" {
				return nil, fmt.Errorf("%s: volume %s comes from Secret %s, which Podman does not have", svc.Name, v.Name, v.Secret.SecretName)
			}
			pod.Spec.Volumes[i] = manifests.Volume{Name: v.Name, HostPath: &manifests.HostPath{Path: o.TLS[svc.Identity()], Type: "Directory"}}
		}
		if ss, ok := obj.(*manifests.StatefulSet); ok {
			for _, ct := range ss.Spec.VolumeClaimTemplates {
				claim := name + "-" + ct.Metadata.Name
				w.Objects = append(w.Objects, &manifests.PersistentVolumeClaim{
					TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
					Metadata: manifests.ObjectMeta{Name: claim, Labels: labels},
					Spec:     ct.Spec,
				})
				pod.Spec.Volumes = append(pod.Spec.Volumes, manifests.Volume{Name: ct.Metadata.Name, PersistentVolumeClaim: &manifests.ClaimReference{ClaimName: claim}})
			}
		}
		keep := map[string]bool{}
		for _, v := range pod.Spec.Volumes {
			keep[v.Name] = true
		}
		pod.Spec.Containers = slices.Clone(pod.Spec.Containers)
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			image, _, _ := strings.Cut(strings.TrimPrefix(c.Image, manifests.LocalRepo+"/"), ":")
			ref, ok := o.Images[image]
			if !ok {
				return nil, fmt.Errorf("%s: image %s was not loaded", svc.Name, image)
			}
			c.Image, c.ImagePullPolicy = ref, "Never"
			c.ReadinessProbe, c.LivenessProbe = nil, nil
			c.Ports = nil
			if svc.Edge != "" {
				p, err := hostPort(o.Edge)
				if err != nil {
					return nil, err
				}
				c.Ports = []manifests.ContainerPort{{ContainerPort: int32(svc.Ports[0]), HostPort: p.port, HostIP: p.host, Protocol: "TCP"}}
			}
			c.VolumeMounts = slices.DeleteFunc(slices.Clone(c.VolumeMounts), func(vm manifests.VolumeMount) bool { return !keep[vm.Name] })
			// Podman resolves no status.podIP: listen on the container's every interface,
			// which in its pod network are loopback and the pod's address anyway.
			env := slices.DeleteFunc(slices.Clone(c.Env), func(e manifests.EnvVar) bool { return e.Name == manifests.PodIPEnv })
			c.Args = slices.Clone(c.Args)
			for j, a := range c.Args {
				c.Args[j] = strings.ReplaceAll(a, podIP, "0.0.0.0")
			}
			for j := range env {
				env[j].Value = strings.ReplaceAll(env[j].Value, podIP, "0.0.0.0")
				if ref := env[j].ValueFrom; ref != nil && ref.SecretKeyRef != nil {
					var v string
					switch ref.SecretKeyRef.Name {
					case manifests.AdminSecret:
						v = o.AdminToken
					case manifests.RequestKeySecret:
						v = o.RequestKey
					case manifests.NATSUsersSecret:
						var ok bool
						if v, ok = o.NATSPasswords[ref.SecretKeyRef.Key]; !ok {
							return nil, fmt.Errorf("%s: %s is the password of NATS user %s, which was not given", svc.Name, env[j].Name, ref.SecretKeyRef.Key)
						}
					default:
						return nil, fmt.Errorf("%s: %s comes from Secret %s, which Podman does not have", svc.Name, env[j].Name, ref.SecretKeyRef.Name)
					}
					env[j] = manifests.EnvVar{Name: env[j].Name, Value: v}
				}
				// $(VAR) of a variable defined before, as the kubelet expands it (a process's
				// NATS password in its URL): Podman does not.
				env[j].Value = manifests.Expand(env[j].Value, env[:j])
			}
			c.Env = append(env, noExport(env)...)
		}
		w.Objects = append(w.Objects, &manifests.Deployment{
			TypeMeta: manifests.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			Metadata: manifests.ObjectMeta{Name: name, Labels: labels},
			Spec: manifests.DeploymentSpec{
				Replicas: ptr(int32(1)),
				Selector: manifests.LabelSelector{MatchLabels: map[string]string{manifests.LabelName: svc.Name}},
				Template: pod,
			},
		})
		out = append(out, w)
	}
	if n := len(out) - renewers; n != len(arch.Services) {
		return nil, fmt.Errorf("the %s overlay has %d workloads, the topology %d services", overlay, n, len(arch.Services))
	}
	return out, nil
}

// noExport is what turns a container's telemetry export off when its overlay names no
// collector (kube play plays none): its SDK would send to the specification's default,
// localhost:4318, where nothing listens in its pod, and log the failure every minute.
func noExport(env []manifests.EnvVar) []manifests.EnvVar {
	given := map[string]string{}
	for _, e := range env {
		given[e.Name] = e.Value
	}
	off := topology.ExportEnv("", given)
	var out []manifests.EnvVar
	for _, k := range slices.Sorted(maps.Keys(off)) {
		if _, set := given[k]; !set {
			out = append(out, manifests.EnvVar{Name: k, Value: off[k]})
		}
	}
	return out
}

// podIP is how the overlays' listen addresses name the pod's IP.
const podIP = "$(" + manifests.PodIPEnv + ")"

type hostAddr struct {
	host string
	port int32
}

func hostPort(addr string) (hostAddr, error) {
	host, port, ok := strings.Cut(addr, ":")
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); !ok || err != nil || p <= 0 || p > 65535 || host == "" {
		return hostAddr{}, fmt.Errorf("edge %q: want host:port", addr)
	}
	return hostAddr{host: host, port: int32(p)}, nil
}

func ptr[T any](v T) *T { return &v }
