package imagebuild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The package graph of a listing (`go list -deps` for one set of tags and platform) is kept
// between builds: with ten tag sets, listing them again took most of a warm `up` (about 2 s
// of the 2.4 s of an `up` that changes nothing, ten `go list` side by side on two cores).
// A record is used again only when nothing go list read can have changed:
//   - its key: the Go version, the platform, the tags, the packages listed, the root and the
//     variables that choose files or modules;
//   - the contents of go.work, go.work.sum and every workspace module's go.mod and go.sum (a
//     module from the module cache is immutable: its version says it all);
//   - every workspace package folder of the graph, by its entries' names, sizes and
//     modification times (recursively for a package that embeds files).
//
// A folder whose entries changed (an edit) is parsed again with go/build, in process: when
// its Go files and its imports are what go list said, the graph is the same and the record
// is kept (the sources are hashed anew on every build anyway, so an edit still rebuilds the
// images that compile it); anything else (a file added or removed, an import changed, a
// package that embeds files, a toolchain other than this binary's) lists again.

// listCacheVersion changes when the record's format or meaning changes.
const listCacheVersion = "1"

// racyWindow is how close to the time a record was written a modification time must be for
// the folder's fingerprint not to be trusted: a file written again within the file system's
// clock tick, with the same size, would keep its modification time (git's "racy" entries).
const racyWindow = 2 * time.Second

// listRecord is one listing's cached graph.
type listRecord struct {
	Key      string            `json:"key"`
	Packages []*listedPackage  `json:"packages"` // the standard library's left out
	Files    map[string]string `json:"files"`    // go.work, go.mod, go.sum... -> hash of contents
	Dirs     map[string]string `json:"dirs"`     // workspace package folder -> fingerprint
}

// listKey names a listing: everything besides the files that decides what go list reports.
func listKey(opts Options, goenv goEnvironment, tags, platform string, specs []Spec) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\nroot=%s\ntags=%s\nplatform=%s\n", listCacheVersion, formatVersion, goenv["GOVERSION"], opts.Root, tags, platform)
	goenv.write(h, listEnv)
	pkgs := make([]string, len(specs))
	for i, s := range specs {
		pkgs[i] = s.Package
	}
	slices.Sort(pkgs)
	fmt.Fprintf(h, "packages=%s\n", strings.Join(pkgs, " "))
	return hex.EncodeToString(h.Sum(nil))
}

func (o Options) listCachePath(key string) string {
	return filepath.Join(o.Dir, ".golist", key[:32]+".json")
}

// fromModuleCache tells whether a package comes from the module cache (immutable).
func (p *listedPackage) fromModuleCache() bool {
	m := p.Module
	return m != nil && m.Version != "" && (m.Replace == nil || m.Replace.Version != "")
}

// newListRecord records a fresh listing.
func newListRecord(opts Options, key string, list []*listedPackage, roots map[string]bool, now time.Time) (*listRecord, error) {
	rec := &listRecord{Key: key, Files: map[string]string{}, Dirs: map[string]string{}}
	for _, f := range []string{"go.work", "go.work.sum"} {
		rec.Files[filepath.Join(opts.Root, f)] = ""
	}
	for _, p := range list {
		if p.Standard {
			continue
		}
		q := *p
		if !roots[p.ImportPath] {
			q.Deps = nil // only the listed packages' dependencies are read
		}
		rec.Packages = append(rec.Packages, &q)
		if p.fromModuleCache() {
			continue
		}
		if p.Module != nil && p.Module.GoMod != "" {
			rec.Files[p.Module.GoMod] = ""
			rec.Files[strings.TrimSuffix(p.Module.GoMod, ".mod")+".sum"] = ""
		}
		fp, err := dirFingerprint(p.Dir, len(p.EmbedFiles) > 0, now)
		if err != nil {
			return nil, err
		}
		rec.Dirs[p.Dir] = fp
	}
	for f := range rec.Files {
		rec.Files[f] = fileSum(f)
	}
	return rec, nil
}

