//go:build !mitosis_group || mitosis_notify

package bounded

import (
	"context"

	"github.com/mitosis-dev/mitosis/services/notifyrpc"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/notify"
)

// notifyServer is how this binary runs the notify context: linked in a binary of every
// context (no tags) and in a group's that holds it (mitosis_group, mitosis_notify); see
// notify_elsewhere.go for the others.
func notifyServer() *server[notify.Service] {
	return &server[notify.Service]{
		build: func(_ context.Context, d Deps) (notify.Service, error) {
			return notify.New(d.Buckets[notify.NotificationsBucket], d.Now), nil
		},
		register: notifyrpc.Register,
		handlers: map[string]func(notify.Service) events.Handler{"notify": notify.Handler},
	}
}
