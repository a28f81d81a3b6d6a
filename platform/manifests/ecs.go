package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// ECS on Fargate: one task definition and one service definition per topology service, in
// deploy/ecs/<arch>/, each architecture in its own Service Connect namespace so that every
// process finds its peers by the names the topology uses (nats:4222, catalog:9101), as in
// Kubernetes and compose. Every application task carries the ADOT collector as a sidecar,
// which the process reaches on localhost and which exports to X-Ray.
//
// The files are the JSON that `aws ecs register-task-definition --cli-input-json` and
// `aws ecs create-service --cli-input-json` take, written from the SDK's own input types.

// ECS names.
const (
	ECSCluster     = "mitosis"
	ADOTContainer  = "aws-otel-collector"
	adotMemoryMiB  = 128
	ecsLogPrefix   = "/mitosis/"
	healthcheckArg = "-healthcheck"
)

// ECSService is one topology service on ECS.
type ECSService struct {
	Arch, Name string
	Task       *ecs.RegisterTaskDefinitionInput
	Service    *ecs.CreateServiceInput
}

// FargateSizes lists the CPU units Fargate offers and, for each, the memory sizes (MiB) it
// may be paired with.
func FargateSizes() map[int][]int {
	steps := func(from, to, step int) []int {
		var out []int
		for m := from; m <= to; m += step {
			out = append(out, m)
		}
		return out
	}
	return map[int][]int{
		256:   {512, 1024, 2048},
		512:   steps(1024, 4096, 1024),
		1024:  steps(2048, 8192, 1024),
		2048:  steps(4096, 16384, 1024),
		4096:  steps(8192, 30720, 1024),
		8192:  steps(16384, 61440, 4096),
		16384: steps(32768, 122880, 8192),
	}
}