// fileSum is the hash of a file's contents, "absent" when it does not exist.
func fileSum(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "absent"
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dirFingerprint hashes a folder's entries (name, kind, size, modification time); with
// recursive, those of its subfolders too. It returns "racy" for a folder with an entry
// modified later than racyWindow before now, which is never trusted: now is taken before
// whatever reads the folder (go list, go/build), so that an edit made while it read is
// seen by the next build.
func dirFingerprint(dir string, recursive bool, now time.Time) (string, error) {
	h := sha256.New()
	racy := false
	walk := func(path string, d fs.DirEntry) error {
		info, err := d.Info()
		if err != nil {
			return err
		}
		if now.Sub(info.ModTime()) < racyWindow {
			racy = true
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s %v %d %d\n", rel, info.Mode().Type(), info.Size(), info.ModTime().UnixNano())
		return nil
	}
	var err error
	if recursive {
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return walk(path, d)
		})
	} else {
		var entries []fs.DirEntry
		entries, err = os.ReadDir(dir)
		for _, e := range entries {
			if err == nil {
				err = walk(filepath.Join(dir, e.Name()), e)
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", dir, err)
	}
	if racy {
		return "racy", nil
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cachedList returns the recorded graph of a listing when it still holds (see above), with
// the record brought up to date; ok is false when go list must run.
func cachedList(opts Options, key string, goenv goEnvironment, tags, platform string, now time.Time) (list []*listedPackage, ok bool) {
	b, err := os.ReadFile(opts.listCachePath(key))
	if err != nil {
		return nil, false
	}
	var rec listRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Key != key {
		return nil, false
	}
	for f, sum := range rec.Files {
		if fileSum(f) != sum {
			return nil, false
		}
	}
	byDir := map[string]*listedPackage{}
	for _, p := range rec.Packages {
		byDir[p.Dir] = p
	}
	changed := false
	for dir, fp := range rec.Dirs {
		p := byDir[dir]
		if p == nil {
			return nil, false
		}
		embeds := len(p.EmbedFiles) > 0
		cur, err := dirFingerprint(dir, embeds, now)
		if err != nil {
			return nil, false
		}
		if cur == fp && fp != "racy" {
			continue
		}
		if embeds || !sameGraph(p, goenv, tags, platform) {
			return nil, false
		}
		rec.Dirs[dir] = cur
		changed = true
	}
	if changed {
		_ = saveListRecord(opts, &rec) // the next build parses again what it could not save
	}
	return rec.Packages, true
}

// sameGraph parses a workspace package folder again, with go/build, and tells whether it
// compiles the files and imports the packages go list reported. It only answers for this
// binary's own Go version and the host's platform without variables that add tool tags:
// go/build chooses files by this binary's release and tool tags.
func sameGraph(p *listedPackage, goenv goEnvironment, tags, platform string) bool {
	if goenv["GOVERSION"] != runtime.Version() || platform != runtime.GOOS+"/"+runtime.GOARCH {
		return false
	}
	// go/build chooses files by the tool tags this binary was built with: a setting that
	// `go list` would read otherwise needs go list.
	if goenv["GOEXPERIMENT"] != "" {
		return false
	}
	for k, tag := range map[string]string{"GOAMD64": "amd64.", "GOARM64": "arm64."} {
		if v := goenv[k]; v != "" && !slices.Contains(build.Default.ToolTags, tag+v) {
			return false
		}
	}
	ctxt := build.Default
	ctxt.CgoEnabled = false
	ctxt.BuildTags = nil
	if tags != "" {
		ctxt.BuildTags = strings.Split(tags, ",")
	}
	bp, err := ctxt.ImportDir(p.Dir, 0)
	if err != nil || len(bp.EmbedPatterns) > 0 {
		return false
	}
	return slices.Equal(bp.GoFiles, p.GoFiles) && slices.Equal(bp.CgoFiles, p.CgoFiles) &&
		slices.Equal(bp.SFiles, p.SFiles) && slices.Equal(bp.Imports, p.Imports)
}

// saveListRecord writes a record whole (a temporary file renamed over the old one).
func saveListRecord(opts Options, rec *listRecord) error {
	path := opts.listCachePath(rec.Key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("list cache: %w", err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("list cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".record-*")
	if err != nil {
		return fmt.Errorf("list cache: %w", err)
	}
	_, err = tmp.Write(b)
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("list cache: %w", err)
	}
	return nil
}
