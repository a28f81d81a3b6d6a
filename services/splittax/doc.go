// Package splittax measures what splitting the shop into services costs a request: the same
// HTTP handler (shop/httpapi) over the contexts in process, as the monolith wires them, and
// over gRPC clients of the contexts each behind its own server on a loopback socket, as the
// gateway wires them. Both sides use the same embedded JetStream, so the difference is the
// gRPC hops (encoding, loopback TCP, HTTP/2) and nothing else. See splittax_test.go.
package splittax
