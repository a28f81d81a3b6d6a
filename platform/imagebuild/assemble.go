package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The non-root user every image runs as (distroless's "nonroot").
const (
	UID      = 65532
	UserName = "nonroot"
	// BinDir holds the binary; the entrypoint is BinDir/<name>.
	BinDir = "/usr/local/bin"
	// DataDir is an empty directory owned by the non-root user: a volume mounted there starts
	// with that owner (Podman copies the image directory's ownership into a new volume).
	DataDir = "/data"
	// CACertsPath is where the CA bundle lands, Go's default and SSL_CERT_FILE.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
)

// OCI label keys every image carries.
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelVersion  = "org.opencontainers.image.version"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
)

type tarEntry struct {
	name string
	mode int64
	uid  int
	dir  bool
	body []byte
}

// layerFrom makes a gzip-compressed OCI layer from entries, every one stamped with created and
// written in the given order, so that the same entries give the same digest. Stored layers
// are gzip streams of uncompressed blocks (Options.Stored).
func layerFrom(created time.Time, stored bool, entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: created,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	b := buf.Bytes()
	level := gzip.BestSpeed // go-containerregistry's default, said here beside its alternative
	if stored {
		level = gzip.NoCompression
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching, tarball.WithCompressionLevel(level))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return l, nil
}

// baseLayer is what every image shares beneath its binary: users, CA certificates and a few
// directories. It is identical across images and platforms, so it is stored once.
func baseLayer(created time.Time, stored bool, ca []byte) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", UserName, UID, UID, UserName, UserName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", UserName, UID)
	return layerFrom(created, stored, []tarEntry{
		{name: "data", mode: 0o700, uid: UID, dir: true},
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, body: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl", mode: 0o755, dir: true},
		{name: "etc/ssl/certs", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca},
		{name: "home", mode: 0o755, dir: true},
		{name: "home/" + UserName, mode: 0o700, uid: UID, dir: true},
		{name: "tmp", mode: 0o1777, dir: true},
		{name: "usr", mode: 0o755, dir: true},
		{name: "usr/local", mode: 0o755, dir: true},
		{name: "usr/local/bin", mode: 0o755, dir: true},
	})
}

// Labels are the OCI labels of an image built with opts.
func Labels(opts Options, name string) map[string]string {
	l := map[string]string{
		LabelTitle:   name,
		LabelVersion: opts.Version,
		LabelCreated: opts.Created.UTC().Format(time.RFC3339),
	}
	if opts.Source != "" {
		l[LabelSource] = opts.Source
	}
	if opts.Revision != "" {
		l[LabelRevision] = opts.Revision
	}
	return l
}

// platformImage assembles one platform's image from the base layer and the binary.
func platformImage(opts Options, name string, p v1.Platform, base v1.Layer, binary []byte) (v1.Image, error) {
	bin, err := layerFrom(opts.Created, opts.Stored, []tarEntry{{name: BinDir[1:] + "/" + name, mode: 0o755, body: binary}})
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: opts.Created}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "mitosis: base (CA certificates, user nonroot)"}},
		mutate.Addendum{Layer: bin, History: v1.History{Created: created, CreatedBy: "mitosis: " + BinDir + "/" + name}},
	)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Config = v1.Config{
		Entrypoint: []string{BinDir + "/" + name},
		User:       fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir: "/",
		Env: []string{
			"PATH=" + BinDir,
			"HOME=/home/" + UserName,
			"SSL_CERT_FILE=" + CACertsPath,
		},
		Labels: Labels(opts, name),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return img, nil
}

