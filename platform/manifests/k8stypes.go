package manifests

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// The Kubernetes objects the renderer writes, as plain structs holding only the fields it
// uses. k8s.io/api would bring apimachinery and generated protobuf code for a dozen fields;
// these marshal to the same YAML (sigs.k8s.io/yaml: JSON tags, keys sorted, as kubectl and
// kustomize print them).

// Object is a Kubernetes object the renderer knows.
type Object interface {
	// Meta returns the object's type and metadata, for transformers (namespace, names).
	Meta() (*TypeMeta, *ObjectMeta)
}

// TypeMeta is apiVersion and kind.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// ObjectMeta is the metadata the renderer sets.
type ObjectMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Deployment is apps/v1 Deployment.
type Deployment struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     DeploymentSpec `json:"spec"`
}

// DeploymentSpec is the part of a Deployment's spec the renderer sets.
type DeploymentSpec struct {
	Replicas             *int32        `json:"replicas,omitempty"`
	RevisionHistoryLimit *int32        `json:"revisionHistoryLimit,omitempty"`
	Selector             LabelSelector `json:"selector"`
	Strategy             *Strategy     `json:"strategy,omitempty"`
	Template             PodTemplate   `json:"template"`
}

// Strategy is a Deployment's update strategy.
type Strategy struct {
	Type string `json:"type"`
}

// StatefulSet is apps/v1 StatefulSet.
type StatefulSet struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta      `json:"metadata"`
	Spec     StatefulSetSpec `json:"spec"`
}

// StatefulSetSpec is the part of a StatefulSet's spec the renderer sets.
type StatefulSetSpec struct {
	ServiceName          string          `json:"serviceName"`
	Replicas             *int32          `json:"replicas,omitempty"`
	PodManagementPolicy  string          `json:"podManagementPolicy,omitempty"`
	Selector             LabelSelector   `json:"selector"`
	Template             PodTemplate     `json:"template"`
	VolumeClaimTemplates []ClaimTemplate `json:"volumeClaimTemplates,omitempty"`
}

// ClaimTemplate is a StatefulSet's volume claim template.
type ClaimTemplate struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     ClaimSpec  `json:"spec"`
}

// PersistentVolumeClaim is v1 PersistentVolumeClaim (what Podman makes a named volume of).
type PersistentVolumeClaim struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     ClaimSpec  `json:"spec"`
}

// ClaimSpec is a claim's access modes and size.
type ClaimSpec struct {
	AccessModes []string  `json:"accessModes"`
	Resources   Resources `json:"resources"`
}

// LabelSelector selects by labels.
type LabelSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// PodTemplate is a workload's pod template.
type PodTemplate struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
}

// PodSpec is the part of a pod's spec the renderer sets.
type PodSpec struct {
	AutomountServiceAccountToken  *bool               `json:"automountServiceAccountToken,omitempty"`
	EnableServiceLinks            *bool               `json:"enableServiceLinks,omitempty"`
	ServiceAccountName            string              `json:"serviceAccountName,omitempty"`
	SecurityContext               *PodSecurityContext `json:"securityContext,omitempty"`
	TerminationGracePeriodSeconds *int64              `json:"terminationGracePeriodSeconds,omitempty"`
	Containers                    []Container         `json:"containers"`
	Volumes                       []Volume            `json:"volumes,omitempty"`
}

// PodSecurityContext is the pod-level security context.
type PodSecurityContext struct {
	RunAsNonRoot   *bool           `json:"runAsNonRoot,omitempty"`
	RunAsUser      *int64          `json:"runAsUser,omitempty"`
	RunAsGroup     *int64          `json:"runAsGroup,omitempty"`
	FSGroup        *int64          `json:"fsGroup,omitempty"`
	SeccompProfile *SeccompProfile `json:"seccompProfile,omitempty"`
}

// SeccompProfile names a seccomp profile.
type SeccompProfile struct {
	Type string `json:"type"`
}

// Container is one container of a pod.
type Container struct {
	Name            string           `json:"name"`
	Image           string           `json:"image"`
	ImagePullPolicy string           `json:"imagePullPolicy,omitempty"`
	Args            []string         `json:"args,omitempty"`
	Env             []EnvVar         `json:"env,omitempty"`
	Ports           []ContainerPort  `json:"ports,omitempty"`
	ReadinessProbe  *Probe           `json:"readinessProbe,omitempty"`
	LivenessProbe   *Probe           `json:"livenessProbe,omitempty"`
	Resources       *Resources       `json:"resources,omitempty"`
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	VolumeMounts    []VolumeMount    `json:"volumeMounts,omitempty"`
}

// EnvVar is one environment variable, a literal or taken from a secret or a field.
type EnvVar struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource says where a variable's value comes from.
type EnvVarSource struct {
	SecretKeyRef *KeyRef   `json:"secretKeyRef,omitempty"`
	FieldRef     *FieldRef `json:"fieldRef,omitempty"`
}

// KeyRef is a key of a Secret.
type KeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// FieldRef is a field of the pod.
type FieldRef struct {
	FieldPath string `json:"fieldPath"`
}

