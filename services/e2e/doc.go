// Package e2e holds the end-to-end tests of the microservices: the real binaries, built from
// the mains with go build, run as processes on loopback ports against a NATS server, and the
// shop's own behaviour suite (shop/apitest) drives the gateway. It has no non-test code
// beyond this comment.
package e2e
