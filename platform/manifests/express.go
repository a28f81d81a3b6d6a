package manifests

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// ECS Express Mode, what AWS recommends where App Runner no longer takes new customers: one
// call makes a service with its load balancer, its security groups and its scaling. The
// services that answer the public run so, deploy/ecs-express/<arch>-<service>.json, the JSON
// `aws ecs create-express-gateway-service --cli-input-json` takes (the SDK's
// CreateExpressGatewayServiceInput): the monolith, and every gateway alone. The rest of an
// architecture (NATS, the contexts) runs as the ecs/ services do; the Express service finds
// them by private DNS, as a Lambda function does (privateEnv), since it joins no Service
// Connect namespace.

// Express Mode settings.
const (
	// ExpressRole is the infrastructure role Express Mode makes the load balancer with.
	ExpressRole = "ecsInfrastructureRoleForExpressServices"
	// expressScaleCPU is the average CPU (percent) at which Express Mode adds a task.
	expressScaleCPU = 60
	// expressMaxTasks bounds a gateway's tasks: twice its replicas at most.
	expressMaxFactor = 2
)

// ExpressService is one topology service as an ECS Express Mode service.
type ExpressService struct {
	Arch, Name string
	Input      *ecs.CreateExpressGatewayServiceInput
}

// Express returns the Express services of t: those that can be a function can be one.
func Express(t topology.Topology, opts Options) ([]ExpressService, error) {
	opts = opts.withDefaults()
	var out []ExpressService
	for _, a := range t.Archs {
		for _, s := range a.Services {
			if !lambdaQualifies(s) {
				continue
			}
			e, err := expressService(opts, a, s)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func expressService(opts Options, a topology.Arch, s topology.Service) (ExpressService, error) {
	env, err := privateEnv(a, s)
	if err != nil {
		return ExpressService{}, err
	}
	// Its identity from Secrets Manager, as an ECS task's (ecsidentity.go): it calls the
	// contexts and NATS, which run on ECS and let in nobody else.
	identitySecrets := ecsIdentity(opts, s, env)
	c := &types.ExpressGatewayContainer{
		Image:                aws.String(opts.ECSImage(s.Image)),
		ContainerPort:        aws.Int32(int32(s.Ports[0])),
		AwsLogsConfiguration: &types.ExpressGatewayServiceAwsLogsConfiguration{LogGroup: aws.String(ecsLogPrefix + a.Name), LogStreamPrefix: aws.String(s.Name)},
	}
	// No collector beside the task (Express Mode runs one container): X-Ray needs its daemon,
	// so traces stay off unless the user adds one.
	maps.Copy(env, map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
	cpu, memory, err := fargateSize(max(int(s.CPUs*1024), 256), s.MemoryMB)
	if err != nil {
		return ExpressService{}, fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
	}
	env["GOMEMLIMIT"] = topology.GoMemLimit(memory) // of the task's memory: its only container has no limit of its own
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if sec, ok := secretOf(env[k]); ok {
			c.Secrets = append(c.Secrets, types.Secret{Name: aws.String(k), ValueFrom: aws.String(opts.ecsSecretARN(sec.aws))})
			continue
		}
		if user, ok := natsURLUser(env[k]); ok { // Express composes no variable either
			c.Secrets = append(c.Secrets, types.Secret{Name: aws.String(k), ValueFrom: aws.String(opts.ecsSecretARN(awsRef{AWSNATSURLsSecret, user + privateSuffix}))})
			continue
		}
		c.Environment = append(c.Environment, types.KeyValuePair{Name: aws.String(k), Value: aws.String(env[k])})
	}
	c.Secrets = sortSecrets(append(c.Secrets, identitySecrets...))
	n := replicas(s)
	in := &ecs.CreateExpressGatewayServiceInput{
		ServiceName:           aws.String(PartOf + "-" + a.Name + "-" + s.Name),
		Cluster:               aws.String(ECSCluster),
		PrimaryContainer:      c,
		Cpu:                   aws.String(strconv.Itoa(cpu)),
		Memory:                aws.String(strconv.Itoa(memory)),
		CpuArchitecture:       types.ExpressCpuArchitectureX8664,
		HealthCheckPath:       aws.String("/readyz"),
		ExecutionRoleArn:      aws.String(opts.arn("iam", "role/"+PartOf+"-ecs-execution")),
		InfrastructureRoleArn: aws.String(opts.arn("iam", "role/"+ExpressRole)),
		NetworkConfiguration: &types.ExpressGatewayServiceNetworkConfiguration{
			Subnets:        placeholderSubnets(),
			SecurityGroups: placeholderSecurityGroups(),
		},
		// The monolith is its own only replica (it recovers every checkout at start); a
		// gateway scales on CPU from its replicas up to twice as many.
		ScalingTarget: &types.ExpressGatewayScalingTarget{
			AutoScalingMetric:      types.ExpressGatewayServiceScalingMetricAverageCPUUtilization,
			AutoScalingTargetValue: aws.Int32(expressScaleCPU),
			MinTaskCount:           aws.Int32(n),
			MaxTaskCount:           aws.Int32(maxExpressTasks(n)),
		},
		Tags: []types.Tag{{Key: aws.String(stack.LabelArch), Value: aws.String(a.Name)}, {Key: aws.String(stack.LabelService), Value: aws.String(s.Name)}},
	}
	return ExpressService{Arch: a.Name, Name: s.Name, Input: in}, nil
}

// maxExpressTasks: the sole replica stays alone; others may double.
func maxExpressTasks(n int32) int32 {
	if n == 1 {
		return 1
	}
	return n * expressMaxFactor
}

func expressFiles(t topology.Topology, opts Options) (map[string][]byte, error) {
	svcs, err := Express(t, opts)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range svcs {
		b, err := MarshalECS(e.Input)
		if err != nil {
			return nil, fmt.Errorf("%s/%s express service: %w", e.Arch, e.Name, err)
		}
		files["deploy/ecs-express/"+e.Arch+"-"+e.Name+".json"] = b
	}
	return files, nil
}
