# benchsummary.awk sums up `make bench`'s checkout benchmarks (go test -bench output): the
# mean checkouts per CPU-second and allocations per checkout of BenchmarkCheckout, and each
# tracing mode's mean req/cpu-s and its cost against tracing=off (off's rate over the mode's:
# 1.10x is 10% more CPU per checkout), and the store round trips a checkout waits for one
# after another (BenchmarkCheckoutStoreRoundTrips, shop/orders). The issue's targets are
# printed beside them.
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) {
		if ($(i + 1) == "req/cpu-s") { rate[name] += $i; n[name]++ }
		if ($(i + 1) == "allocs/op") allocs[name] += $i
		if ($(i + 1) == "B/op") bytes[name] += $i
		if ($(i + 1) == "store-rt/checkout") { chain[name] += $i; nrt[name]++ }
		if ($(i + 1) == "store-ops/checkout") ops[name] += $i
	}
}
END {
	c = "BenchmarkCheckout"
	if (n[c] > 0)
		printf "\ncheckout (cart add + checkout): %.0f per CPU-second (target >= 1500), %.0f allocations (target <= 1000), %.0f KB per checkout; mean of %d\n",
			rate[c] / n[c], allocs[c] / n[c], bytes[c] / n[c] / 1000, n[c]
	r = "BenchmarkCheckoutStoreRoundTrips"
	if (nrt[r] > 0)
		printf "store round trips per checkout: %.1f one after another (target <= 8), %.1f in all\n", chain[r] / nrt[r], ops[r] / nrt[r]
	off = "BenchmarkCheckoutTracing/tracing=off"
	if (n[off] == 0) exit
	base = rate[off] / n[off]
	printf "tracing cost per checkout, CPU against tracing=off (target for on-all <= 1.10x):\n"
	split("off on on-metrics on-prometheus on-all", modes, " ")
	for (m = 1; m <= 5; m++) {
		k = "BenchmarkCheckoutTracing/tracing=" modes[m]
		if (n[k] > 0)
			printf "  %-14s %7.0f req/cpu-s  %5.2fx  %5.0f allocs/op\n", modes[m], rate[k] / n[k], base / (rate[k] / n[k]), allocs[k] / n[k]
	}
}
