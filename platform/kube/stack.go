package kube

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// StackOptions say which overlays of the repository's shipped topology (every file of its
// topologies/, what deploy/k8s is rendered from) PlayStack plays, and how.
type StackOptions struct {
	Root   string // the repository
	State  string // the state folder: admin token, request key, the identities under pki/<Prefix>
	Socket string // Podman's API (default podmanrt.Socket())
	Prefix string // the prefix of every name and the label of everything made
	// Arch is monolith, services, hybrid (any architecture of topologies/), or both
	// (monolith and services).
	Arch string
	// Edges are where each architecture's edge is published; one not named here is
	// published at its topology's edge (the hybrid's file: 127.0.0.1:8082).
	Edges map[string]string
	// Tag set: play <Repo>/<name>:<Tag> that Podman holds already (see TagAs), building
	// nothing; else build what changed for this machine and load it.
	Repo, Tag string
	// DryRun writes what each workload would be played with to Progress, the secrets
	// replaced by where they come from, and plays nothing, nor makes any secret.
	DryRun       bool
	ReadyTimeout time.Duration // how long an edge may take to answer /readyz
	Progress     io.Writer
	Logger       *slog.Logger
}

// Shipped is the topology of the repository's deploy files: every file of its topologies/.
func Shipped(root string) (topology.Topology, error) {
	return manifests.Shipped(filepath.Join(root, "topologies"))
}

// Archs reads an architecture's name as play and down take it: both (monolith and
// services), or one architecture of the shipped topology t.
func Archs(t topology.Topology, arch string) ([]string, error) {
	if arch == topology.Both || arch == "" {
		return []string{topology.Monolith, topology.Services}, nil
	}
	var names []string
	for _, a := range t.Archs {
		if a.Name == arch {
			return []string{arch}, nil
		}
		names = append(names, a.Name)
	}
	return nil, fmt.Errorf("--arch %q: want %s or %s", arch, strings.Join(names, ", "), topology.Both)
}

// dryRunToken and dryRunRequestKey stand for the secrets in what a dry run prints (%s: the
// file that holds it).
const (
	dryRunToken      = "<the admin token: $SHOP_ADMIN_TOKEN, else the content of %s>"
	dryRunRequestKey = "<the request key: $SHOP_REQUEST_KEY, else the content of %s>"
)

