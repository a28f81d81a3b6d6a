package tracecollect

import (
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// Bounds of the metric store: the last DefaultMetricWindow of metrics, in at most
// DefaultMaxMetricBytes (an estimate). A local stack's processes push a few hundred series
// each every 10 seconds (MetricExportInterval): both architectures together, about
// 1,500 points a push, 100 to 250 bytes each (a histogram's buckets are most of it), so
// 10 minutes take about 15 MiB at most.
const (
	DefaultMetricWindow   = 10 * time.Minute
	DefaultMaxMetricBytes = 24 << 20
)

// MetricStore keeps the OTLP metrics received in the last window, oldest first, within a
// byte bound: what does not fit pushes the oldest points out, and a point older than the
// window goes at the next Add or read. A series (a resource, a metric, an attribute set)
// is kept once, with its points.
type MetricStore struct {
	mu       sync.Mutex
	window   time.Duration
	maxBytes int
	now      func() time.Time

	series map[string]*metricSeries
	points []storedPoint // oldest first, from head on
	head   int
	bytes  int
	nextID int
	stats  MetricStats // the counters; Stats fills in the rest
}

// MetricStats count what the store holds and what it was sent.
type MetricStats struct {
	Series   int   `json:"series"`
	Points   int   `json:"points"`
	Bytes    int   `json:"bytes"`
	MaxBytes int   `json:"max_bytes"`
	WindowS  int64 `json:"window_seconds"`
	Received int64 `json:"received_points"`
	Evicted  int64 `json:"evicted_points"` // pushed out by the byte bound before their window was over
	Skipped  int64 `json:"skipped_points"` // of a kind the store does not keep
}

type metricSeries struct {
	key    string
	id     int
	desc   MetricSeries // Points left empty
	refs   int          // points of it in the store
	bytes  int
	bounds []float64 // a histogram's bucket bounds, shared by its points while they do not change
}

type storedPoint struct {
	s        *metricSeries
	received time.Time
	p        MetricPoint
	bytes    int
}

// MetricSeries is one time series: a metric of one resource with one attribute set, and
// its points in time order.
type MetricSeries struct {
	// Resource holds the resource attributes that say which process it is (resourceKeys).
	Resource    map[string]string `json:"resource"`
	Scope       string            `json:"scope,omitempty"`
	Name        string            `json:"name"`
	Unit        string            `json:"unit,omitempty"`
	Type        string            `json:"type"`                  // gauge, sum or histogram
	Temporality string            `json:"temporality,omitempty"` // cumulative or delta (sums and histograms)
	Monotonic   bool              `json:"monotonic,omitempty"`   // a sum that only grows
	Attributes  map[string]string `json:"attributes,omitempty"`
	Points      []MetricPoint     `json:"points"`
}

// MetricPoint is one data point: a gauge's or sum's value, or a histogram's count, sum and
// buckets (counts per upper bound, the last one unbounded).
type MetricPoint struct {
	Time  time.Time `json:"time"`
	Start time.Time `json:"start,omitzero"` // where a cumulative series counts from
	// Received is when the collector got the point: the same for every point of one export
	// (one push of one process), where Time is when each instrument was read, a little apart.
	// A reader that lines several processes' counts up by their pushes goes by it.
	Received time.Time `json:"received"`
	Value    float64   `json:"value,omitempty"`
	Count    uint64    `json:"count,omitempty"`
	Sum      float64   `json:"sum,omitempty"`
	Bounds   []float64 `json:"bounds,omitempty"`
	Buckets  []uint64  `json:"buckets,omitempty"`
}

// resourceKeys are the resource attributes a series keeps: enough to tell the processes
// apart (several replicas share a service name), few enough to stay small.
var resourceKeys = []string{"service.name", "service.namespace", "service.version", "service.instance.id",
	"mitosis.architecture", "host.name", "process.pid"}

// NewMetricStore returns a store of the last window of metrics, in at most maxBytes; 0
// means the defaults. now is the clock (nil: time.Now).
func NewMetricStore(window time.Duration, maxBytes int, now func() time.Time) *MetricStore {
	if window <= 0 {
		window = DefaultMetricWindow
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMetricBytes
	}
	if now == nil {
		now = time.Now
	}
	return &MetricStore{window: window, maxBytes: maxBytes, now: now, series: map[string]*metricSeries{}}
}

// Approximate sizes, for the byte bound: a point's fixed part (the struct itself, so that a
// field added to it counts) and a series' (its map entry, key and maps), beyond the bytes of
// its strings and slices.
const (
	pointOverhead  = int(unsafe.Sizeof(MetricPoint{}))
	seriesOverhead = 240
)

// Add stores the points of rms, received now. Exponential histograms and summaries are
// counted as skipped: nothing this project runs sends them.
func (m *MetricStore) Add(rms []*metricspb.ResourceMetrics) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, rm := range rms {
		res := resourceLabels(rm.GetResource().GetAttributes())
		for _, sm := range rm.GetScopeMetrics() {
			scope := sm.GetScope().GetName()
			for _, metric := range sm.GetMetrics() {
				m.addMetric(now, res, scope, metric)
			}
		}
	}
	m.expire(now)
}

