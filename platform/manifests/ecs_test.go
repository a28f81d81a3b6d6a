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
	checkECSRoundTrip(t, shipped(t))
}

func checkECSRoundTrip(t *testing.T, topo topology.Topology) {
	t.Helper()
	services, err := ECS(topo, Options{})
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

// readECS decodes the deploy/ecs files under dir into the SDK's types, by <arch>/<service>.
func readECS(t *testing.T, dir string) (tasks map[string]*ecs.RegisterTaskDefinitionInput, svcs map[string]*ecs.CreateServiceInput) {
	t.Helper()
	tasks, svcs = map[string]*ecs.RegisterTaskDefinitionInput{}, map[string]*ecs.CreateServiceInput{}
	paths, err := filepath.Glob(filepath.Join(dir, "deploy", "ecs", "*", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no deploy/ecs/*/*.json in %s (%v): run mitosis deploy render", dir, err)
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

// TestECSInvariants checks the shipped definitions.
func TestECSInvariants(t *testing.T) {
	checkECS(t, repoRoot(t), shipped(t))
}

// checkECS checks the definitions of topo under dir: one task and one service per service of
// the topology; every container has a health check and awslogs, none is privileged or root;
// task sizes are valid Fargate sizes that hold their containers; every traced process has the
// ADOT sidecar; secrets stay secrets; and every peer a process is told of (host:port) is a
// service of its architecture that Service Connect exposes under that name and port.
func checkECS(t *testing.T, dir string, topo topology.Topology) {
	t.Helper()
	checkECSRoundTrip(t, topo)
	tasks, svcs := readECS(t, dir)
	n := 0
	for _, a := range topo.Archs {
		n += len(a.Services)
		for _, s := range a.Services {
			if _, ok := tasks[a.Name+"/"+s.Name]; !ok {
				t.Errorf("no task definition for %s/%s", a.Name, s.Name)
			}
		}
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
			} else {
				if c.Essential == nil || !*c.Essential {
					t.Errorf("%s: the process must be essential", what)
				}
				checkPeers(t, what, strings.Split(key, "/")[0], c, tasks, svcs)
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
			continue
		}
		if ns := deref(svc.ServiceConnectConfiguration.Namespace); ns != PartOf+"-"+strings.Split(key, "/")[0] {
			t.Errorf("%s: Service Connect namespace %s, not its architecture's", key, ns)
		}
		if svc.DeploymentConfiguration == nil || svc.DeploymentConfiguration.DeploymentCircuitBreaker == nil ||
			!svc.DeploymentConfiguration.DeploymentCircuitBreaker.Rollback {
			t.Errorf("%s: no circuit breaker with rollback", key)
		}
		// Service Connect names ports by their mapping: each must be one of the task's.
		for _, sc := range svc.ServiceConnectConfiguration.Services {
			if !slices.ContainsFunc(task.ContainerDefinitions, func(c types.ContainerDefinition) bool {
				return slices.ContainsFunc(c.PortMappings, func(m types.PortMapping) bool { return deref(m.Name) == deref(sc.PortName) })
			}) {
				t.Errorf("%s: Service Connect port %s is none of the task's port mappings", key, deref(sc.PortName))
			}
		}
	}
}

// checkPeers checks that every peer container c of arch is told of (host:port in its
// environment) is a service of arch exposed by Service Connect as host on port, on a port the
// peer's container maps.
func checkPeers(t *testing.T, what, arch string, c types.ContainerDefinition, tasks map[string]*ecs.RegisterTaskDefinitionInput, svcs map[string]*ecs.CreateServiceInput) {
	t.Helper()
	for _, e := range c.Environment {
		m := peerAddr.FindStringSubmatch(deref(e.Value))
		if m == nil || m[1] == "localhost" {
			continue
		}
		port, _ := strconv.Atoi(m[2])
		svc, ok := svcs[arch+"/"+m[1]]
		if !ok {
			t.Errorf("%s: %s=%s names no service of %s", what, deref(e.Name), deref(e.Value), arch)
			continue
		}
		exposed := svc.ServiceConnectConfiguration != nil && slices.ContainsFunc(svc.ServiceConnectConfiguration.Services, func(sc types.ServiceConnectService) bool {
			return slices.ContainsFunc(sc.ClientAliases, func(ca types.ServiceConnectClientAlias) bool {
				return deref(ca.DnsName) == m[1] && ca.Port != nil && int(*ca.Port) == port
			})
		})
		if !exposed {
			t.Errorf("%s: %s=%s, but Service Connect does not expose %s on %d", what, deref(e.Name), deref(e.Value), m[1], port)
		}
		mapped := slices.ContainsFunc(tasks[arch+"/"+m[1]].ContainerDefinitions, func(c types.ContainerDefinition) bool {
			return slices.ContainsFunc(c.PortMappings, func(pm types.PortMapping) bool { return pm.ContainerPort != nil && int(*pm.ContainerPort) == port })
		})
		if !mapped {
			t.Errorf("%s: %s=%s, but %s maps no port %d", what, deref(e.Name), deref(e.Value), m[1], port)
		}
	}
}

// TestECSExposesEveryPeer renders a split whose edge shares a process with a context others
// call (edge+catalog: cart-orders calls it on 9101): Service Connect must expose that gRPC
// port beside the edge's load balancer, or the caller's name would not resolve.
func TestECSExposesEveryPeer(t *testing.T) {
	topo, err := topology.Get("", topology.Options{Split: "edge+catalog,cart+orders,inventory+payments+shipping+notify", Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	checkECS(t, dir, topo)
	_, svcs := readECS(t, dir)
	edge, ok := svcs[topology.SplitName+"/edge-catalog"]
	if !ok {
		t.Fatal("no service edge-catalog")
	}
	var ports []string
	for _, sc := range edge.ServiceConnectConfiguration.Services {
		ports = append(ports, deref(sc.PortName))
	}
	if len(edge.LoadBalancers) != 1 || !slices.Equal(ports, []string{"grpc"}) {
		t.Errorf("edge-catalog: %d load balancers, Service Connect ports %v: want the edge behind one, gRPC in Service Connect",
			len(edge.LoadBalancers), ports)
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
	topo := shipped(t)
	repos := ECRRepositories(topo)
	opts := Options{}.withDefaults()
	services, err := ECS(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range services {
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
