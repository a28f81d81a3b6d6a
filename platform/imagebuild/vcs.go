package imagebuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Stamp is what the environment says about a build's sources; each field left empty is
// found per image by Options.GitStamp.
type Stamp struct {
	Version string    // MITOSIS_VERSION
	Source  string    // MITOSIS_SOURCE, else the origin remote when it is a public URL
	Created time.Time // SOURCE_DATE_EPOCH
}

// DefaultSource is the source label when neither MITOSIS_SOURCE nor a git remote says.
const DefaultSource = "https://github.com/mitosis-dev/mitosis"

// StampFrom reads the stamp the environment imposes on a build of the sources in dir.
func StampFrom(ctx context.Context, dir string) (Stamp, error) {
	s := Stamp{Version: os.Getenv("MITOSIS_VERSION"), Source: os.Getenv("MITOSIS_SOURCE")}
	if s.Source == "" {
		s.Source = git(ctx, dir, "remote", "get-url", "origin")
		if !strings.HasPrefix(s.Source, "https://") || strings.Contains(s.Source, "@") {
			s.Source = DefaultSource // not a public URL (credentials, a local path): say the project's
		}
	}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
		}
		s.Created = time.Unix(sec, 0).UTC()
	}
	return s, nil
}

func git(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// stamp returns opts with Version, Revision and Created filled for an image whose sources are
// paths (git pathspecs): from the last commit that touched them when GitStamp is set, else
// "dev", none and the Unix epoch. Uncommitted changes do not move the stamp: the inputs' hash
// still sees them, so the image is rebuilt, with the stamp of the last commit.
func stamp(ctx context.Context, opts Options, paths []string) Options {
	if opts.GitStamp && (opts.Version == "" || opts.Revision == "" || opts.Created.IsZero()) {
		args := append([]string{"log", "-1", "--format=%H %ct", "--"}, paths...)
		if rev, ct, ok := strings.Cut(git(ctx, opts.Root, args...), " "); ok {
			if opts.Revision == "" {
				opts.Revision = rev
			}
			if sec, err := strconv.ParseInt(ct, 10, 64); err == nil && opts.Created.IsZero() {
				opts.Created = time.Unix(sec, 0).UTC()
			}
			if opts.Version == "" {
				opts.Version = git(ctx, opts.Root, "describe", "--tags", "--always", rev)
			}
		}
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Created.IsZero() {
		opts.Created = time.Unix(0, 0).UTC()
	}
	return opts
}
