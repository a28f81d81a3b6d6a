package manifests

import (
	"fmt"
	"maps"
	"math"
	"net"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// AWS Lambda, from a container image: the functions in deploy/lambda/<arch>-<service>.json,
// the JSON `aws lambda create-function --cli-input-json` takes, written from the SDK's own
// CreateFunctionInput.
//
// A service qualifies when its process serves HTTP and nothing else: the monolith (the whole
// group, which calls no peer over gRPC) and a gateway alone (the edge group without
// contexts). A group that holds some contexts but not all serves them to its peers over
// gRPC, which a function cannot; NATS keeps state, which a function cannot either. The
// function's store is NATS elsewhere (SHOP_NATS_URL), as services/host requires under Lambda.
//
// What Lambda changes, and the README says: every copy of the function is one more
// replica (so none is the sole one), a copy is frozen between invocations (the monolith's
// event consumers and sweeps run only while it serves a request), the peers and NATS are
// reached by DNS names in the function's VPC (<service>.<arch>.mitosis.internal, a Cloud Map
// private namespace), and the two secrets are filled in at deploy time (${SHOP_ADMIN_TOKEN},
// ${SHOP_REQUEST_KEY}: envsubst from Secrets Manager), since a function's environment cannot
// point at a secret.

// Lambda settings.
const (
	// LambdaTimeout is the functions' timeout, API Gateway's longest wait for an integration.
	LambdaTimeout = 30
	// lambdaMBPerCPU is the memory at which Lambda gives a function one whole vCPU (its CPU
	// grows with memory): a function gets the memory that buys its service's CPU share.
	lambdaMBPerCPU = 1769
	lambdaMinMB    = 128
	lambdaMaxMB    = 10240
	// LambdaDomain is the private DNS domain under which the functions find their peers.
	LambdaDomain = "mitosis.internal"
)

// LambdaFunction is one topology service as a Lambda function.
type LambdaFunction struct {
	Arch, Name string
	Input      *lambda.CreateFunctionInput
}

// Lambda returns the functions of t's services that can be one.
func Lambda(t topology.Topology, opts Options) ([]LambdaFunction, error) {
	opts = opts.withDefaults()
	var out []LambdaFunction
	for _, a := range t.Archs {
		for _, s := range a.Services {
			if !lambdaQualifies(s) {
				continue
			}
			fn, err := lambdaFunction(opts, a, s)
			if err != nil {
				return nil, err
			}
			out = append(out, fn)
		}
	}
	return out, nil
}

// lambdaQualifies: the monolith, or the edge alone (see the package comment above). ECS
// Express Mode takes the same ones: the services that answer the public.
func lambdaQualifies(s topology.Service) bool {
	g, err := bounded.ParseGroup(s.Group)
	return err == nil && s.Group != "" && g.Edge && (g.Whole() || len(g.Contexts) == 0)
}

func lambdaFunction(opts Options, a topology.Arch, s topology.Service) (LambdaFunction, error) {
	env, err := lambdaEnv(a, s)
	if err != nil {
		return LambdaFunction{}, err
	}
	delete(env, bounded.AddrEnv) // a function listens on nothing
	in := lambdaInput(opts, s, env, lambdaSpec{
		name:        PartOf + "-" + a.Name + "-" + s.Name,
		description: fmt.Sprintf("mitosis %s: %s (group %s) serving HTTP API invocations", a.Name, s.Name, s.Group),
		timeout:     LambdaTimeout,
		logGroup:    a.Name,
		tags:        map[string]string{"mitosis.arch": a.Name, "mitosis.service": s.Name},
	})
	return LambdaFunction{Arch: a.Name, Name: s.Name, Input: in}, nil
}

// lambdaEnv is s's environment as a function of either kind (the edge's, the checkout's
// steps'): privateEnv's, with its identity and its NATS user's password as variables for
// envsubst to fill in at deploy time (deployTimeVar), as the other secrets; every copy of a
// function is one more replica; X-Ray through the daemon Lambda runs beside it when active
// tracing is on (AWS_XRAY_DAEMON_ADDRESS), OTLP nowhere. The caller takes out what its kind
// does not serve.
func lambdaEnv(a topology.Arch, s topology.Service) (map[string]string, error) {
	env, err := privateEnv(a, s)
	if err != nil {
		return nil, err
	}
	lambdaIdentity(env) // ecsidentity.go
	for k, v := range env {
		if sec, ok := secretOf(v); ok {
			env[k] = deployTimeVar(sec.env)
		}
		env[k] = replaceNATSURLPassword(env[k], deployTimeVar("$VAR"))
	}
	maps.Copy(env, map[string]string{
		soleReplicaEnv:          "false",
		"OTEL_TRACES_EXPORTER":  "xray",
		"OTEL_METRICS_EXPORTER": "none",
	})
	return env, nil
}

// deployTimeVar is how a function's file names a value filled in at deploy time (envsubst,
// deploy/README.md): a function's environment cannot point at a secret.
func deployTimeVar(name string) string { return "${" + name + "}" }

// lambdaSpec is what tells one function from another beside its service and environment.
type lambdaSpec struct {
	name, description string
	timeout           int32
	logGroup          string // under ecsLogPrefix
	tags              map[string]string
}

// lambdaInput is the function of s with env (lambdaEnv's, adjusted): its image, and the
// memory that buys its service's CPU share, of which the Go runtime's limit is taken.
func lambdaInput(opts Options, s topology.Service, env map[string]string, spec lambdaSpec) *lambda.CreateFunctionInput {
	memory := min(lambdaMaxMB, max(lambdaMinMB, s.MemoryMB, int(math.Ceil(s.CPUs*lambdaMBPerCPU))))
	env["GOMEMLIMIT"] = topology.GoMemLimit(memory) // of the function's memory, not the share's
	return &lambda.CreateFunctionInput{
		FunctionName:  aws.String(spec.name),
		Description:   aws.String(spec.description),
		PackageType:   types.PackageTypeImage,
		Code:          &types.FunctionCode{ImageUri: aws.String(opts.ECSImage(s.Image))},
		Role:          aws.String(opts.arn("iam", "role/"+PartOf+"-lambda")),
		MemorySize:    aws.Int32(int32(memory)),
		Timeout:       aws.Int32(spec.timeout),
		Architectures: []types.Architecture{types.ArchitectureX8664},
		Environment:   &types.Environment{Variables: env},
		TracingConfig: &types.TracingConfig{Mode: types.TracingModeActive},
		VpcConfig:     &types.VpcConfig{SubnetIds: placeholderSubnets(), SecurityGroupIds: placeholderSecurityGroups()},
		LoggingConfig: &types.LoggingConfig{LogFormat: types.LogFormatJson, LogGroup: aws.String(ecsLogPrefix + spec.logGroup)},
		Tags:          spec.tags,
	}
}

// placeholderSubnets and placeholderSecurityGroups are the VPC every rendered AWS service
// runs in, placeholders in the style of AWS's documentation for the user's own.
func placeholderSubnets() []string {
	return []string{"subnet-0123456789abcdef0", "subnet-0123456789abcdef1"}
}

func placeholderSecurityGroups() []string { return []string{"sg-0123456789abcdef0"} }

// MarshalLambda writes v as the CLI's --cli-input-json takes it for Lambda: the SDK's field
// names as they are (Lambda's API spells them so), empty values left out.
func MarshalLambda(v any) ([]byte, error) { return marshalInput(v, false) }

func lambdaFiles(t topology.Topology, opts Options) (map[string][]byte, error) {
	fns, err := Lambda(t, opts)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, fn := range fns {
		b, err := MarshalLambda(fn.Input)
		if err != nil {
			return nil, fmt.Errorf("%s/%s function: %w", fn.Arch, fn.Name, err)
		}
		files["deploy/lambda/"+fn.Arch+"-"+fn.Name+".json"] = b
	}
	return files, nil
}

// privateEnv is s's environment for a platform where its peers and NATS are found by private
// DNS in the VPC, <service>.<arch>.LambdaDomain (a Cloud Map namespace per architecture), as
// functions and Express services find them: neither joins ECS Service Connect. NATS is
// dialled over TLS as the service's user; the secrets are left as their marks (secretOf, and
// the NATS password's in the URL) and the identity's folder for the renderer to replace
// (Express services: ecsIdentity; functions: lambdaIdentity).
func privateEnv(a topology.Arch, s topology.Service) (map[string]string, error) {
	_, env, err := topology.Expand(s, topology.Resolver{
		Addr: func(svc string, port int) (string, error) {
			o, ok := a.Service(svc)
			if !ok {
				return "", fmt.Errorf("unknown service %s", svc)
			}
			if port == 0 {
				port = o.Ports[0]
			}
			return net.JoinHostPort(svc+"."+a.Name+"."+LambdaDomain, strconv.Itoa(port)), nil
		},
		Listen:     func(port int) string { return net.JoinHostPort("0.0.0.0", strconv.Itoa(port)) },
		Data:       "/tmp/data", // unused: the store is NATS elsewhere
		AdminToken: adminTokenMark,
		RequestKey: requestKeyMark,
		NATSTLS:    true,
		NATSUser:   natsURLUserinfo(s),
	})
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", a.Name, s.Name, err)
	}
	// No scrape reaches either: a function listens on nothing, an Express service exposes
	// its edge's port alone. Their metrics go out over OTLP, if anywhere.
	delete(env, bounded.MetricsAddrEnv)
	return env, nil
}
