//go:build !mitosis_group

package host

import "github.com/mitosis-dev/mitosis/shop/natsembed"

// embedsStore says whether this binary can keep the store in its own process. Only the
// binaries built without a group's tags can (`go run ./monolith`, `make run`): an image's
// binary always talks to a NATS server and links none (embedded_elsewhere.go), which keeps
// nats-server's code out of every image (a third of its size, and of its link).
const embedsStore = true

func startEmbedded(dir string) (embeddedStore, error) { return natsembed.Start(dir, "") }
