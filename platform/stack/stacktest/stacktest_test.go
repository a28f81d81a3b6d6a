package stacktest

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Every partition of the contexts is drawn about as often as any other: over 40 draws per
// partition, from fixed seeds (so the figures are the same on every run), each is drawn at
// least once and none more than twice as often as the average. The draw it replaced gave
// the partition of one group 1/64 of its draws (550 here), the one of seven groups 1/5040.
// And each draw is a split the topology runs.
func TestRandomSplitDrawsEveryPartitionAlike(t *testing.T) {
	const perPartition = 40
	n := len(partitions())
	counts := map[string]int{}
	edges := map[bool]int{} // the edge alone, or in a group
	for seed := range uint64(n * perPartition) {
		split := drawSplit(seed)
		if seed%97 == 0 {
			if _, err := topology.Get("", topology.Options{Split: split, Collector: topology.NoCollector}); err != nil {
				t.Fatalf("seed %d: %s: %v", seed, split, err)
			}
		}
		edges[strings.Contains(split, bounded.EdgeName+"+")]++
		counts[strings.ReplaceAll(split, bounded.EdgeName+"+", "")]++
	}
	if len(counts) != n {
		t.Errorf("%d partitions drawn of %d", len(counts), n)
	}
	lo, hi := perPartition, perPartition
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	if hi > 2*perPartition {
		t.Errorf("a partition drawn %d times, %d on average", hi, perPartition)
	}
	if edges[true] == 0 || edges[false] == 0 {
		t.Errorf("the edge alone %d times, in a group %d times", edges[false], edges[true])
	}
	t.Logf("%d partitions, each drawn %d to %d times; the edge alone %d times, in a group %d", len(counts), lo, hi, edges[false], edges[true])
}

func TestRandomSplitDrawsTheSameSplitFromTheSameSeed(t *testing.T) {
	t.Setenv("MITOSIS_SPLIT_SEED", "42")
	if a, b := RandomSplit(t), RandomSplit(t); a != b || a != drawSplit(42) {
		t.Errorf("seed 42 drew %s, then %s", a, b)
	}
}

// FreeAddr's ports lie below the kernel's ephemeral range, where no bind of port 0 lands,
// and can be bound.
func TestFreeAddrIsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	if low <= belowEphemeral {
		t.Skipf("ephemeral range from %d: FreeAddr takes the kernel's ports here", low)
	}
	for range 20 {
		at := FreeAddr(t)
		_, p, err := net.SplitHostPort(at)
		if err != nil {
			t.Fatal(err)
		}
		if port, _ := strconv.Atoi(p); port < belowEphemeral || port >= low {
			t.Errorf("FreeAddr: %s, want a port in [%d, %d)", at, belowEphemeral, low)
		}
		l, err := net.Listen("tcp", at)
		if err != nil {
			t.Fatalf("bind %s: %v", at, err)
		}
		l.Close()
	}
}