// ContainerPort is a port a container listens on; HostPort and HostIP publish it (Podman).
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	HostPort      int32  `json:"hostPort,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

// Probe is a readiness or liveness probe.
type Probe struct {
	HTTPGet          *HTTPGetAction `json:"httpGet,omitempty"`
	TCPSocket        *PortAction    `json:"tcpSocket,omitempty"`
	PeriodSeconds    int32          `json:"periodSeconds,omitempty"`
	TimeoutSeconds   int32          `json:"timeoutSeconds,omitempty"`
	FailureThreshold int32          `json:"failureThreshold,omitempty"`
}

// HTTPGetAction probes with GET Path on Port.
type HTTPGetAction struct {
	Path string `json:"path"`
	Port int32  `json:"port"`
}

// PortAction probes that Port accepts a TCP connection.
type PortAction struct {
	Port int32 `json:"port"`
}

// Resources are requests and limits ("cpu", "memory", "storage").
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// SecurityContext is the container-level security context.
type SecurityContext struct {
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
	Privileged               *bool         `json:"privileged,omitempty"`
	ReadOnlyRootFilesystem   *bool         `json:"readOnlyRootFilesystem,omitempty"`
	RunAsNonRoot             *bool         `json:"runAsNonRoot,omitempty"`
	Capabilities             *Capabilities `json:"capabilities,omitempty"`
}

// Capabilities are Linux capabilities to drop.
type Capabilities struct {
	Drop []string `json:"drop,omitempty"`
}

// Volume is a pod volume.
type Volume struct {
	Name                  string          `json:"name"`
	EmptyDir              *EmptyDir       `json:"emptyDir,omitempty"`
	ConfigMap             *ConfigMapRef   `json:"configMap,omitempty"`
	PersistentVolumeClaim *ClaimReference `json:"persistentVolumeClaim,omitempty"`
	Secret                *SecretVolume   `json:"secret,omitempty"`
	HostPath              *HostPath       `json:"hostPath,omitempty"`
}

// SecretVolume mounts a Secret's keys as files.
type SecretVolume struct {
	SecretName  string `json:"secretName"`
	DefaultMode *int32 `json:"defaultMode,omitempty"`
}

// HostPath mounts a folder of the node (what kube play gets instead of a Secret volume).
type HostPath struct {
	Path string `json:"path"`
	Type string `json:"type,omitempty"`
}

// EmptyDir is a scratch volume.
type EmptyDir struct {
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// ConfigMapRef mounts a ConfigMap.
type ConfigMapRef struct {
	Name string `json:"name"`
}

// ClaimReference mounts a PersistentVolumeClaim.
type ClaimReference struct {
	ClaimName string `json:"claimName"`
}

// VolumeMount mounts a volume in a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Service is v1 Service.
type Service struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     ServiceSpec `json:"spec"`
}

// ServiceSpec is the part of a Service's spec the renderer sets.
type ServiceSpec struct {
	Type                     string            `json:"type,omitempty"`
	ClusterIP                string            `json:"clusterIP,omitempty"`
	PublishNotReadyAddresses bool              `json:"publishNotReadyAddresses,omitempty"`
	Selector                 map[string]string `json:"selector"`
	Ports                    []ServicePort     `json:"ports"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name       string `json:"name"`
	Port       int32  `json:"port"`
	TargetPort int32  `json:"targetPort"`
	Protocol   string `json:"protocol,omitempty"`
}

// ConfigMap is v1 ConfigMap.
type ConfigMap struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Data     map[string]string `json:"data"`
}

// ServiceAccount is v1 ServiceAccount.
type ServiceAccount struct {
	TypeMeta                     `json:",inline"`
	Metadata                     ObjectMeta `json:"metadata"`
	AutomountServiceAccountToken *bool      `json:"automountServiceAccountToken,omitempty"`
}

// Meta implements Object.
func (o *Deployment) Meta() (*TypeMeta, *ObjectMeta) { return &o.TypeMeta, &o.Metadata }

// Meta implements Object.
func (o *StatefulSet) Meta() (*TypeMeta, *ObjectMeta) { return &o.TypeMeta, &o.Metadata }

// Meta implements Object.
func (o *PersistentVolumeClaim) Meta() (*TypeMeta, *ObjectMeta) { return &o.TypeMeta, &o.Metadata }

// Meta implements Object.
func (o *Service) Meta() (*TypeMeta, *ObjectMeta) { return &o.TypeMeta, &o.Metadata }

// Meta implements Object.
func (o *ConfigMap) Meta() (*TypeMeta, *ObjectMeta) { return &o.TypeMeta, &o.Metadata }

// Meta implements Object.
func (o *ServiceAccount) Meta() (*TypeMeta, *ObjectMeta) { return &o.TypeMeta, &o.Metadata }

// MarshalObjects writes objects as one YAML stream, "---" between documents.
func MarshalObjects(objs []Object) ([]byte, error) {
	var buf bytes.Buffer
	for i, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			tm, m := o.Meta()
			return nil, fmt.Errorf("marshal %s %s: %w", tm.Kind, m.Name, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

func ptr[T any](v T) *T { return &v }