// fargateSize is the smallest valid Fargate size with at least cpu units and memory MiB.
func fargateSize(cpu, memory int) (int, int, error) {
	sizes := FargateSizes()
	for _, c := range slices.Sorted(maps.Keys(sizes)) {
		if c < cpu {
			continue
		}
		for _, m := range sizes[c] {
			if m >= memory {
				return c, m, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("no Fargate size has %d CPU units and %d MiB", cpu, memory)
}

func (o Options) arn(service, resource string) string {
	region := o.Region
	if service == "iam" {
		region = "" // IAM is global
	}
	return "arn:aws:" + service + ":" + region + ":" + o.Account + ":" + resource
}

func awslogs(opts Options, arch, prefix string) *types.LogConfiguration {
	return &types.LogConfiguration{
		LogDriver: types.LogDriverAwslogs,
		Options: map[string]string{
			"awslogs-group":         ecsLogPrefix + arch,
			"awslogs-region":        opts.Region,
			"awslogs-stream-prefix": prefix,
			"awslogs-create-group":  "true",
		},
	}
}

func appProtocol(s topology.Service, port int) types.ApplicationProtocol {
	switch portName(s, port) {
	case "http":
		return types.ApplicationProtocolHttp
	case "grpc":
		return types.ApplicationProtocolGrpc
	}
	return ""
}

// ECSImage is where `mitosis push --to <Registry>` puts an image.
func (o Options) ECSImage(name string) string { return o.Registry() + "/" + name + ":" + o.Tag }

// ECRRepositories are the repositories `mitosis push --to <account>.dkr.ecr.<region>.amazonaws.com/mitosis`
// writes to, one per image of the topology.
func ECRRepositories(t topology.Topology) []string {
	var out []string
	for _, im := range t.Images() {
		out = append(out, PartOf+"/"+im.Name)
	}
	return out
}

// ECS renders every service of t's architectures.
func ECS(t topology.Topology, opts Options) ([]ECSService, error) {
	if err := checkNames(t); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	var out []ECSService
	for _, a := range t.Archs {
		ports, err := reached(a)
		if err != nil {
			return nil, err
		}
		for _, s := range a.Services {
			e, err := ecsService(opts, a, s, ports[s.Name])
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// reached lists, by service of a, the ports its peers reach it on: those the others'
// {{addr:...}} placeholders name.
func reached(a topology.Arch) (map[string][]int, error) {
	out := map[string][]int{}
	for _, s := range a.Services {
		_, _, err := topology.Expand(s, topology.Resolver{
			Addr: func(svc string, port int) (string, error) {
				o, ok := a.Service(svc)
				if !ok {
					return "", fmt.Errorf("unknown service %s", svc)
				}
				if port == 0 {
					port = o.Ports[0]
				}
				if !slices.Contains(out[svc], port) {
					out[svc] = append(out[svc], port)
				}
				return "", nil
			},
			Listen: func(int) string { return "" },
		})
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
		}
	}
	for _, ports := range out {
		slices.Sort(ports)
	}
	return out, nil
}

// ecsService renders one service; reached are the ports its peers call it on.
func ecsService(opts Options, a topology.Arch, s topology.Service, reached []int) (ECSService, error) {
	x, err := expand(a, s, anyInterface, archNATSUsers(a))
	if err != nil {
		return ECSService{}, err
	}
	// Its identity from Secrets Manager (ecsidentity.go): secure, as in a cluster.
	identitySecrets := ecsIdentity(opts, s, x.Env)
	family := PartOf + "-" + a.Name + "-" + s.Name
	traced := s.Env["OTEL_SERVICE_NAME"] != ""
	app := types.ContainerDefinition{
		Name:                   aws.String(s.Name),
		Image:                  aws.String(opts.ECSImage(s.Image)),
		Essential:              aws.Bool(true),
		Command:                x.Args,
		Cpu:                    int32(s.CPUs * 1024),
		Memory:                 aws.Int32(int32(s.MemoryMB)),
		User:                   aws.String(strconv.Itoa(nonRoot) + ":" + strconv.Itoa(nonRoot)),
		ReadonlyRootFilesystem: aws.Bool(true),
		Privileged:             aws.Bool(false),
		LinuxParameters:        &types.LinuxParameters{Capabilities: &types.KernelCapabilities{Drop: []string{"ALL"}}},
		// The image holds only the binary: it checks itself (platform/selfcheck: -healthcheck asks
		// the serving copy whether it is alive).
		HealthCheck: &types.HealthCheck{
			Command:     []string{"CMD", "/usr/local/bin/" + s.Image, healthcheckArg},
			Interval:    aws.Int32(10),
			Timeout:     aws.Int32(5),
			Retries:     aws.Int32(3),
			StartPeriod: aws.Int32(15),
		},
		LogConfiguration: awslogs(opts, a.Name, s.Name),
		MountPoints:      []types.MountPoint{{SourceVolume: aws.String(tmpVolume), ContainerPath: aws.String("/tmp")}},
		StopTimeout:      aws.Int32(int32(stopGrace.Seconds())),
	}
	for _, k := range slices.Sorted(maps.Keys(x.Env)) {
		if sec, ok := secretOf(x.Env[k]); ok {
			app.Secrets = append(app.Secrets, types.Secret{Name: aws.String(k), ValueFrom: aws.String(opts.ecsSecretARN(sec.aws))})
			continue
		}
		if user, ok := natsURLUser(x.Env[k]); ok {
			app.Secrets = append(app.Secrets, types.Secret{Name: aws.String(k), ValueFrom: aws.String(opts.ecsSecretARN(awsRef{AWSNATSURLsSecret, user}))})
			continue
		}
		app.Environment = append(app.Environment, types.KeyValuePair{Name: aws.String(k), Value: aws.String(x.Env[k])})
	}
	app.Secrets = sortSecrets(append(app.Secrets, identitySecrets...))
	if traced {
		// The sidecar shares the task's network namespace.
		app.Environment = append(app.Environment, types.KeyValuePair{
			Name: aws.String("OTEL_EXPORTER_OTLP_ENDPOINT"), Value: aws.String("http://localhost:" + strconv.Itoa(OTLPHTTPPort)),
		})
		app.DependsOn = []types.ContainerDependency{{ContainerName: aws.String(ADOTContainer), Condition: types.ContainerConditionStart}}
	}
	for _, p := range s.Ports {
		app.PortMappings = append(app.PortMappings, types.PortMapping{
			Name:          aws.String(portName(s, p)),
			ContainerPort: aws.Int32(int32(p)),
			Protocol:      types.TransportProtocolTcp,
			AppProtocol:   appProtocol(s, p),
		})
	}
	volumes := []types.Volume{{Name: aws.String(tmpVolume)}} // task storage: Fargate has no tmpfs
	if s.DataDir != "" {
		app.MountPoints = append(app.MountPoints, types.MountPoint{SourceVolume: aws.String("data"), ContainerPath: aws.String(s.DataDir)})
		volumes = append(volumes, types.Volume{
			Name: aws.String("data"),
			// JetStream's files on EFS, through an access point owned by 65532.
			EfsVolumeConfiguration: &types.EFSVolumeConfiguration{
				FileSystemId:        aws.String("fs-0123456789abcdef0"),
				TransitEncryption:   types.EFSTransitEncryptionEnabled,
				AuthorizationConfig: &types.EFSAuthorizationConfig{AccessPointId: aws.String("fsap-0123456789abcdef0"), Iam: types.EFSAuthorizationConfigIAMEnabled},
			},
		})
	}
	containers := []types.ContainerDefinition{app}
	cpu, memory := int(app.Cpu), s.MemoryMB
	if traced {
		containers = append(containers, adotSidecar(opts, a.Name))
		memory += adotMemoryMiB
	}
	taskCPU, taskMemory, err := fargateSize(max(cpu, 256), memory)
	if err != nil {
		return ECSService{}, fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
	}
	tags := []types.Tag{{Key: aws.String(stack.LabelArch), Value: aws.String(a.Name)}, {Key: aws.String(stack.LabelService), Value: aws.String(s.Name)}}
	task := &ecs.RegisterTaskDefinitionInput{
		Family:                  aws.String(family),
		NetworkMode:             types.NetworkModeAwsvpc,
		RequiresCompatibilities: []types.Compatibility{types.CompatibilityFargate},
		// The images are built for linux/arm64 and linux/amd64; Graviton costs less.
		RuntimePlatform:      &types.RuntimePlatform{OperatingSystemFamily: types.OSFamilyLinux, CpuArchitecture: types.CPUArchitectureArm64},
		Cpu:                  aws.String(strconv.Itoa(taskCPU)),
		Memory:               aws.String(strconv.Itoa(taskMemory)),
		ExecutionRoleArn:     aws.String(opts.arn("iam", "role/mitosis-ecs-execution")),
		TaskRoleArn:          aws.String(opts.arn("iam", "role/mitosis-ecs-task")),
		ContainerDefinitions: containers,
		Volumes:              volumes,
		Tags:                 tags,
	}

	sole := s.DataDir != "" || replicas(s) == 1
	desired := replicas(s)
	if s.DataDir != "" {
		desired = 1 // one JetStream server on EFS: a cluster on ECS is out of scope (EKS has one)
	}
	svc := &ecs.CreateServiceInput{
		Cluster:         aws.String(ECSCluster),
		ServiceName:     aws.String(a.Name + "-" + s.Name),
		TaskDefinition:  aws.String(family),
		DesiredCount:    aws.Int32(desired),
		LaunchType:      types.LaunchTypeFargate,
		PlatformVersion: aws.String("LATEST"),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets:        placeholderSubnets(),
			SecurityGroups: placeholderSecurityGroups(),
			AssignPublicIp: types.AssignPublicIpDisabled,
		}},
		DeploymentConfiguration: &types.DeploymentConfiguration{
			MinimumHealthyPercent:    aws.Int32(100),
			MaximumPercent:           aws.Int32(200),
			DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true},
		},
		ServiceConnectConfiguration: &types.ServiceConnectConfiguration{
			Enabled:   true,
			Namespace: aws.String(PartOf + "-" + a.Name),
		},
		PropagateTags:        types.PropagateTagsService,
		EnableECSManagedTags: true,
		Tags:                 tags,
	}
	if sole {
		// Never two at once: the old task stops before the new one starts.
		svc.DeploymentConfiguration.MinimumHealthyPercent = aws.Int32(0)
		svc.DeploymentConfiguration.MaximumPercent = aws.Int32(100)
	}
	// Peers reach it by its topology name: on its first port, unless that is the edge's, and
	// on every port they call (the gRPC port of a group with the edge whose contexts others
	// call: edge+catalog, say).
	exposed := reached
	if s.Edge != "" {
		// The edge is reached from outside through a load balancer's target group.
		svc.LoadBalancers = []types.LoadBalancer{{
			TargetGroupArn: aws.String(opts.arn("elasticloadbalancing", "targetgroup/mitosis-"+a.Name+"/0123456789abcdef")),
			ContainerName:  aws.String(s.Name),
			ContainerPort:  aws.Int32(int32(s.Ports[0])),
		}}
		svc.HealthCheckGracePeriodSeconds = aws.Int32(30)
	} else if !slices.Contains(exposed, s.Ports[0]) {
		exposed = append([]int{s.Ports[0]}, exposed...)
	}
	for i, p := range exposed {
		discovery := s.Name // unique in the namespace
		if i > 0 {
			discovery += "-" + strconv.Itoa(p)
		}
		svc.ServiceConnectConfiguration.Services = append(svc.ServiceConnectConfiguration.Services, types.ServiceConnectService{
			PortName:      aws.String(portName(s, p)),
			DiscoveryName: aws.String(discovery),
			ClientAliases: []types.ServiceConnectClientAlias{{Port: aws.Int32(int32(p)), DnsName: aws.String(s.Name)}},
		})
	}
	return ECSService{Arch: a.Name, Name: s.Name, Task: task, Service: svc}, nil
}

func adotSidecar(opts Options, arch string) types.ContainerDefinition {
	return types.ContainerDefinition{
		Name:              aws.String(ADOTContainer),
		Image:             aws.String(ADOTImage),
		Essential:         aws.Bool(false), // traces may stop; the shop must not
		Memory:            aws.Int32(adotMemoryMiB),
		MemoryReservation: aws.Int32(64),
		Environment: []types.KeyValuePair{
			{Name: aws.String("AOT_CONFIG_CONTENT"), Value: aws.String(ADOTConfig())},
			{Name: aws.String("AWS_REGION"), Value: aws.String(opts.Region)},
		},
		PortMappings: []types.PortMapping{
			{Name: aws.String("otlp-http"), ContainerPort: aws.Int32(OTLPHTTPPort), Protocol: types.TransportProtocolTcp},
		},
		ReadonlyRootFilesystem: aws.Bool(true),
		Privileged:             aws.Bool(false),
		LinuxParameters:        &types.LinuxParameters{Capabilities: &types.KernelCapabilities{Drop: []string{"ALL"}}},
		// The ADOT image ships /healthcheck, which asks the health_check extension.
		HealthCheck: &types.HealthCheck{
			Command:     []string{"CMD", "/healthcheck"},
			Interval:    aws.Int32(10),
			Timeout:     aws.Int32(5),
			Retries:     aws.Int32(3),
			StartPeriod: aws.Int32(10),
		},
		LogConfiguration: awslogs(opts, arch, ADOTContainer),
		MountPoints:      []types.MountPoint{{SourceVolume: aws.String(tmpVolume), ContainerPath: aws.String("/tmp")}},
	}
}

// MarshalECS writes an SDK input as the AWS CLI's --cli-input-json: the SDK's types carry no
// JSON tags, so fields are written under their API names (lowerCamelCase) and unset ones are
// left out. json.Unmarshal reads it back into the same type (it matches names without regard
// to case), which the tests check.
func MarshalECS(v any) ([]byte, error) { return marshalInput(v, true) }

// marshalInput writes an SDK input type as the CLI's --cli-input-json takes it: nulls, empty
// strings, lists and objects left out, each key's first letter lowered where the service's
// JSON spells them so (ECS: containerDefinitions), kept where it does not (Lambda).
func marshalInput(v any, lowerFirst bool) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	if lowerFirst {
		tree = apiNames(tree)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(pruneEmpty(tree)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// apiNames lowers the first letter of every key (ContainerDefinitions -> containerDefinitions).
func apiNames(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			r, n := utf8.DecodeRuneInString(k)
			out[string(unicode.ToLower(r))+k[n:]] = apiNames(val)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = apiNames(e)
		}
	}
	return v
}

// ecsFiles are deploy/ecs: <arch>/<service>-task.json and -service.json, and the ECR
// repositories.
func ecsFiles(t topology.Topology, opts Options) (map[string][]byte, error) {
	services, err := ECS(t, opts)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range services {
		task, err := MarshalECS(e.Task)
		if err != nil {
			return nil, fmt.Errorf("%s/%s task: %w", e.Arch, e.Name, err)
		}
		svc, err := MarshalECS(e.Service)
		if err != nil {
			return nil, fmt.Errorf("%s/%s service: %w", e.Arch, e.Name, err)
		}
		files["deploy/ecs/"+e.Arch+"/"+e.Name+"-task.json"] = task
		files["deploy/ecs/"+e.Arch+"/"+e.Name+"-service.json"] = svc
	}
	repos := ECRRepositories(t)
	files["deploy/ecs/ecr-repositories.txt"] = []byte(strings.Join(repos, "\n") + "\n")
	return files, nil
}
