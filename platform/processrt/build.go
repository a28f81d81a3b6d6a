package processrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// build returns the topology's binaries: Options.Binaries, and the rest compiled for this
// machine, copied into <State>/bin under content-addressed names.
func (r *Runtime) build(ctx context.Context, t topology.Topology, progress io.Writer) (map[string]string, error) {
	bins := map[string]string{}
	// Images given as binaries run those; the others run their package built once, with no
	// build tags: every group's image of services/shop is then the one binary that links
	// every context, which runs any group as well (the tags only leave code out) and keeps
	// this loop to one build.
	byPackage := map[string][]string{} // package -> images
	var packages []string
	for _, im := range t.Images() {
		if p, ok := r.opts.Binaries[im.Name]; ok {
			bins[im.Name] = p
			continue
		}
		if _, ok := byPackage[im.Package]; !ok {
			packages = append(packages, im.Package)
		}
		byPackage[im.Package] = append(byPackage[im.Package], im.Name)
	}
	if len(packages) == 0 {
		return bins, nil
	}
	start := time.Now()
	built, err := r.goBuild(ctx, packages)
	if err != nil {
		return nil, err
	}
	for i, pkg := range packages {
		// Older builds go: a process still running one keeps its file open.
		old, _ := filepath.Glob(filepath.Join(r.binDir(), filepath.Base(filepath.Clean(pkg))) + "-" + strings.Repeat("[0-9a-f]", 16))
		for _, p := range old {
			if p != built[i] {
				_ = os.Remove(p)
			}
		}
		for _, im := range byPackage[pkg] {
			bins[im] = built[i]
		}
	}
	if progress != nil {
		fmt.Fprintf(progress, "built %d binaries into %s (%s)\n", len(packages), r.binDir(), time.Since(start).Round(time.Millisecond))
	}
	return bins, nil
}

// goBuild runs `go build` of packages and returns the binaries' copies in <State>/bin, in
// the order of packages, each named <name>-<first 16 hex digits of its SHA-256>: a later
// build never rewrites the file a process runs, and /proc/<pid>/exe tells which build a
// process runs.
//
// It builds into the repository's build folder, one per repository and user (under the
// user's cache, like Go's own), not one per state folder, and leaves the binaries there: go
// build then finds a binary whose inputs did not change up to date and skips linking it,
// which is most of a build's time (seconds per binary), for every stack and state folder of
// the repository. A lock keeps two builds (two mitosis calls, parallel tests) from
// rewriting a binary while the other copies it.
func (r *Runtime) goBuild(ctx context.Context, packages []string) ([]string, error) {
	dir := r.buildDir()
	for _, d := range []string{dir, r.binDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	args := append([]string{"build", "-trimpath", "-o", dir + string(filepath.Separator)}, packages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = r.opts.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %w\n%s", err, out)
	}
	copies := make([]string, len(packages))
	for i, pkg := range packages {
		name := filepath.Base(filepath.Clean(pkg))
		built := filepath.Join(dir, name)
		sum, err := fileHash(built)
		if err != nil {
			return nil, err
		}
		copies[i] = filepath.Join(r.binDir(), name+"-"+sum[:16])
		if _, err := os.Stat(copies[i]); err == nil {
			continue // this build's copy is there already
		}
		if err := copyExecutable(built, copies[i]); err != nil {
			return nil, fmt.Errorf("copy %s: %w", name, err)
		}
	}
	return copies, nil
}

// copyExecutable copies src to dst through a temporary file beside dst, so that dst is
// either absent or whole.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name()) // fails once renamed
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o755); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// buildDir is where goBuild builds: <user cache>/mitosis/build/<hash of the repository's
// path>, or <State>/build where the machine has no cache folder.
func (r *Runtime) buildDir() string {
	root, err := filepath.Abs(r.opts.Root)
	if err != nil {
		root = r.opts.Root
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(r.opts.State, "build")
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(cache, "mitosis", "build", hex.EncodeToString(sum[:8]))
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
