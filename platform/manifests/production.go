package manifests

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
)

// The production overlay is the services overlay with four changes, written twice: as
// kustomize patches (the files a user applies) and as the same edits on the objects (what
// Kube returns). A test builds the overlay with kubectl, when there is one, and compares.
//
//   - NATS becomes a 3-node JetStream cluster of the official image (nats-cluster*.yaml).
//   - Every process exports OTLP to the ADOT collector (otel-endpoint.yaml), which the overlay
//     adds with its configuration (otel-collector.yaml).
//   - Every process keeps its buckets and streams on every node of that cluster
//     (nats-replicas.yaml), so that losing a node loses no acknowledged write.
//   - Images come from ECR (the kustomization's images).

const natsConfigName = "nats-config"

// natsRoutesEnv holds the cluster's route URLs, each with the route user's password
// ($(NATS_PASSWORD_ROUTE), which the kubelet expands): nats.conf reads them as $NATS_ROUTES,
// so the file holds no password.
const natsRoutesEnv = "NATS_ROUTES"

// natsRoutes is natsRoutesEnv's value: the route to every node, as the route user.
func natsRoutes() string {
	var routes []string
	for i := range NATSClusterSize {
		addr := net.JoinHostPort(topology.NATSService+"-"+strconv.Itoa(i)+"."+topology.NATSService, strconv.Itoa(NATSClusterPort))
		u := topology.NATSURL(false, url.UserPassword(natsauth.Route, natsURLPassword(natsauth.Route)), addr)
		routes = append(routes, replaceNATSURLPassword(u, "$($VAR)"))
	}
	return "[" + strings.Join(routes, ", ") + "]"
}

// natsConf is the production cluster's configuration for users (natsauth.Users of the
// topology, as the base's NATS has them: NATSAuth). server_name must differ per node: it is
// the pod's name, from the POD_NAME variable the patch adds. The routes speak TLS with the NATS
// identity, each node checking the other's certificate against the stack's CA, and ask the
// route user (natsauth.Route) of each other: a pod that reaches port 6222 without both joins
// no cluster.
func natsConf(users []string) (string, error) {
	auth, err := NATSAuth(users)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`# JetStream cluster of the nats StatefulSet (%d pods), rendered by mitosis deploy render.
server_name: $POD_NAME
listen: 0.0.0.0:%d
http: 0.0.0.0:%d
jetstream {
  store_dir: /data
  max_memory_store: 64MB
  max_file_store: 8GB
}
# Clients: TLS only, with a certificate of the stack's CA (the Secret %s, as in the base).
tls {
  cert_file: %s/cert.pem
  key_file: %s/key.pem
  ca_file: %s/ca.pem
  verify: true
  timeout: 5
}
# Clients' users, their passwords from the Secret %s (the environment).
%scluster {
  name: mitosis
  listen: 0.0.0.0:%d
  # Routes: TLS both ways with the same identity, checked against the stack's CA (its names
  # hold *.nats, which the routes dial), and the route user's password.
  tls {
    cert_file: %s/cert.pem
    key_file: %s/key.pem
    ca_file: %s/ca.pem
    verify: true
    timeout: 5
  }
  authorization {
    user: %s
    password: $%s
  }
  routes: $%s
}
`, NATSClusterSize, topology.NATSPort, topology.NATSMonitorPort, TLSSecret(identity.NATS), topology.TLSMount, topology.TLSMount, topology.TLSMount,
		NATSUsersSecret, auth, NATSClusterPort, topology.TLSMount, topology.TLSMount, topology.TLSMount, natsauth.Route, natsauth.PasswordEnv(natsauth.Route), natsRoutesEnv), nil
}

func natsConfig(users []string) (*ConfigMap, error) {
	conf, err := natsConf(users)
	if err != nil {
		return nil, err
	}
	return &ConfigMap{
		TypeMeta: TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		Metadata: ObjectMeta{Name: natsConfigName, Labels: map[string]string{LabelName: topology.NATSService, LabelPartOf: PartOf}},
		Data:     map[string]string{"nats.conf": conf},
	}, nil
}

