// Package deploytest holds the end-to-end tests of what deploy/ and compose/ ship, run on
// real Podman: `mitosis kube play` of the monolith and services overlays, the compose
// file's monolith profile and the Beanstalk bundle (its secrets as Beanstalk fills them from
// Secrets Manager) brought up by docker-compose through Podman's Docker-compatible socket,
// each followed by a checkout through the public API and a teardown that leaves
// nothing behind. Its images are built and loaded by the platform's own build, under
// localhost/mitosis-k8s-test so the real stack's are never touched.
//
// The tests need Podman (and docker-compose for compose); without them they skip with one
// line, unless REQUIRE_CONTAINERS=1, which makes that a failure.
package deploytest