// assemble builds the index of one spec from its binaries and writes it, with its SBOMs, to
// <opts.Dir>/<name>. The folder is replaced whole, so a reader never sees half an image.
func assemble(opts Options, s Spec, bins map[string]string, base v1.Layer, inputsHash string) (Image, error) {
	out := Image{
		Name:       s.Name,
		Dir:        filepath.Join(opts.Dir, s.Name),
		InputsHash: inputsHash,
		Version:    opts.Version,
		Revision:   opts.Revision,
		Created:    opts.Created,
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return out, fmt.Errorf("images dir: %w", err)
	}
	tmp, err := os.MkdirTemp(opts.Dir, "."+s.Name+"-")
	if err != nil {
		return out, fmt.Errorf("images dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var tag string
	for _, p := range opts.Platforms {
		path := bins[platformString(p)]
		binary, err := os.ReadFile(path)
		if err != nil {
			return out, fmt.Errorf("read binary: %w", err)
		}
		img, err := platformImage(opts, s.Name, p, base, binary)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.String(), err)
		}
		digest, err := img.Digest()
		if err != nil {
			return out, fmt.Errorf("%s: digest: %w", p.String(), err)
		}
		id, err := img.ConfigName()
		if err != nil {
			return out, fmt.Errorf("%s: config digest: %w", p.String(), err)
		}
		size, err := imageSize(img)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.String(), err)
		}
		sbomName := "sbom-" + p.OS + "-" + p.Architecture + ".spdx.json"
		doc, err := SBOM(path, s.Name, digest.String(), opts.Created)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.String(), err)
		}
		if err := os.WriteFile(filepath.Join(tmp, sbomName), doc, 0o644); err != nil {
			return out, fmt.Errorf("write SBOM: %w", err)
		}
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pp}})
		out.Platforms = append(out.Platforms, Platform{
			Platform:     platformString(p),
			Digest:       digest.String(),
			ID:           id.String(),
			BinarySize:   int64(len(binary)),
			BinaryDigest: fmt.Sprintf("%x", sha256.Sum256(binary)),
			ImageSize:    size,
			SBOM:         filepath.Join(out.Dir, sbomName),
		})
		if platformString(p) == platformString(HostPlatform()) {
			tag = digest.Hex[:16]
		}
	}
	annotated, ok := mutate.Annotations(idx, Labels(opts, s.Name)).(v1.ImageIndex)
	if !ok {
		return out, errors.New("annotate index: not an index")
	}
	idx = annotated
	d, err := idx.Digest()
	if err != nil {
		return out, fmt.Errorf("index digest: %w", err)
	}
	out.Index = d.String()
	if tag == "" {
		tag = d.Hex[:16]
	}
	out.Ref = opts.Repo + "/" + s.Name + ":" + tag

	lp, err := layout.Write(filepath.Join(tmp, "oci"), empty.Index)
	if err != nil {
		return out, fmt.Errorf("write layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": out.Ref,
	})); err != nil {
		return out, fmt.Errorf("write layout: %w", err)
	}
	// Replace the image's folder whole: the old one moves aside, the new one takes its place.
	old := tmp + ".old"
	if err := os.Rename(out.Dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, fmt.Errorf("replace %s: %w", out.Dir, err)
	}
	if err := os.Rename(tmp, out.Dir); err != nil {
		return out, fmt.Errorf("replace %s: %w", out.Dir, err)
	}
	_ = os.RemoveAll(old)
	return out, nil
}

// imageSize is what a registry stores for the image: manifest, config and compressed layers.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.RawManifest()
	if err != nil {
		return 0, fmt.Errorf("manifest: %w", err)
	}
	c, err := img.RawConfigFile()
	if err != nil {
		return 0, fmt.Errorf("config: %w", err)
	}
	total := int64(len(m) + len(c))
	layers, err := img.Layers()
	if err != nil {
		return 0, fmt.Errorf("layers: %w", err)
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return 0, fmt.Errorf("layer size: %w", err)
		}
		total += n
	}
	return total, nil
}

const recordName = "build.json"

func writeRecord(img Image) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return fmt.Errorf("image record: %w", err)
	}
	if err := os.WriteFile(filepath.Join(img.Dir, recordName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("image record: %w", err)
	}
	return nil
}

// Load reads the record of an image built earlier into dir (<Options.Dir>/<name>).
func Load(dir string) (Image, error) {
	var img Image
	b, err := os.ReadFile(filepath.Join(dir, recordName))
	if err != nil {
		return img, fmt.Errorf("image record: %w", err)
	}
	if err := json.Unmarshal(b, &img); err != nil {
		return img, fmt.Errorf("image record %s: %w", dir, err)
	}
	img.Dir = dir // the folder may have moved since
	for i := range img.Platforms {
		img.Platforms[i].SBOM = filepath.Join(dir, filepath.Base(img.Platforms[i].SBOM))
	}
	return img, nil
}

