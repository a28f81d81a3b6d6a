package processrt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// Status reports each recorded process: alive or not, ready or not, CPU (over a short sample)
// and resident memory.
func (r *Runtime) Status(ctx context.Context) ([]stack.Status, error) {
	recs, err := r.records()
	if err != nil {
		return nil, err
	}
	out := make([]stack.Status, len(recs))
	before := make([]uint64, len(recs))
	for i, rec := range recs {
		before[i], _ = cpuTicks(rec.PID)
	}
	sampleStart := time.Now()
	var wg sync.WaitGroup
	for i, rec := range recs {
		st := stack.Status{Arch: rec.Arch, Service: rec.Service, ReplicaOf: rec.Of, Name: stack.ObjectName(r.opts.Stack, rec.Arch, rec.Service),
			State: "exited", Health: stack.Unready, PID: rec.PID, TLSDir: identityDirOf(rec)}
		if p, ok := rec.Ports[strconv.Itoa(rec.Probe.Port)]; ok {
			st.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
		for cp, hp := range rec.Ports {
			if port, err := strconv.Atoi(cp); err == nil {
				if st.Ports == nil {
					st.Ports = map[int]string{}
				}
				st.Ports[port] = net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
			}
		}
		switch {
		case !alive(rec) && rec.Killed != nil:
			st.State = "killed"
			st.Detail = fmt.Sprintf("killed at %s; `mitosis start %s/%s` starts it again", rec.Killed.Format(time.RFC3339), rec.Arch, rec.Service)
		case !alive(rec):
			st.Detail = "see " + r.logPath(rec.Arch, rec.Service)
		default:
			st.State = "running"
			st.MemBytes = rss(rec.PID)
		}
		out[i] = st
		if st.State == "running" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := stack.CheckSteady(ctx, rec.Probe, st.Addr, tlsDirOf(rec)); err != nil {
					out[i].Health, out[i].Detail = stack.Unready, err.Error()
					return
				}
				out[i].Health = stack.Ready
			}()
		}
	}
	wg.Wait()
	if elapsed := time.Since(sampleStart); elapsed < 200*time.Millisecond {
		time.Sleep(200*time.Millisecond - elapsed) // CPU is a rate: it needs an interval
	}
	budgets := map[string]*stack.Budget{}
	for i, rec := range recs {
		if _, ok := budgets[rec.Arch]; !ok {
			budgets[rec.Arch] = r.budgetStatus(rec.Arch, recs)
		}
		out[i].Budget = budgets[rec.Arch]
	}
	elapsed := time.Since(sampleStart).Seconds()
	ticks := float64(clockTicks)
	for i, rec := range recs {
		if out[i].State != "running" {
			continue
		}
		after, err := cpuTicks(rec.PID)
		if err == nil && after >= before[i] {
			out[i].CPU = float64(after-before[i]) / ticks / elapsed * 100
		}
	}
	return out, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("bad stat")
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s, nil
}

func rss(pid int) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