// natsPatch is the strategic-merge patch of the StatefulSet (nats-cluster.yaml).
func natsPatch() *StatefulSet {
	return &StatefulSet{
		TypeMeta: TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		Metadata: ObjectMeta{Name: topology.NATSService},
		Spec: StatefulSetSpec{
			Replicas: ptr(int32(NATSClusterSize)),
			Template: PodTemplate{Spec: PodSpec{
				Containers: []Container{{
					Name: topology.NATSService,
					Args: []string{"--config", "/etc/nats/nats.conf"},
					Env: []EnvVar{
						{Name: "POD_NAME", ValueFrom: &EnvVarSource{FieldRef: &FieldRef{FieldPath: "metadata.name"}}},
						natsPasswordRef(natsauth.PasswordEnv(natsauth.Route), natsauth.Route),
						{Name: natsRoutesEnv, Value: natsRoutes()}, // after the password it names
					},
					Ports: []ContainerPort{{
						Name: "cluster", ContainerPort: NATSClusterPort, Protocol: "TCP",
					}},
					VolumeMounts: []VolumeMount{{Name: "config", MountPath: "/etc/nats", ReadOnly: true}},
				}},
				Volumes: []Volume{{Name: "config", ConfigMap: &ConfigMapRef{Name: natsConfigName}}},
			}},
		},
	}
}

// natsServicePatch adds the route port to the headless Service (nats-cluster-service.yaml).
func natsServicePatch() *Service {
	return &Service{
		TypeMeta: TypeMeta{APIVersion: "v1", Kind: "Service"},
		Metadata: ObjectMeta{Name: topology.NATSService},
		Spec: ServiceSpec{Ports: []ServicePort{{
			Name: "cluster", Port: NATSClusterPort, TargetPort: NATSClusterPort, Protocol: "TCP",
		}}},
	}
}

