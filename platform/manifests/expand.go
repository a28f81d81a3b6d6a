package manifests

import "strings"

// Expand is a container variable's value as the kubelet gives it to the process: each
// $(NAME) of a variable defined before it (before, in the order of the container's env, with
// their values already expanded) replaced by that variable's value. The overlays rely on it
// (a process's NATS password in its URL, the pod's IP in its listen address); whatever plays
// them without a kubelet (Podman's kube play) has to do the same, and so do the tests that
// read a rendered environment. Names not defined before stay as they are, as the kubelet
// leaves them.
func Expand(value string, before []EnvVar) string {
	for _, e := range before {
		value = strings.ReplaceAll(value, "$("+e.Name+")", e.Value)
	}
	return value
}