func (m *MetricStore) addMetric(now time.Time, res map[string]string, scope string, metric *metricspb.Metric) {
	desc := MetricSeries{Resource: res, Scope: scope, Name: metric.GetName(), Unit: metric.GetUnit()}
	switch d := metric.GetData().(type) {
	case *metricspb.Metric_Gauge:
		desc.Type = "gauge"
		for _, dp := range d.Gauge.GetDataPoints() {
			m.addPoint(now, desc, dp.GetAttributes(), numberPoint(dp))
		}
	case *metricspb.Metric_Sum:
		desc.Type, desc.Monotonic = "sum", d.Sum.GetIsMonotonic()
		desc.Temporality = temporality(d.Sum.GetAggregationTemporality())
		for _, dp := range d.Sum.GetDataPoints() {
			m.addPoint(now, desc, dp.GetAttributes(), numberPoint(dp))
		}
	case *metricspb.Metric_Histogram:
		desc.Type = "histogram"
		desc.Temporality = temporality(d.Histogram.GetAggregationTemporality())
		for _, dp := range d.Histogram.GetDataPoints() {
			m.addPoint(now, desc, dp.GetAttributes(), MetricPoint{Time: unixNano(dp.GetTimeUnixNano()), Start: unixNano(dp.GetStartTimeUnixNano()),
				Count: dp.GetCount(), Sum: dp.GetSum(), Bounds: slices.Clone(dp.GetExplicitBounds()), Buckets: slices.Clone(dp.GetBucketCounts())})
		}
	default:
		m.stats.Skipped++
	}
}

func (m *MetricStore) addPoint(now time.Time, desc MetricSeries, attrs []*commonpb.KeyValue, p MetricPoint) {
	m.stats.Received++
	p.Received = now
	desc.Attributes = attributeLabels(attrs)
	key := seriesKey(desc)
	s, ok := m.series[key]
	if !ok {
		m.nextID++
		s = &metricSeries{key: key, id: m.nextID, desc: desc, bytes: seriesOverhead + len(key)}
		m.series[key] = s
		m.bytes += s.bytes
	}
	s.refs++
	size := pointOverhead + 8*len(p.Buckets)
	switch {
	case p.Bounds == nil:
	case slices.Equal(p.Bounds, s.bounds):
		p.Bounds = s.bounds // kept once for the series: most of a point's bytes otherwise
	default: // the series' bounds, counted with the series
		s.bytes += 8 * (len(p.Bounds) - len(s.bounds))
		m.bytes += 8 * (len(p.Bounds) - len(s.bounds))
		s.bounds = p.Bounds
	}
	m.points = append(m.points, storedPoint{s: s, received: now, p: p, bytes: size})
	m.bytes += size
	for m.bytes > m.maxBytes && m.head < len(m.points) {
		m.evictOldest()
		m.stats.Evicted++
	}
}

// expire drops the points received before the window.
func (m *MetricStore) expire(now time.Time) {
	cutoff := now.Add(-m.window)
	for m.head < len(m.points) && m.points[m.head].received.Before(cutoff) {
		m.evictOldest()
	}
	// Compact once the evicted head is the larger part, so the slice does not only grow.
	if m.head > 0 && m.head >= len(m.points)/2 {
		m.points = slices.Delete(m.points, 0, m.head)
		m.head = 0
	}
}

