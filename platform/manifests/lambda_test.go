package manifests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// The checked-in functions are what the CLI takes: they read back into the SDK's
// CreateFunctionInput unchanged, name an image `mitosis push` sends, and describe a process
// services/host accepts under Lambda (the monolith on NATS elsewhere, or the edge alone), with
// memory that buys its service's CPU share.
func TestLambdaFunctions(t *testing.T) {
	topo := shipped(t)
	fns, err := Lambda(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	repos := ECRRepositories(topo)
	for _, fn := range fns {
		names = append(names, fn.Arch+"/"+fn.Name)
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "lambda", fn.Arch+"-"+fn.Name+".json"))
		if err != nil {
			t.Fatalf("%v: run mitosis deploy render", err)
		}
		var back lambda.CreateFunctionInput
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s/%s: %v", fn.Arch, fn.Name, err)
		}
		if !reflect.DeepEqual(&back, fn.Input) {
			t.Errorf("%s/%s does not survive the round trip:\n%s", fn.Arch, fn.Name, b)
		}
		in := fn.Input
		env := in.Environment.Variables
		g, err := bounded.ParseGroup(env["SHOP_GROUP"])
		if err != nil || !g.Edge || !(g.Whole() || len(g.Contexts) == 0) {
			t.Errorf("%s/%s: group %q cannot serve invocations (%v)", fn.Arch, fn.Name, env["SHOP_GROUP"], err)
		}
		// As its own NATS user, the password put in by envsubst at deploy time.
		if g.Whole() && !strings.HasPrefix(env["SHOP_NATS_URL"], "tls://"+g.Name()+":${"+natsauth.PasswordEnv(g.Name())+"}@nats."+fn.Arch+"."+LambdaDomain+":") {
			t.Errorf("%s/%s: the whole shop's store must be NATS elsewhere: %q", fn.Arch, fn.Name, env["SHOP_NATS_URL"])
		}
		for k, v := range env {
			if strings.Contains(v, "{{") || strings.Contains(v, "127.0.0.1") {
				t.Errorf("%s/%s: %s=%q is no address a function can use", fn.Arch, fn.Name, k, v)
			}
			if strings.HasSuffix(k, "_ADDR") && !strings.Contains(v, "."+fn.Arch+"."+LambdaDomain+":") {
				t.Errorf("%s/%s: peer %s=%q is not in the function's private namespace", fn.Arch, fn.Name, k, v)
			}
		}
		key, hasKey := env["SHOP_REQUEST_KEY"] // orders' secret: where orders runs
		if env["SHOP_ADMIN_TOKEN"] != "${SHOP_ADMIN_TOKEN}" || hasKey != g.Whole() || hasKey && key != "${SHOP_REQUEST_KEY}" || env["SHOP_SOLE_REPLICA"] != "false" {
			t.Errorf("%s/%s: secrets to fill in at deploy time, and never the sole replica: %v", fn.Arch, fn.Name, env)
		}
		if in.PackageType != types.PackageTypeImage || in.TracingConfig.Mode != types.TracingModeActive || env["OTEL_TRACES_EXPORTER"] != "xray" {
			t.Errorf("%s/%s: an image, traced to X-Ray through Lambda's daemon: %+v", fn.Arch, fn.Name, in)
		}
		if !slices.ContainsFunc(repos, func(r string) bool { return strings.HasSuffix(*in.Code.ImageUri, "/"+r+":latest") }) {
			t.Errorf("%s/%s: image %s is not among the ECR repositories %v", fn.Arch, fn.Name, *in.Code.ImageUri, repos)
		}
		s, _ := archOf(topo, fn.Arch).Service(fn.Name)
		if m := *in.MemorySize; m < lambdaMinMB || m > lambdaMaxMB || float64(m) < s.CPUs*lambdaMBPerCPU || int(m) < s.MemoryMB {
			t.Errorf("%s/%s: %d MB for %.3f CPUs and %d MiB", fn.Arch, fn.Name, m, s.CPUs, s.MemoryMB)
		}
		if *in.Timeout != LambdaTimeout || len(in.VpcConfig.SubnetIds) == 0 {
			t.Errorf("%s/%s: timeout %d, VPC %+v", fn.Arch, fn.Name, *in.Timeout, in.VpcConfig)
		}
	}
	want := []string{"hybrid/gateway", "monolith/monolith", "services/gateway"}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("functions %v, want %v: the monolith and every gateway alone, and no context", names, want)
	}
}

func archOf(t topology.Topology, name string) topology.Arch {
	for _, a := range t.Archs {
		if a.Name == name {
			return a
		}
	}
	return topology.Arch{}
}

// The Express services are the CLI's JSON for the same services as the functions: they read
// back into CreateExpressGatewayServiceInput unchanged, take their secrets from Secrets
// Manager, find their peers by private DNS, ask /readyz, and scale a gateway from its
// replicas while the monolith stays alone.
func TestExpressServices(t *testing.T) {
	topo := shipped(t)
	svcs, err := Express(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fns, err := Lambda(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != len(fns) {
		t.Errorf("%d Express services, %d functions: the same services qualify for both", len(svcs), len(fns))
	}
	for _, e := range svcs {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "ecs-express", e.Arch+"-"+e.Name+".json"))
		if err != nil {
			t.Fatalf("%v: run mitosis deploy render", err)
		}
		back := &ecs.CreateExpressGatewayServiceInput{}
		if err := json.Unmarshal(b, back); err != nil || !reflect.DeepEqual(back, e.Input) {
			t.Errorf("%s/%s does not survive the round trip (%v):\n%s", e.Arch, e.Name, err, b)
		}
		in := e.Input
		c := in.PrimaryContainer
		env := map[string]string{}
		for _, kv := range c.Environment {
			env[*kv.Name] = *kv.Value
		}
		g, _ := bounded.ParseGroup(env["SHOP_GROUP"])
		for k, v := range env {
			if strings.Contains(v, "{{") || strings.Contains(v, "127.0.0.1") || strings.HasSuffix(k, "_ADDR") && k != "SHOP_ADDR" && !strings.Contains(v, "."+e.Arch+"."+LambdaDomain+":") {
				t.Errorf("%s/%s: %s=%q", e.Arch, e.Name, k, v)
			}
		}
		var secrets []string
		for _, s := range c.Secrets {
			secrets = append(secrets, *s.Name)
			if !strings.HasPrefix(*s.ValueFrom, "arn:aws:secretsmanager:us-east-1:123456789012:secret:mitosis/") {
				t.Errorf("%s/%s: secret %s from %s", e.Arch, e.Name, *s.Name, *s.ValueFrom)
			}
		}
		if !slices.Contains(secrets, "SHOP_ADMIN_TOKEN") || env["SHOP_ADMIN_TOKEN"] != "" {
			t.Errorf("%s/%s: the admin token must come from Secrets Manager only: %v", e.Arch, e.Name, secrets)
		}
		if *in.HealthCheckPath != "/readyz" || *c.ContainerPort != topology.EdgePort {
			t.Errorf("%s/%s: health %s on port %d", e.Arch, e.Name, *in.HealthCheckPath, *c.ContainerPort)
		}
		st := in.ScalingTarget
		if g.Whole() && (*st.MinTaskCount != 1 || *st.MaxTaskCount != 1) || !g.Whole() && (*st.MinTaskCount < 2 || *st.MaxTaskCount < *st.MinTaskCount) {
			t.Errorf("%s/%s: tasks %d..%d", e.Arch, e.Name, *st.MinTaskCount, *st.MaxTaskCount)
		}
	}
}
