package podmanstats

import "errors"

// ErrNoContainers: Podman answers, but no running container carries the stack's labels.
var ErrNoContainers = errors.New("no running container")
