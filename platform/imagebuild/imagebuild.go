// Package imagebuild turns Go main packages into OCI images without a Dockerfile or a daemon,
// the way ko does: a static binary (CGO off, -trimpath, stripped, version stamped) on an empty
// base that holds only CA certificates and a non-root user (65532), assembled with
// go-containerregistry into one OCI index for every platform asked for.
//
// Builds are reproducible: every timestamp is Options.Created (SOURCE_DATE_EPOCH or the commit
// time), tar entries are ordered and owned by root, so the same inputs give the same digest.
// Each image is written as an OCI layout under Options.Dir/<name>/oci with an SPDX SBOM per
// platform beside it, and a record of the inputs' hash so an image whose module sources,
// go.sum files and build flags did not change is not rebuilt. The package graph that hash
// follows (go list, per set of tags and platform) is kept too, for as long as the files it
// was read from say it holds (listcache.go).
//
// It does not run or load images: podmanrt loads the host's platform into Podman, and Push
// copies an index to a registry.
package imagebuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Spec names one image to build: which main package becomes which image.
type Spec struct {
	Name    string // image name, also the binary's name: "monolith", "nats-server"
	Package string // Go package pattern relative to Options.Root: "./monolith"
	// Tags are the build tags of its binary: several images can link different parts of one
	// main package (services/shop, one image per group of contexts).
	Tags []string
}

// Options are the inputs shared by every image of one build.
type Options struct {
	Root      string        // the Go workspace (or module) root every Spec.Package is relative to
	Dir       string        // where images are written: <Dir>/<name>/{oci,sbom-*.spdx.json,build.json}
	Platforms []v1.Platform // default: linux/amd64 and linux/arm64
	Version   string        // stamped into main.version and the version label (see GitStamp); default "dev"
	Revision  string        // the VCS revision label (see GitStamp)
	Source    string        // the source label: where the code lives; default DefaultSource
	Created   time.Time     // every timestamp in the image (see GitStamp); else the Unix epoch
	// GitStamp stamps each image from the last commit that touched its inputs: its revision,
	// its commit time as Created and `git describe` of it as Version, for each of the three
	// fields above that is unset. A commit that touches one service changes that image only.
	GitStamp bool
	Repo     string // the local image repository prefix: "localhost/mitosis"
	CACerts  string // CA bundle copied into the image; default /etc/ssl/certs/ca-certificates.crt
	Force    bool   // rebuild even when the inputs' hash matches the cache
	// Stored writes each layer as a gzip stream of uncompressed blocks, a valid layer of the
	// same media type, two to three times as large: for images that never leave this
	// machine, such as the tests', where compressing is most of an image's build under the
	// race detector (deflating a 60 MB binary: 6.8 s with it, 0.04 s stored). It is part of
	// the inputs' hash: a cached compressed image is not found for a stored build.
	Stored bool
	Logger *slog.Logger
	// Progress, when set, hears what Build compiles as it starts and when it is done, one
	// line per image started and per image done with its time: a cold build takes minutes,
	// which a caller should not spend in silence. Its lines are written one at a time.
	Progress io.Writer
}

// Image is one built (or cached) image: an OCI index with one manifest per platform.
type Image struct {
	Name       string     `json:"name"`
	Ref        string     `json:"ref"` // local reference: <Repo>/<name>:<tag>, tag from the host image digest
	Dir        string     `json:"dir"` // the image's folder; the OCI layout is Dir/oci
	Index      string     `json:"index"`
	InputsHash string     `json:"inputs_hash"`
	Version    string     `json:"version"`
	Revision   string     `json:"revision"`
	Created    time.Time  `json:"created"`
	Platforms  []Platform `json:"platforms"`
	Cached     bool       `json:"-"` // true when the cache held it and nothing was built
	// ExtractedBinary is where a caller put the host's binary (see ExtractBinary), if it did.
	ExtractedBinary string `json:"-"`
	BuildTimeMS     int64  `json:"build_time_ms"`
}