// sameBinary returns the image recorded for s when, for every platform asked for, it holds
// the very binary bins has now, with the same stamp: rebuilt inputs that made the same bytes.
func sameBinary(opts Options, s Spec, bins map[string]string) (Image, bool) {
	img, err := Load(filepath.Join(opts.Dir, s.Name))
	if err != nil || img.Version != opts.Version || img.Revision != opts.Revision || !img.Created.Equal(opts.Created) {
		return Image{}, false
	}
	if _, ok := cached(opts, s, img.InputsHash); !ok { // every file still there
		return Image{}, false
	}
	for _, p := range opts.Platforms {
		pl, ok := img.PlatformImage(p)
		if !ok || pl.BinaryDigest == "" {
			return Image{}, false
		}
		b, err := os.ReadFile(bins[platformString(p)])
		if err != nil || fmt.Sprintf("%x", sha256.Sum256(b)) != pl.BinaryDigest {
			return Image{}, false
		}
	}
	return img, true
}

// cached returns the recorded image when its inputs' hash is the one given, it holds every
// platform asked for (it may hold more: `up` asks for the host's only, `build` for all), and
// its files are all there.
func cached(opts Options, s Spec, inputsHash string) (Image, bool) {
	img, err := Load(filepath.Join(opts.Dir, s.Name))
	if err != nil || img.InputsHash != inputsHash {
		return Image{}, false
	}
	for _, p := range opts.Platforms {
		if _, ok := img.PlatformImage(p); !ok {
			return Image{}, false
		}
	}
	if _, err := os.Stat(filepath.Join(img.Dir, "oci", "index.json")); err != nil {
		return Image{}, false
	}
	for _, p := range img.Platforms {
		if _, err := os.Stat(p.SBOM); err != nil {
			return Image{}, false
		}
	}
	return img, true
}

// ExtractBinary writes the binary of the host platform's image into dir as
// <name>-<short image ID> (unless it is there already) and returns its path: the process
// runtime runs the very bytes the image holds. Older binaries of the same image are removed
// (a process still running one keeps it open; Linux frees it when the process ends).
func (img Image) ExtractBinary(dir string) (string, error) {
	pl, ok := img.PlatformImage(HostPlatform())
	if !ok {
		return "", fmt.Errorf("image %s was not built for %s", img.Name, platformString(HostPlatform()))
	}
	id := strings.TrimPrefix(pl.ID, "sha256:")
	if len(id) > 16 {
		id = id[:16]
	}
	path := filepath.Join(dir, img.Name+"-"+id)
	defer pruneBinaries(dir, img.Name, path)
	if fi, err := os.Stat(path); err == nil && fi.Size() == pl.BinarySize {
		return path, nil
	}
	v1img, err := img.OCIImage(HostPlatform())
	if err != nil {
		return "", err
	}
	layers, err := v1img.Layers()
	if err != nil || len(layers) == 0 {
		return "", fmt.Errorf("image %s: layers: %v", img.Name, err)
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		return "", fmt.Errorf("image %s: %w", img.Name, err)
	}
	defer rc.Close()
	want := BinDir[1:] + "/" + img.Name
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("image %s has no %s", img.Name, want)
		}
		if err != nil {
			return "", fmt.Errorf("image %s: %w", img.Name, err)
		}
		if h.Name != want {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		tmp, err := os.CreateTemp(dir, "."+img.Name+"-")
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(tmp, tr); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return "", fmt.Errorf("image %s: %w", img.Name, err)
		}
		if err := tmp.Chmod(0o755); err != nil {
			tmp.Close()
			return "", err
		}
		if err := tmp.Close(); err != nil {
			return "", err
		}
		return path, os.Rename(tmp.Name(), path)
	}
}

// pruneBinaries removes dir/<name>-<16 hex> files other than keep.
func pruneBinaries(dir, name, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, name+"-"+strings.Repeat("[0-9a-f]", 16)))
	for _, p := range old {
		if p != keep {
			_ = os.Remove(p)
		}
	}
}
