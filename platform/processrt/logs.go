package processrt

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// Logs prints the selected services' log files, each line prefixed with arch/service; with
// Follow it keeps reading them until ctx ends.
func (r *Runtime) Logs(ctx context.Context, opts stack.LogsOptions, w io.Writer) error {
	recs, err := r.records()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for _, rec := range recs {
		if !stack.Matches(opts.Services, rec.Arch, rec.Service, rec.Of) {
			continue
		}
		n++
		prefix := rec.Arch + "/" + rec.Service + " | "
		path := r.logPath(rec.Arch, rec.Service)
		emit := func(line string) {
			mu.Lock()
			fmt.Fprint(w, prefix+line+"\n")
			mu.Unlock()
		}
		if !opts.Follow {
			if err := tailFile(ctx, path, opts.Tail, false, emit); err != nil {
				return err
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = tailFile(ctx, path, opts.Tail, true, emit)
		}()
	}
	wg.Wait()
	if n == 0 {
		return fmt.Errorf("no service of stack %s matches %v", r.opts.Stack, opts.Services)
	}
	return nil
}

// tailFile emits the last n lines of path (all when n is 0) and, with follow, what is
// appended afterwards until ctx ends.
func tailFile(ctx context.Context, path string, n int, follow bool, emit func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(b) == 0 {
		lines = nil
	}
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		emit(l)
	}
	if !follow {
		return nil
	}
	rd := bufio.NewReader(f)
	var partial string
	for {
		line, err := rd.ReadString('\n')
		partial += line
		if err == nil {
			emit(strings.TrimSuffix(partial, "\n"))
			partial = ""
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond): // a file has no change notification here
		}
	}
}
