package manifests

import (
	"encoding/json"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestReplicasFromTopology: a group's replicas in the topology are its pods in Kubernetes and
// its tasks in ECS (never fewer than the two a cluster keeps of a stateless group), and its
// containers in compose (one machine, like the local runtimes: as many as the topology says).
func TestReplicasFromTopology(t *testing.T) {
	topo, err := Select(repoRoot(t), Selection{Split: "edge,catalog*3,cart+orders*2,inventory+payments+shipping+notify"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files(topo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := KubeOf(topo, "split", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Deploy struct {
				Replicas int `json:"replicas"`
			} `json:"deploy"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(files["compose/split/compose.yaml"], &compose); err != nil {
		t.Fatal(err)
	}
	for svc, want := range map[string][3]int{ // Kubernetes, ECS, compose (0: one, the default)
		"catalog":                            {3, 3, 3},
		"cart-orders":                        {2, 2, 2},
		"inventory-payments-shipping-notify": {2, 2, 0},
		"gateway":                            {2, 2, 0},
	} {
		found := false
		for _, o := range objs {
			if d, ok := o.(*Deployment); ok && d.Metadata.Name == svc {
				found = true
				if int(*d.Spec.Replicas) != want[0] {
					t.Errorf("%s: Kubernetes runs %d replicas, want %d", svc, *d.Spec.Replicas, want[0])
				}
			}
		}
		if !found {
			t.Errorf("%s: no Deployment", svc)
		}
		var ecs struct {
			DesiredCount int `json:"desiredCount"`
		}
		if err := json.Unmarshal(files["deploy/ecs/split/"+svc+"-service.json"], &ecs); err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
		if ecs.DesiredCount != want[1] {
			t.Errorf("%s: ECS desires %d tasks, want %d", svc, ecs.DesiredCount, want[1])
		}
		if got := compose.Services[svc].Deploy.Replicas; got != want[2] {
			t.Errorf("%s: compose runs %d replicas, want %d", svc, got, want[2])
		}
	}
}
