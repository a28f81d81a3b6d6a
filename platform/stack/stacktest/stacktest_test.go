package stacktest

import (
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
