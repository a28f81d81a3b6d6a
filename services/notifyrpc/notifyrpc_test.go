package notifyrpc_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/notifyrpc"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/notify/notifytest"
)

// TestConformance runs the notify suite through client -> TCP on 127.0.0.1 -> server -> the
// real notify on JetStream.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	notifytest.Run(t, func(t *testing.T) notify.Service {
		impl := notify.New(srv.Bucket(t, "notifications"), time.Now)
		conn := rpctest.Serve(t, notifyrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { notifyrpc.Register(s, impl) })
		return notifyrpc.NewClient(conn)
	})
}
