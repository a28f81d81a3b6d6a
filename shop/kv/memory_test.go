package kv_test

import (
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
)

func TestMemory(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Bucket { return kv.NewMemory() })
}

func TestTTLOfRoundsUpToSeconds(t *testing.T) {
	for _, tc := range []struct {
		opts []kv.WriteOption
		want time.Duration
	}{
		{nil, 0},
		{[]kv.WriteOption{kv.TTL(0)}, 0},
		{[]kv.WriteOption{kv.TTL(-time.Second)}, 0},
		{[]kv.WriteOption{kv.TTL(time.Millisecond)}, time.Second},
		{[]kv.WriteOption{kv.TTL(time.Second)}, time.Second},
		{[]kv.WriteOption{kv.TTL(1500 * time.Millisecond)}, 2 * time.Second},
		{[]kv.WriteOption{kv.TTL(25 * time.Hour)}, 25 * time.Hour},
		{[]kv.WriteOption{nil, kv.TTL(time.Minute)}, time.Minute},
	} {
		if got := kv.TTLOf(tc.opts); got != tc.want {
			t.Errorf("TTLOf(%d options) = %v, want %v", len(tc.opts), got, tc.want)
		}
	}
}
