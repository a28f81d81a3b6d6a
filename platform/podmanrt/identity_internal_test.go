package podmanrt

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// A pod's identity is its folder, bind-mounted: `mitosis up` renames renewed files into it,
// which a mount of the folder shows inside the running container (one of each file would
// keep showing the inode it was made with). And a renewal leaves the pod's spec as it was,
// so up keeps the pod running rather than remake it; the process reads the new files at its
// next handshake. Without Podman: the spec is what this runtime would give it.
func TestIdentityFolderIsMountedAndRenewedInPlace(t *testing.T) {
	topo, err := topology.Get(topology.Services, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runtime{stack: "hc-mount", images: map[string]imagebuild.Image{}}
	for _, img := range topo.Images() {
		r.images[img.Name] = imagebuild.Image{Name: img.Name, Ref: "localhost/" + img.Name + ":test"}
	}
	pki := t.TempDir()
	opts := stack.UpOptions{PKI: pki}
	ids, err := stack.Identities(r.stack, topo, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := topo.Archs[0]
	specs := func() map[string]desired {
		out := map[string]desired{}
		for _, s := range a.Services {
			for _, p := range s.Processes() {
				d, err := r.desire(a, s, p, 0, opts, ids, natsauth.Creds{}, nil, nil, "")
				if err != nil {
					t.Fatal(err)
				}
				out[p.Name] = d
			}
		}
		return out
	}
	before := specs()
	mounted := 0
	for name, d := range before {
		id := d.Service.Identity()
		var tls []string
		for _, m := range appSpec(d, nil).Mounts {
			if m.Destination == topology.TLSMount || filepath.Dir(m.Destination) == topology.TLSMount {
				tls = append(tls, m.Source)
				if m.Type != "bind" || !slices.Contains(m.Options, "ro") || m.Destination != topology.TLSMount {
					t.Errorf("%s: identity mounted as %+v, want the folder bound read-only at %s", name, m, topology.TLSMount)
				}
			}
		}
		if id == "" {
			if len(tls) > 0 {
				t.Errorf("%s has no identity and mounts %v", name, tls)
			}
			continue
		}
		if len(tls) != 1 || tls[0] != ids[id] {
			t.Errorf("%s mounts %v for its identity, want its folder %s alone", name, tls, ids[id])
			continue
		}
		if st, err := os.Stat(tls[0]); err != nil || !st.IsDir() {
			t.Errorf("%s's identity mount %s is not a folder (%v)", name, tls[0], err)
		}
		if d.Env[topology.TLSDirEnv] != topology.TLSMount && d.Env[topology.NATSTLSDirEnv] != topology.TLSMount {
			t.Errorf("%s is not told its identity is at %s: %v", name, topology.TLSMount, d.Env)
		}
		mounted++
	}
	if mounted == 0 {
		t.Fatal("no pod of the services mounts an identity")
	}

	// Every certificate renewed, as an up renews one past half its life: same specs.
	ca, err := identity.OpenCA(pki, r.stack)
	if err != nil {
		t.Fatal(err)
	}
	for id, dir := range ids {
		certPEM, keyPEM, err := ca.Issue(id, identity.LeafLifetime)
		if err != nil {
			t.Fatal(err)
		}
		for f, b := range map[string][]byte{identity.KeyFile: keyPEM, identity.CertFile: certPEM} {
			if err := os.WriteFile(filepath.Join(dir, f+".new"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, f+".new"), filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	again, err := stack.Identities(r.stack, topo, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range specs() {
		if d.Hash != before[name].Hash || d.TLS != before[name].TLS || again[d.Service.Identity()] != ids[d.Service.Identity()] {
			t.Errorf("%s: renewed certificates change its spec (hash %s, was %s): up would remake the pod", name, d.Hash, before[name].Hash)
		}
	}
}
