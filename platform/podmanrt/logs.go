package podmanrt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// Logs writes the logs of the selected services, each line prefixed with arch/service; with
// Follow it streams them all until ctx ends.
func (r *Runtime) Logs(ctx context.Context, opts stack.LogsOptions, w io.Writer) error {
	c, cancel := r.with(ctx)
	defer cancel()
	ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(r.filter()))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	sort.Slice(ctrs, func(i, j int) bool { return ctrs[i].Names[0] < ctrs[j].Names[0] })
	var mu sync.Mutex // one line at a time on w
	var wg sync.WaitGroup
	var errs []error
	n := 0
	for _, ct := range ctrs {
		arch, svc := ct.Labels[stack.LabelArch], ct.Labels[stack.LabelService]
		if !stack.Matches(opts.Services, arch, svc, ct.Labels[stack.LabelReplica]) {
			continue
		}
		n++
		prefix := arch + "/" + svc + " | "
		lo := new(containers.LogOptions).WithStdout(true).WithStderr(true).WithFollow(opts.Follow)
		if opts.Tail > 0 {
			lo = lo.WithTail(strconv.Itoa(opts.Tail))
		}
		run := func() error {
			lines := make(chan string, 64)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for l := range lines {
					mu.Lock()
					fmt.Fprint(w, prefix+strings.TrimRight(l, "\n")+"\n")
					mu.Unlock()
				}
			}()
			err := containers.Logs(c, ct.ID, lo, lines, lines)
			close(lines)
			<-done
			if err != nil && c.Err() == nil {
				return fmt.Errorf("logs of %s: %w", arch+"/"+svc, err)
			}
			return nil
		}
		if !opts.Follow {
			if err := run(); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n == 0 {
		return fmt.Errorf("no service of stack %s matches %v", r.stack, opts.Services)
	}
	return errors.Join(errs...)
}
