package kv

// MaxCacheBytes is maxCacheBytes, for the tests of package kv_test.
const MaxCacheBytes = maxCacheBytes