// PlayStack plays o.Arch's overlays on Podman, each in a network with DNS of its own, and
// the stack's renewer beside them (no network; it renews the identities of
// <State>/pki/<Prefix> in place), and waits until each edge answers /readyz on its published
// port. Playing again replaces the pods and keeps NATS's volume; Down removes it all.
func PlayStack(ctx context.Context, o StackOptions) error {
	start := time.Now()
	full, err := Shipped(o.Root)
	if err != nil {
		return err
	}
	list, err := Archs(full, o.Arch)
	if err != nil {
		return err
	}
	// Only the chosen architectures' images are needed: playing the monolith must not
	// require the hybrid's images to be loaded.
	t := full
	t.Archs = slices.DeleteFunc(slices.Clone(full.Archs), func(a topology.Arch) bool { return !slices.Contains(list, a.Name) })
	// The stack's renewer plays beside the overlays, as compose runs it: identities are host
	// folders here too. Its image is built and loaded with theirs, and it gets the CA's
	// files (stack.Identities).
	renewer := topology.NewRenewer()
	t.Renewer = &renewer
	// A dry run prints what it would play, which others may read (a terminal, a CI log, a
	// ticket): the secret's place, not the secret. Nor does it make one.
	token := fmt.Sprintf(dryRunToken, filepath.Join(o.State, "admin-token"))
	requestKey := fmt.Sprintf(dryRunRequestKey, filepath.Join(o.State, "request-key"))
	if !o.DryRun {
		if token, err = stack.AdminToken(o.State); err != nil {
			return err
		}
		if requestKey, err = stack.RequestKey(o.State); err != nil {
			return err
		}
	}
	refs := map[string]string{}
	switch {
	case o.DryRun && o.Tag == "":
		for _, im := range t.Images() {
			refs[im.Name] = manifests.Image(im.Name)
		}
	case o.Tag != "":
		// What TagAs (kube load, a test) put into Podman: no build.
		for _, im := range t.Images() {
			refs[im.Name] = o.Repo + "/" + im.Name + ":" + o.Tag
		}
	default:
		imgs, err := BuildImages(ctx, t, ImagesOptions{Root: o.Root, State: o.State, Repo: o.Repo, Socket: o.Socket, Logger: o.Logger})
		if err != nil {
			return err
		}
		refs = Refs(imgs)
		fmt.Fprintf(o.Progress, "images built and loaded (%s)\n", time.Since(start).Round(time.Millisecond))
	}
	var conn = ctx
	if !o.DryRun {
		if conn, err = Connect(ctx, o.Socket); err != nil {
			return err
		}
		if err := Loaded(ctx, conn, refs); err != nil {
			return err
		}
	}
	// The services' identities, in the state folder under the prefix's name (a stack of its
	// own); a dry run names where they would be.
	pki := stack.PKIDir(o.State, o.Prefix)
	tls := map[string]string{}
	for _, id := range t.Identities() {
		tls[id] = filepath.Join(pki, id)
	}
	if !o.DryRun {
		if tls, err = stack.Identities(o.Prefix, t, stack.UpOptions{PKI: pki}, &[2]int{imagebuild.UID, imagebuild.UID}); err != nil {
			return err
		}
	}
	// The NATS users of the overlays' base (every shipped architecture's), their passwords
	// kept beside the identities; a dry run names them.
	natsPW := map[string]string{}
	for _, u := range natsauth.Users(full) {
		natsPW[u] = "<the NATS password of " + u + ": the content of " + filepath.Join(pki, "nats-"+u) + ">"
	}
	if !o.DryRun {
		if natsPW, err = natsauth.Passwords(pki, natsauth.Users(full)); err != nil {
			return err
		}
	}
	for _, arch := range t.Archs {
		a := arch.Name
		ad := Adapt{Prefix: o.Prefix, Edge: cmp.Or(o.Edges[a], arch.Edge), Images: refs, AdminToken: token, RequestKey: requestKey, TLS: tls, NATSPasswords: natsPW, PKI: pki}
		if o.DryRun {
			if err := printWorkloads(o.Progress, a, ad); err != nil {
				return err
			}
			continue
		}
		p, err := Play(ctx, conn, PlayOptions{Adapt: ad, Overlay: a, ReadyTimeout: o.ReadyTimeout, Progress: o.Progress, Logger: o.Logger})
		if err != nil {
			return fmt.Errorf("%w\n(mitosis kube down --prefix %s removes what was made)", err, o.Prefix)
		}
		fmt.Fprintf(o.Progress, "%s: http://%s (%d pods; network %s)\n", a, p.Edge, len(p.Pods), p.Network)
	}
	if !o.DryRun {
		fmt.Fprintf(o.Progress, "played in %s; admin token: SHOP_ADMIN_TOKEN or %s; kube down --prefix %s removes it\n",
			time.Since(start).Round(time.Millisecond), filepath.Join(o.State, "admin-token"), o.Prefix)
	}
	return nil
}

// printWorkloads writes each workload of arch's overlay as Podman would play it, after the
// kube play flags that go with it.
func printWorkloads(w io.Writer, arch string, ad Adapt) error {
	objs, err := manifests.Kube(arch, manifests.Options{})
	if err != nil {
		return err
	}
	ws, err := ForPodman(arch, objs, ad)
	if err != nil {
		return err
	}
	for _, wl := range ws {
		b, err := wl.YAML()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "# kube play --network %s\n---\n%s", playNetwork(wl, NetworkName(ad.Prefix, arch)), b)
	}
	return nil
}
