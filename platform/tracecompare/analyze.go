package tracecompare

import (
	"fmt"
	"sort"
	"time"
)

// Segment is a stretch of a critical path spent in one span, in one category.
type Segment struct {
	Span     *Span
	Category Category
	Start    time.Time
	End      time.Time
}

// Path is a critical path: the chain of spans that, one at a time, the trace waited on.
type Path struct {
	Total     time.Duration
	Breakdown map[Category]time.Duration
	Segments  []Segment // in time order
}

// Analysis is what one trace says.
type Analysis struct {
	Trace        *Trace
	RootLatency  time.Duration // the root span: what the caller waited for
	EndToEnd     time.Duration // from the root's start to the end of the last span
	EventLag     time.Duration // how long after the root's end the last span ended
	Request      Path          // the critical path until the root's end
	Full         Path          // the critical path until the last span's end, events included
	Spans        int
	SpansByKind  map[string]int
	Services     []string
	RemoteHops   int // parent-child edges that cross from one service to another
	ContextCalls int // calls from one bounded context to another: gRPC clients, or in-process
	Depth        int
	FanOut       int // the most children of one span
	Errors       int
	// Gaps say why the trace looks incomplete, nil when it does not: spans whose parent is
	// missing, gRPC calls without their server span. Spans still in an exporter's batch
	// (sent every 5 s by default) or dropped leave such gaps, and a call's missing server
	// time then counts as transport.
	Gaps []string
}

// Analyze computes t's analysis.
func Analyze(t *Trace) *Analysis {
	a := &Analysis{Trace: t, SpansByKind: map[string]int{}}
	root := t.Root
	a.RootLatency = root.Duration()
	ends := effectiveEnds(root)
	a.EndToEnd = ends[root].Sub(root.Start)
	a.EventLag = max(0, ends[root].Sub(root.End))
	a.Request = criticalPath(root, false, ends)
	a.Full = criticalPath(root, true, ends)

	services := map[string]bool{}
	for _, s := range t.Spans {
		a.Spans++
		a.SpansByKind[s.Kind]++
		services[s.Service] = true
		if s.Parent != nil && s.Parent.Service != s.Service {
			a.RemoteHops++
		}
		if s.isRemoteCall() || s.isLocalCall() {
			a.ContextCalls++
		}
		a.Depth = max(a.Depth, s.Depth)
		a.FanOut = max(a.FanOut, len(s.Children))
		if s.Error {
			a.Errors++
		}
		if s.isRemoteCall() && !hasServer(s) {
			a.Gaps = append(a.Gaps, "gRPC call "+s.Name+" without its server span")
		}
	}
	if t.Orphans > 0 {
		a.Gaps = append(a.Gaps, fmt.Sprintf("%d span(s) whose parent is missing", t.Orphans))
	}
	for s := range services {
		a.Services = append(a.Services, s)
	}
	sort.Strings(a.Services)
	return a
}

func hasServer(call *Span) bool {
	for _, c := range call.Children {
		if c.Kind == "server" {
			return true
		}
	}
	return false
}

// effectiveEnds is, for every span, the latest end among it and its descendants: a
// producer's effective end is its last consumer's.
func effectiveEnds(root *Span) map[*Span]time.Time {
	ends := map[*Span]time.Time{}
	var walk func(s *Span) time.Time
	walk = func(s *Span) time.Time {
		e := s.End
		for _, c := range s.Children {
			if ce := walk(c); ce.After(e) {
				e = ce
			}
		}
		ends[s] = e
		return e
	}
	walk(root)
	return ends
}

// criticalPath walks back from the end: at each moment the path is in the child that
// finished last before that moment, else in the span itself. With async, children are taken
// with their effective ends, so the path follows events past the end of their publisher,
// and the wait between a publish and its delivery is queueing.
func criticalPath(root *Span, async bool, ends map[*Span]time.Time) Path {
	end := func(s *Span) time.Time {
		if async {
			return ends[s]
		}
		return s.End
	}
	var segs []Segment
	own := func(s *Span, from, to time.Time) {
		if !to.After(from) {
			return
		}
		// After the span ended, the path waits for an asynchronous descendant: a message
		// on its way to its consumer.
		if cut := minTime(to, s.End); cut.After(from) {
			segs = append(segs, Segment{Span: s, Category: s.category(), Start: from, End: cut})
		}
		if cut := maxTime(from, s.End); to.After(cut) {
			segs = append(segs, Segment{Span: s, Category: Queueing, Start: cut, End: to})
		}
	}
	var walk func(s *Span, until time.Time)
	walk = func(s *Span, until time.Time) {
		children := make([]*Span, len(s.Children))
		copy(children, s.Children)
		sort.SliceStable(children, func(i, j int) bool { return end(children[i]).After(end(children[j])) })
		cursor := until
		for _, c := range children {
			if !cursor.After(s.Start) {
				break
			}
			if !c.Start.Before(cursor) {
				continue // it starts after the path has left this span
			}
			cEnd := maxTime(minTime(end(c), cursor), s.Start) // clocks of two processes may differ a little
			if !cEnd.After(c.Start) {
				continue
			}
			own(s, cEnd, cursor)
			walk(c, cEnd)
			cursor = maxTime(c.Start, s.Start)
		}
		own(s, s.Start, cursor)
	}
	walk(root, end(root))

	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Start.Before(segs[j].Start) })
	p := Path{Breakdown: map[Category]time.Duration{}, Segments: segs}
	for _, sg := range segs {
		d := sg.End.Sub(sg.Start)
		p.Breakdown[sg.Category] += d
		p.Total += d
	}
	return p
}

// OnPath reports whether s has a segment on p.
func (p Path) OnPath(s *Span) bool {
	for _, sg := range p.Segments {
		if sg.Span == s {
			return true
		}
	}
	return false
}

// Contributions sums p's time by category and span label: what the path is made of, in
// terms both architectures share (span names are the same in both).
func (p Path) Contributions() map[Contribution]time.Duration {
	out := map[Contribution]time.Duration{}
	for _, sg := range p.Segments {
		out[Contribution{Category: sg.Category, Span: sg.Span.Label()}] += sg.End.Sub(sg.Start)
	}
	return out
}

// Contribution names a part of a critical path.
type Contribution struct {
	Category Category `json:"category"`
	Span     string   `json:"span"`
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
