// Package setup holds podman.sh, the script that makes a machine ready to run the mitosis
// stack as Podman pods (CI and `make up` run it first), and its tests. The tests run the
// script against tools of their own (podman, curl, id...: the test binary plays them) and
// files in a temporary directory, so that they touch neither the machine's Podman nor its
// /etc/containers/containers.conf. There is no Go code here.
package setup
