package processrt

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// Down stops the stack's processes (SIGTERM, then SIGKILL after 5s) and removes their
// records, logs and data; with archs, those architectures' only, and the collector with the
// last of them (stack.DownArchs).
func (r *Runtime) Down(ctx context.Context, opts stack.DownOptions) (stack.Removed, error) {
	var removed stack.Removed
	recs, err := r.records()
	if err != nil {
		return removed, err
	}
	var present []string
	for _, rec := range recs {
		present = append(present, rec.Arch)
	}
	archs := stack.DownArchs(present, opts.Archs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, rec := range recs {
		if len(archs) > 0 && !slices.Contains(archs, rec.Arch) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if alive(rec) {
				stop(rec, 5*time.Second)
				mu.Lock()
				removed.Processes++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	entries, _ := os.ReadDir(r.stackDir())
	var dirs []string
	for _, e := range entries {
		if len(archs) == 0 || slices.Contains(archs, e.Name()) {
			dirs = append(dirs, e.Name())
			if err := r.removeArchDir(e.Name(), opts.Volumes); err != nil {
				return removed, err
			}
		}
	}
	_ = os.Remove(r.stackDir()) // only if empty
	n, err := r.removeCgroups(archs, dirs)
	removed.Cgroups = n
	return removed, err
}

// removeArchDir removes an architecture's folder: its records, logs and budget, and its
// services' data folders (<process>-data) too when volumes, else those alone stay.
func (r *Runtime) removeArchDir(arch string, volumes bool) error {
	dir := filepath.Join(r.stackDir(), arch)
	if volumes {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // nothing there
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), "-data") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	_ = os.Remove(dir) // only if empty
	return nil
}

// stop sends SIGTERM to the process's group, and SIGKILL after grace.
func stop(rec record, grace time.Duration) {
	if !alive(rec) {
		return
	}
	_ = syscall.Kill(-rec.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for alive(rec) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling a foreign process: there is nothing to wait on
	}
	if alive(rec) {
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
	}
}
