// Package integration runs the shop's two architectures from the container images users run,
// through testcontainers-go against Podman, and holds the integration suites: the behaviour
// suite of the shop (shop/apitest) against the monolith and against the microservices'
// gateway, and the fault suite (a stopped payments service, a killed orders service).
//
// The images come from the platform's own build (imagebuild, the host's platform only) and
// are loaded into Podman with podmanrt: nothing is pulled, so testcontainers finds each one
// locally under its exact reference (localhost/mitosis-it/<name>:<tag>). What runs is the
// platform's topology (topology.Get): the same services, environment, ports, probes, CPU and
// memory limits as `mitosis up`, expanded for one container network where services find each
// other by alias (nats:4222, catalog:9101...).
//
// Every object a run makes is named mitosis-it-<run>-... and labelled with the run, so
// nothing collides with the real stack or another run, and Terminate removes exactly it.
// Leftovers of a run that died (a test binary killed by its timeout) are swept by the next run
// once they are older than StaleAfter.
//
// It is not a runtime for users (podmanrt is): Ryuk is off (its image cannot be pulled), so
// the caller must Terminate what it starts.
//
// Build with the Podman bindings' tags (podmanrt): remote exclude_graphdriver_btrfs
// btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/mitosis-dev/mitosis/platform/podmanrt"
)

// Prefix starts the name of every container and network a run makes.
const Prefix = "mitosis-it-"

// Labels every object of a run carries.
const (
	LabelRun     = "mitosis.it.run"     // the run's ID
	LabelStarted = "mitosis.it.started" // Unix seconds when the run made it
)

// StaleAfter is the age past which another run's objects are taken for leftovers.
const StaleAfter = 30 * time.Minute

// EnableHint says how to get a container engine; skip messages repeat it.
const EnableHint = "run `sudo bash platform/setup/podman.sh` to install Podman and start its API socket"

// ErrNoEngine is returned by Connect when no Podman API answers.
var ErrNoEngine = errors.New("no container engine")

// NewRunID returns a short random ID for a run's object names.
func NewRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// Connect points testcontainers-go at the Podman API (podmanrt.Socket) with the settings
// this machine needs: DOCKER_HOST the Podman socket (always: the images are loaded into that
// Podman, so containers must be made there too), TESTCONTAINERS_RYUK_DISABLED=true (the
// reaper's image cannot be pulled) and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (every port
// is published on loopback only), the last two unless already set. It silences
// testcontainers' own logging and returns the Podman runtime that loads images, or
// ErrNoEngine.
//
// It sets process environment variables: call it once, before any other use of
// testcontainers-go (which reads its configuration once).
func Connect(ctx context.Context) (*podmanrt.Runtime, error) {
	socket := podmanrt.Socket()
	if err := os.Setenv("DOCKER_HOST", socket); err != nil {
		return nil, fmt.Errorf("set DOCKER_HOST: %w", err)
	}
	for k, v := range map[string]string{
		"TESTCONTAINERS_RYUK_DISABLED": "true",
		"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
	} {
		if os.Getenv(k) == "" {
			if err := os.Setenv(k, v); err != nil {
				return nil, fmt.Errorf("set %s: %w", k, err)
			}
		}
	}
	tclog.SetDefault(tclog.NewNoopLogger())
	rt, err := podmanrt.Connect(ctx, podmanrt.Options{Stack: "mitosis-it"})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoEngine, err)
	}
	return rt, nil
}

// SweepStale removes the containers and networks of other runs older than StaleAfter: what a
// run killed before its cleanup left behind. Younger ones may belong to a run in progress and
// are left alone. It returns how many objects it removed.
func SweepStale(ctx context.Context, self string) (int, error) {
	docker, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoEngine, err)
	}
	stale := func(labels map[string]string) bool {
		run, ok := labels[LabelRun]
		if !ok || run == self {
			return false
		}
		sec, err := strconv.ParseInt(labels[LabelStarted], 10, 64)
		return err != nil || time.Since(time.Unix(sec, 0)) > StaleAfter
	}
	filter := client.Filters{}.Add("label", LabelRun)
	cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	n := 0
	var errs []error
	for _, c := range cs.Items {
		if !stale(c.Labels) {
			continue
		}
		if _, err := docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
			continue
		}
		n++
	}
	ns, err := docker.NetworkList(ctx, client.NetworkListOptions{Filters: filter})
	if err != nil {
		return n, errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, nw := range ns.Items {
		if !stale(nw.Labels) {
			continue
		}
		if _, err := docker.NetworkRemove(ctx, nw.ID, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", nw.Name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// PruneImages removes the tags of Repo that are not among keep (image references): the
// images of earlier sources, which every change of the code leaves behind. An image still
// used by a container stays. It returns how many tags it removed.
func PruneImages(ctx context.Context, keep []string) (int, error) {
	docker, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoEngine, err)
	}
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	imgs, err := docker.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list images: %w", err)
	}
	n := 0
	for _, img := range imgs.Items {
		for _, tag := range img.RepoTags {
			if !strings.HasPrefix(tag, Repo+"/") || kept[tag] {
				continue
			}
			if _, err := docker.ImageRemove(ctx, tag, client.ImageRemoveOptions{}); err == nil {
				n++
			}
		}
	}
	return n, nil
}