func (m *MetricStore) evictOldest() {
	p := m.points[m.head]
	m.points[m.head] = storedPoint{}
	m.head++
	m.bytes -= p.bytes
	if p.s.refs--; p.s.refs == 0 {
		delete(m.series, p.s.key)
		m.bytes -= p.s.bytes
	}
}

// MetricQuery selects series and points; zero fields select everything.
type MetricQuery struct {
	Names    []string // metric names, exact
	Services []string // service.name values
	Arch     string   // mitosis.architecture
	Start    time.Time
	End      time.Time
}

// Series returns the series q selects, each with its points in [Start, End] (by the time
// the points were measured), ordered by resource, name and attributes.
func (m *MetricStore) Series(q MetricQuery) []MetricSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(m.now())
	byID := map[int]*MetricSeries{}
	var out []*MetricSeries
	keys := map[*MetricSeries]string{}
	for _, sp := range m.points[m.head:] {
		d := &sp.s.desc
		if len(q.Names) > 0 && !slices.Contains(q.Names, d.Name) ||
			len(q.Services) > 0 && !slices.Contains(q.Services, d.Resource["service.name"]) ||
			q.Arch != "" && d.Resource["mitosis.architecture"] != q.Arch ||
			!q.Start.IsZero() && sp.p.Time.Before(q.Start) || !q.End.IsZero() && sp.p.Time.After(q.End) {
			continue
		}
		s, ok := byID[sp.s.id]
		if !ok {
			c := *d
			s = &c
			byID[sp.s.id] = s
			keys[s] = sp.s.key
			out = append(out, s)
		}
		s.Points = append(s.Points, sp.p)
	}
	slices.SortFunc(out, func(a, b *MetricSeries) int { return strings.Compare(keys[a], keys[b]) })
	res := make([]MetricSeries, len(out))
	for i, s := range out {
		slices.SortStableFunc(s.Points, func(a, b MetricPoint) int { return a.Time.Compare(b.Time) })
		res[i] = *s
	}
	return res
}

// Stats says what the store holds.
func (m *MetricStore) Stats() MetricStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	st.Series, st.Points, st.Bytes, st.MaxBytes = len(m.series), len(m.points)-m.head, m.bytes, m.maxBytes
	st.WindowS = int64(m.window / time.Second)
	return st
}

// seriesKey identifies a series: its resource, scope, name and attributes, in a fixed order.
func seriesKey(d MetricSeries) string {
	var b strings.Builder
	for _, k := range resourceKeys {
		b.WriteString(d.Resource[k])
		b.WriteByte(0)
	}
	b.WriteString(d.Scope)
	b.WriteByte(0)
	b.WriteString(d.Name)
	b.WriteByte(0)
	b.WriteString(d.Type)
	for _, k := range slices.Sorted(maps.Keys(d.Attributes)) {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(d.Attributes[k])
	}
	return b.String()
}

func resourceLabels(attrs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range attrs {
		if slices.Contains(resourceKeys, kv.GetKey()) {
			out[kv.GetKey()] = valueString(kv.GetValue())
		}
	}
	return out
}

func attributeLabels(attrs []*commonpb.KeyValue) map[string]string {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]string, len(attrs))
	for _, kv := range attrs {
		out[kv.GetKey()] = valueString(kv.GetValue())
	}
	return out
}

func numberPoint(dp *metricspb.NumberDataPoint) MetricPoint {
	p := MetricPoint{Time: unixNano(dp.GetTimeUnixNano()), Start: unixNano(dp.GetStartTimeUnixNano())}
	switch v := dp.GetValue().(type) {
	case *metricspb.NumberDataPoint_AsDouble:
		p.Value = v.AsDouble
	case *metricspb.NumberDataPoint_AsInt:
		p.Value = float64(v.AsInt)
	}
	if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
		p.Value = 0 // JSON has no NaN; a stale marker carries nothing to read
	}
	return p
}

func temporality(t metricspb.AggregationTemporality) string {
	switch t {
	case metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE:
		return "cumulative"
	case metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA:
		return "delta"
	}
	return ""
}

func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}
