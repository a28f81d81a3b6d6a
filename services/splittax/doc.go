// Package splittax measures what splitting the shop into services costs a request: the
// same hosts (services/host) with every context and the edge in one process, and with one
// context per host and the edge alone in front, calling each other over gRPC on loopback.
// Both sides share one NATS server, so the difference is the gRPC hops (encoding, loopback
// TCP, HTTP/2) and nothing else. See splittax_test.go.
package splittax