// Platform is one platform's image inside the index.
type Platform struct {
	Platform   string `json:"platform"`    // "linux/amd64"
	Digest     string `json:"digest"`      // the image manifest's digest
	ID         string `json:"id"`          // the config digest: the image ID Podman shows
	BinarySize int64  `json:"binary_size"` // bytes of the stripped binary
	// BinaryDigest is the binary's SHA-256: an image whose inputs changed but whose binary
	// did not (a change to code it does not link) is kept as it was.
	BinaryDigest string `json:"binary_digest"`
	ImageSize    int64  `json:"image_size"` // bytes of config and compressed layers
	SBOM         string `json:"sbom"`       // path of the SPDX JSON document
}

// DefaultPlatforms are the platforms built when Options.Platforms is empty.
func DefaultPlatforms() []v1.Platform {
	return []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
}

// HostPlatform is the Linux platform matching this machine's architecture: the one loaded into
// the local engine.
func HostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// ParsePlatform reads "linux/amd64" or "linux/arm64/v8".
func ParsePlatform(s string) (v1.Platform, error) {
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch, like linux/amd64", s)
	}
	return *p, nil
}

func (o *Options) defaults() error {
	if o.Root == "" {
		return errors.New("imagebuild: Options.Root is required")
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(o.Root, ".mitosis", "images")
	}
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms()
	}
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.Repo == "" {
		o.Repo = "localhost/mitosis"
	}
	if o.CACerts == "" {
		o.CACerts = "/etc/ssl/certs/ca-certificates.crt"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if !o.Created.IsZero() {
		o.Created = o.Created.UTC().Truncate(time.Second)
	}
	abs, err := filepath.Abs(o.Root)
	if err != nil {
		return fmt.Errorf("imagebuild: root: %w", err)
	}
	o.Root = abs
	return nil
}

// stampConcurrency bounds the git commands that stamp images at once.
const stampConcurrency = 4

