// Package e2e holds the end-to-end tests of the shop's placements as real processes: the
// microservices, the shipped hybrid and a placement drawn at random, each run by the
// platform's process runtime (platform/processrt) from the real binaries, with its own NATS,
// driven by the shop's behaviour suite (shop/apitest) and compared with the monolith. It has
// no non-test code beyond this comment.
package e2e
