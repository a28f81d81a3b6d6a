package podmanrt

import (
	"testing"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// What up does to a pod that runs another spec depends on what changed (drift): a new
// image, environment or limit changes the app container's spec alone, and up replaces the
// app container in the pod; a new published address or start level changes the pod's own,
// which Podman cannot change on a pod that exists, and up makes the pod again. Without
// Podman: the hashes are what this runtime would label the pod and its container with.
func TestWhatChangesThePodAndWhatTheAppAlone(t *testing.T) {
	hashes := func(o topology.Options, level int, image string) desired {
		t.Helper()
		o.Collector = topology.NoCollector
		topo, err := topology.Get(topology.Monolith, o)
		if err != nil {
			t.Fatal(err)
		}
		r := &Runtime{stack: "drift", images: map[string]imagebuild.Image{}}
		for _, img := range topo.Images() {
			r.images[img.Name] = imagebuild.Image{Name: img.Name, Ref: "localhost/" + img.Name + ":" + image}
		}
		a := topo.Archs[0]
		s, _ := a.Service(topology.Monolith)
		d, err := r.desire(a, s, s.Processes()[0], level, stack.UpOptions{}, nil, natsauth.Creds{}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	env := func(s string) topology.Options {
		e, err := topology.ParseEnv(s)
		if err != nil {
			t.Fatal(err)
		}
		return topology.Options{Env: []topology.EnvSetting{e}}
	}
	was := hashes(topology.Options{}, 1, "a")
	for _, c := range []struct {
		change  string
		d       desired
		podToo  bool
		appSame bool
	}{
		{"nothing", hashes(topology.Options{}, 1, "a"), false, true},
		{"a new image", hashes(topology.Options{}, 1, "b"), false, false},
		{"an environment variable", hashes(env("monolith:GOGC=50"), 1, "a"), false, false},
		{"the edge's address", hashes(topology.Options{MonolithEdge: "127.0.0.1:18080"}, 1, "a"), true, false},
		{"the start level", hashes(topology.Options{}, 2, "a"), true, false},
	} {
		if podToo := c.d.PodHash != was.PodHash; podToo != c.podToo {
			t.Errorf("%s: the pod's spec changed %v, want %v", c.change, podToo, c.podToo)
		}
		if appSame := c.d.Hash == was.Hash; appSame != c.appSame {
			t.Errorf("%s: the app's spec the same %v, want %v", c.change, appSame, c.appSame)
		}
	}
}