// otelEndpoint is where the processes send OTLP in the production overlay.
func otelEndpoint() EnvVar {
	return EnvVar{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://" + CollectorName + ":" + strconv.Itoa(OTLPHTTPPort)}
}

// natsReplicas is the replica count of every bucket and stream in the production overlay: one
// copy on each node of the NATS cluster.
func natsReplicas() EnvVar {
	return EnvVar{Name: natsjs.ReplicasEnv, Value: strconv.Itoa(NATSClusterSize)}
}

// productionImages maps each local image name of the services architecture to its production
// reference, as the kustomization's images list does.
func productionImages(services topology.Arch, opts Options) map[string]string {
	out := map[string]string{}
	for _, s := range services.Services {
		if s.DataDir != "" {
			out[LocalRepo+"/"+s.Image] = NATSImage // the stateful one is NATS (see natsPatch)
			continue
		}
		out[LocalRepo+"/"+s.Image] = opts.Registry() + "/" + s.Image + ":" + opts.Tag
	}
	return out
}

// production applies the overlay's patches to the services overlay's objects.
func production(objs []Object, services topology.Arch, opts Options) error {
	images := productionImages(services, opts)
	np, sp := natsPatch(), natsServicePatch()
	patched := 0
	for _, o := range objs {
		switch w := o.(type) {
		case *StatefulSet:
			if w.Metadata.Name != topology.NATSService {
				continue
			}
			w.Spec.Replicas = np.Spec.Replicas
			c := &w.Spec.Template.Spec.Containers[0]
			pc := np.Spec.Template.Spec.Containers[0]
			// A strategic merge puts the items it adds to a keyed list first.
			c.Args = pc.Args
			c.Env = append(pc.Env, c.Env...)
			c.Ports = append(pc.Ports, c.Ports...)
			c.VolumeMounts = append(pc.VolumeMounts, c.VolumeMounts...)
			w.Spec.Template.Spec.Volumes = append(np.Spec.Template.Spec.Volumes, w.Spec.Template.Spec.Volumes...)
			patched++
		case *Service:
			if w.Metadata.Name == topology.NATSService {
				w.Spec.Ports = append(sp.Spec.Ports, w.Spec.Ports...)
				patched++
			}
		case *Deployment:
			if _, ok := w.Metadata.Labels[stack.LabelArch]; ok {
				c := &w.Spec.Template.Spec.Containers[0]
				c.Env = append(c.Env, otelEndpoint(), natsReplicas())
			}
		}
		if tmpl := Workload(o); tmpl != nil {
			for i := range tmpl.Spec.Containers {
				c := &tmpl.Spec.Containers[i]
				name, _, _ := strings.Cut(c.Image, ":")
				if ref, ok := images[name]; ok {
					c.Image = ref
				}
			}
		}
	}
	if patched != 2 {
		return fmt.Errorf("production overlay: the nats StatefulSet and Service were not both found")
	}
	return nil
}

// collectorObjects are otel-collector.yaml: the ADOT collector, its configuration and its
// service account (IAM role through IRSA, for X-Ray and CloudWatch).
func collectorObjects(opts Options) ([]Object, error) {
	labels := map[string]string{LabelName: CollectorName, LabelPartOf: PartOf}
	selector := map[string]string{LabelName: CollectorName}
	const uid = 10001 // the ADOT image's aoc user
	ready := &Probe{HTTPGet: &HTTPGetAction{Path: adotHealthPath, Port: ADOTHealthPort}, PeriodSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 3}
	live := &Probe{HTTPGet: &HTTPGetAction{Path: adotHealthPath, Port: ADOTHealthPort}, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3}
	return []Object{
		&ServiceAccount{
			TypeMeta: TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			Metadata: ObjectMeta{Name: CollectorName, Labels: labels, Annotations: map[string]string{
				"eks.amazonaws.com/role-arn": opts.arn("iam", "role/mitosis-adot-collector"),
			}},
		},
		&ConfigMap{
			TypeMeta: TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			Metadata: ObjectMeta{Name: CollectorName + "-config", Labels: labels},
			Data:     map[string]string{adotConfigFile: ADOTConfig()},
		},
		&Deployment{
			TypeMeta: TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			Metadata: ObjectMeta{Name: CollectorName, Labels: labels},
			Spec: DeploymentSpec{
				Replicas:             ptr(int32(2)),
				RevisionHistoryLimit: ptr(int32(3)),
				Selector:             LabelSelector{MatchLabels: selector},
				Template: PodTemplate{
					Metadata: ObjectMeta{Labels: labels},
					Spec: PodSpec{
						ServiceAccountName:            CollectorName,
						SecurityContext:               podSecurity(uid),
						TerminationGracePeriodSeconds: ptr(int64(30)),
						Containers: []Container{{
							Name:            CollectorName,
							Image:           ADOTImage,
							ImagePullPolicy: "IfNotPresent",
							Args:            []string{"--config=" + adotConfigMount + "/" + adotConfigFile},
							Env:             []EnvVar{{Name: "AWS_REGION", Value: opts.Region}},
							Ports: []ContainerPort{
								{Name: "otlp-grpc", ContainerPort: OTLPGRPCPort, Protocol: "TCP"},
								{Name: "otlp-http", ContainerPort: OTLPHTTPPort, Protocol: "TCP"},
								{Name: "health", ContainerPort: ADOTHealthPort, Protocol: "TCP"},
							},
							ReadinessProbe: ready,
							LivenessProbe:  live,
							Resources: &Resources{
								Requests: map[string]string{"cpu": "100m", "memory": "256Mi"},
								Limits:   map[string]string{"cpu": "500m", "memory": "256Mi"},
							},
							SecurityContext: hardened(),
							VolumeMounts:    []VolumeMount{{Name: "config", MountPath: adotConfigMount, ReadOnly: true}},
						}},
						Volumes: []Volume{{Name: "config", ConfigMap: &ConfigMapRef{Name: CollectorName + "-config"}}},
					},
				},
			},
		},
		&Service{
			TypeMeta: TypeMeta{APIVersion: "v1", Kind: "Service"},
			Metadata: ObjectMeta{Name: CollectorName, Labels: labels},
			Spec: ServiceSpec{Selector: selector, Ports: []ServicePort{
				{Name: "otlp-grpc", Port: OTLPGRPCPort, TargetPort: OTLPGRPCPort, Protocol: "TCP"},
				{Name: "otlp-http", Port: OTLPHTTPPort, TargetPort: OTLPHTTPPort, Protocol: "TCP"},
			}},
		},
	}, nil
}
