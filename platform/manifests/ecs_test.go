package manifests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestECSRoundTrip writes every definition as the CLI's JSON and reads it back into the SDK's
// input types: nothing is lost or renamed on the way.
func TestECSRoundTrip(t *testing.T) {
	services, err := ECS(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range services {
		for _, v := range []any{e.Task, e.Service} {
			b, err := MarshalECS(v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(b, back); err != nil {
				t.Fatalf("%s/%s: %v", e.Arch, e.Name, err)
			}
			if !reflect.DeepEqual(back, v) {
				t.Errorf("%s/%s: %T does not survive the round trip:\n%s", e.Arch, e.Name, v, b)
			}
			if strings.Contains(string(b), `"ContainerDefinitions"`) || strings.Contains(string(b), "null") {
				t.Errorf("%s/%s: not the API's field names, or nulls left:\n%s", e.Arch, e.Name, b)
			}
		}
	}
}

// readShipped decodes the checked-in deploy/ecs files into the SDK's types.
func readShipped(t *testing.T) (tasks map[string]*ecs.RegisterTaskDefinitionInput, svcs map[string]*ecs.CreateServiceInput) {
	t.Helper()
	tasks, svcs = map[string]*ecs.RegisterTaskDefinitionInput{}, map[string]*ecs.CreateServiceInput{}
	paths, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "ecs", "*", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no deploy/ecs/*/*.json (%v): run mitosis deploy render", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		key := filepath.Base(filepath.Dir(p)) + "/" + strings.TrimSuffix(strings.TrimSuffix(filepath.Base(p), "-task.json"), "-service.json")
		var v any
		switch {
		case strings.HasSuffix(p, "-task.json"):
			task := &ecs.RegisterTaskDefinitionInput{}
			tasks[key], v = task, task
		case strings.HasSuffix(p, "-service.json"):
			svc := &ecs.CreateServiceInput{}
			svcs[key], v = svc, svc
		default:
			t.Fatalf("unexpected file %s", p)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields() // a field the SDK does not know is a misspelling
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	return tasks, svcs
}

// TestECSInvariants checks the shipped definitions: every container has a health check and
// awslogs, none is privileged or root, task sizes are valid Fargate sizes that hold their
// containers, every traced process has the ADOT sidecar, and secrets stay secrets.
func TestECSInvariants(t *testing.T) {
	tasks, svcs := readShipped(t)
	full, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range full.Archs {
		n += len(a.Services)
	}
	if len(tasks) != n || len(svcs) != n {
		t.Errorf("%d task and %d service definitions for %d services", len(tasks), len(svcs), n)
	}
	sizes := FargateSizes()
	for key, task := range tasks {
		if task.NetworkMode != types.NetworkModeAwsvpc || !slices.Equal(task.RequiresCompatibilities, []types.Compatibility{types.CompatibilityFargate}) {
			t.Errorf("%s: network mode %q, compatibilities %v", key, task.NetworkMode, task.RequiresCompatibilities)
		}
		cpu, err1 := strconv.Atoi(deref(task.Cpu))
		mem, err2 := strconv.Atoi(deref(task.Memory))
		if err1 != nil || err2 != nil || !slices.Contains(sizes[cpu], mem) {
			t.Errorf("%s: %s CPU units with %s MiB is not a Fargate size", key, deref(task.Cpu), deref(task.Memory))
		}
		sumCPU, sumMem := 0, 0
		hasSidecar, traced := false, false
		for _, c := range task.ContainerDefinitions {
			what := key + "/" + deref(c.Name)
			if c.HealthCheck == nil || len(c.HealthCheck.Command) < 2 || c.HealthCheck.Command[0] != "CMD" {
				t.Errorf("%s: health check %+v", what, c.HealthCheck)
			}
			if c.Privileged == nil || *c.Privileged {
				t.Errorf("%s: privileged must be set, and false", what)
			}
			if c.ReadonlyRootFilesystem == nil || !*c.ReadonlyRootFilesystem {
				t.Errorf("%s: root file system is writable", what)
			}
			if c.LinuxParameters == nil || c.LinuxParameters.Capabilities == nil || !slices.Equal(c.LinuxParameters.Capabilities.Drop, []string{"ALL"}) {
				t.Errorf("%s: capabilities not dropped", what)
			}
			lc := c.LogConfiguration
			if lc == nil || lc.LogDriver != types.LogDriverAwslogs || lc.Options["awslogs-group"] == "" ||
				lc.Options["awslogs-region"] == "" || lc.Options["awslogs-stream-prefix"] == "" {
				t.Errorf("%s: log configuration %+v", what, lc)
			}
			if c.User != nil && (strings.HasPrefix(*c.User, "0") || *c.User == "root") {
				t.Errorf("%s: runs as %s", what, *c.User)
			}
			if c.Memory == nil {
				t.Errorf("%s: no hard memory limit", what)
			} else {
				sumMem += int(*c.Memory)
			}
			sumCPU += int(c.Cpu)
			for _, e := range c.Environment {
				if strings.Contains(deref(e.Name), "TOKEN") || strings.Contains(deref(e.Value), "{{") {
					t.Errorf("%s: environment %s=%q", what, deref(e.Name), deref(e.Value))
				}
				if deref(e.Name) == "OTEL_SERVICE_NAME" {
					traced = true
				}
				if deref(e.Name) == "OTEL_EXPORTER_OTLP_ENDPOINT" && !strings.Contains(deref(e.Value), "localhost") {
					t.Errorf("%s: OTLP goes to %s, not the sidecar", what, deref(e.Value))
				}
			}
			if deref(c.Name) == ADOTContainer {
				hasSidecar = true
				if c.Essential == nil || *c.Essential {
					t.Errorf("%s: the collector must not be essential", what)
				}
			} else if c.Essential == nil || !*c.Essential {
				t.Errorf("%s: the process must be essential", what)
			}
		}
		if sumCPU > cpu || sumMem > mem {
			t.Errorf("%s: containers want %d CPU units and %d MiB, the task has %d and %d", key, sumCPU, sumMem, cpu, mem)
		}
		if traced != hasSidecar {
			t.Errorf("%s: traced %v, ADOT sidecar %v", key, traced, hasSidecar)
		}
	}
	for key, svc := range svcs {
		task, ok := tasks[key]
		if !ok {
			t.Errorf("%s: service without task definition", key)
			continue
		}
		if deref(svc.TaskDefinition) != deref(task.Family) || svc.LaunchType != types.LaunchTypeFargate {
			t.Errorf("%s: task %s (family %s), launch type %s", key, deref(svc.TaskDefinition), deref(task.Family), svc.LaunchType)
		}
		if svc.NetworkConfiguration == nil || svc.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp != types.AssignPublicIpDisabled {
			t.Errorf("%s: tasks must not get public addresses", key)
		}
		if svc.ServiceConnectConfiguration == nil || !svc.ServiceConnectConfiguration.Enabled {
			t.Errorf("%s: Service Connect is off: its peers' names would not resolve", key)
		}
		if svc.DeploymentConfiguration == nil || svc.DeploymentConfiguration.DeploymentCircuitBreaker == nil ||
			!svc.DeploymentConfiguration.DeploymentCircuitBreaker.Rollback {
			t.Errorf("%s: no circuit breaker with rollback", key)
		}
	}
}

func TestFargateSize(t *testing.T) {
	for _, c := range []struct{ cpu, mem, wantCPU, wantMem int }{
		{256, 192, 256, 512},
		{256, 600, 256, 1024},
		{512, 256, 512, 1024},
		{1024, 384, 1024, 2048},
		{256, 3000, 512, 3072},
		{1100, 100, 2048, 4096},
	} {
		cpu, mem, err := fargateSize(c.cpu, c.mem)
		if err != nil || cpu != c.wantCPU || mem != c.wantMem {
			t.Errorf("fargateSize(%d, %d) = %d, %d, %v; want %d, %d", c.cpu, c.mem, cpu, mem, err, c.wantCPU, c.wantMem)
		}
	}
	if _, _, err := fargateSize(32768, 512); err == nil {
		t.Error("no Fargate task has 32 vCPU")
	}
}

func TestECRRepositoriesAreWherePushGoes(t *testing.T) {
	repos, err := ECRRepositories()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{}.withDefaults()
	for _, e := range mustECS(t) {
		for _, c := range e.Task.ContainerDefinitions {
			img := deref(c.Image)
			if !strings.HasPrefix(img, opts.Registry()+"/") {
				continue
			}
			repo := strings.TrimPrefix(img, strings.TrimSuffix(opts.Registry(), "/"+PartOf)+"/")
			repo = repo[:strings.LastIndex(repo, ":")]
			if !slices.Contains(repos, repo) {
				t.Errorf("%s uses %s, not among the ECR repositories %v", e.Name, img, repos)
			}
		}
	}
}

func mustECS(t *testing.T) []ECSService {
	t.Helper()
	s, err := ECS(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