// Build builds every spec's image for every platform, skipping those whose inputs' hash
// matches the cache. It returns the images in the order of specs.
func Build(ctx context.Context, opts Options, specs ...Spec) ([]Image, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		opts.Progress = &lineWriter{w: opts.Progress} // the builds and assemblies report side by side
	}
	for _, s := range specs {
		if s.Name == "" || s.Package == "" || strings.ContainsAny(s.Name, "/: ") {
			return nil, fmt.Errorf("imagebuild: spec %+v: want a plain name and a package", s)
		}
	}
	ca, err := os.ReadFile(opts.CACerts)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: CA certificates (install ca-certificates): %w", err)
	}
	hashStart := time.Now()
	inputs, err := inputsHashes(ctx, opts, ca, specs)
	if err != nil {
		return nil, err
	}
	// Each image's stamp asks git (a log and a describe): side by side, a few at a time.
	stampedList := make([]Options, len(specs))
	sem := make(chan struct{}, stampConcurrency)
	var sw sync.WaitGroup
	for i, s := range specs {
		sw.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			stampedList[i] = stamp(ctx, opts, inputs[s.Name].paths)
		})
	}
	sw.Wait()
	stamped := map[string]Options{} // each spec's options, stamped
	hashes := map[string]string{}
	for i, s := range specs {
		so := stampedList[i]
		stamped[s.Name] = so
		h := sha256.New()
		fmt.Fprintf(h, "%s\nversion=%s\nrevision=%s\ncreated=%d\n", inputs[s.Name].hash, so.Version, so.Revision, so.Created.Unix())
		hashes[s.Name] = hex.EncodeToString(h.Sum(nil))
	}
	opts.Logger.Debug("inputs hashed and stamped", "images", len(specs), "took", time.Since(hashStart))
	out := make([]Image, len(specs))
	var stale []int
	for i, s := range specs {
		if !opts.Force {
			if img, ok := cached(opts, s, hashes[s.Name]); ok {
				img.Cached = true
				out[i] = img
				opts.Logger.Debug("image up to date", "image", s.Name, "ref", img.Ref)
				continue
			}
		}
		stale = append(stale, i)
	}
	if len(stale) == 0 {
		return out, nil
	}
	staleSpecs := make([]Spec, len(stale))
	for j, i := range stale {
		staleSpecs[j] = specs[i]
	}
	start := time.Now()
	versions := map[string]string{}
	for _, s := range staleSpecs {
		versions[s.Name] = stamped[s.Name].Version
	}
	if opts.Progress != nil {
		names := make([]string, len(staleSpecs))
		for j, s := range staleSpecs {
			names[j] = s.Name
		}
		note := ""
		if len(stale) == len(specs) {
			note = " (a first build compiles everything and takes minutes)"
		}
		fmt.Fprintf(opts.Progress, "building %d image(s) for %d platform(s): %s%s\n",
			len(staleSpecs), len(opts.Platforms), strings.Join(names, ", "), note)
	}
	bins, began, cleanup, err := compile(ctx, opts, staleSpecs, versions)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, "compiled in %s; assembling the images\n", time.Since(start).Round(100*time.Millisecond))
	}
	bases := map[time.Time]v1.Layer{} // the base layer, once per timestamp
	for _, i := range stale {
		so := stamped[specs[i].Name]
		if _, ok := bases[so.Created]; !ok {
			if bases[so.Created], err = baseLayer(so.Created, opts.Stored, ca); err != nil {
				return nil, err
			}
		}
	}
	// The images are assembled side by side; one whose binary came out as the one it holds
	// already (same bytes, same stamp) is kept, under its new inputs' hash.
	errs := make([]error, len(stale))
	var wg sync.WaitGroup
	for j, i := range stale {
		wg.Go(func() {
			s := specs[i]
			so := stamped[s.Name]
			if img, ok := sameBinary(so, s, bins[s.Name]); ok {
				img.InputsHash = hashes[s.Name]
				errs[j] = writeRecord(img)
				opts.Logger.Info("image unchanged: same binary", "image", s.Name, "ref", img.Ref)
				opts.progress("  %s: unchanged, the same binary (%s)", s.Name, time.Since(began[s.Name]).Round(100*time.Millisecond))
				out[i] = img
				return
			}
			img, err := assemble(so, s, bins[s.Name], bases[so.Created], hashes[s.Name])
			if err != nil {
				errs[j] = fmt.Errorf("image %s: %w", s.Name, err)
				return
			}
			img.BuildTimeMS = time.Since(start).Milliseconds()
			if err := writeRecord(img); err != nil {
				errs[j] = err
				return
			}
			opts.progress("  %s: built (%s)", s.Name, time.Since(began[s.Name]).Round(100*time.Millisecond))
			opts.Logger.Info("image built", "image", s.Name, "ref", img.Ref, "index", img.Index)
			out[i] = img
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// OCIImage opens the built image of one platform from its OCI layout.
func (img Image) OCIImage(p v1.Platform) (v1.Image, error) {
	pl, ok := img.PlatformImage(p)
	if !ok {
		return nil, fmt.Errorf("image %s has no %s manifest", img.Name, p.String())
	}
	idx, err := img.OCIIndex()
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(pl.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}
	return idx.Image(h)
}

// OCIIndex opens the image's index from its OCI layout.
func (img Image) OCIIndex() (v1.ImageIndex, error) {
	lp, err := layout.FromPath(filepath.Join(img.Dir, "oci"))
	if err != nil {
		return nil, fmt.Errorf("image %s: open layout: %w", img.Name, err)
	}
	outer, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}
	h, err := v1.NewHash(img.Index)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name, err)
	}
	return outer.ImageIndex(h)
}

// PlatformImage finds one platform's entry.
func (img Image) PlatformImage(p v1.Platform) (Platform, bool) {
	want := p.OS + "/" + p.Architecture
	for _, pl := range img.Platforms {
		if pl.Platform == want {
			return pl, true
		}
	}
	return Platform{}, false
}

func platformString(p v1.Platform) string { return p.OS + "/" + p.Architecture }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// progress writes one line to Progress, when set.
func (o Options) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// lineWriter writes to w one Write at a time: Progress hears from the builds side by side.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
