//go:build mitosis_group && !mitosis_notify

package bounded

import "github.com/mitosis-dev/mitosis/shop/notify"

// notifyServer is nil in a group's binary that does not hold the notify context: its
// implementation is not linked, so a change to it does not change this binary.
func notifyServer() *server[notify.Service] { return nil }
