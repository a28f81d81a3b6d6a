// Package notifyrpc carries notify.Service over gRPC: NewServer serves any implementation,
// NewClient is an implementation that calls one. Client and server together are transparent:
// the notify conformance suite passes through them as it does in process. In the shop,
// notifications are made by the notify process from events; the gateway only lists them.
package notifyrpc

import (
	"context"

	"google.golang.org/grpc"

	notifyv1 "github.com/mitosis-dev/mitosis/services/gen/notify/v1"
	"github.com/mitosis-dev/mitosis/services/internal/conv"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/notify"
)

// ServiceName is the gRPC service's full name (also its health-check service name).
const ServiceName = "mitosis.notify.v1.NotifyService"

// ServiceConfig is the client's gRPC service config: calls spread over every address the
// peer's name resolves to (its replicas), and the idempotent read is retried when the
// server is unavailable (Notify is idempotent too, but its callers are event handlers, which
// are retried by redelivery).
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
	"name": [{"service": "mitosis.notify.v1.NotifyService", "method": "List"}],
	"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
	                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Register serves svc on s.
func Register(s grpc.ServiceRegistrar, svc notify.Service) {
	notifyv1.RegisterNotifyServiceServer(s, &server{svc: svc})
}

type server struct {
	notifyv1.UnimplementedNotifyServiceServer
	svc notify.Service
}

func (s *server) Notify(ctx context.Context, req *notifyv1.NotifyRequest) (*notifyv1.NotifyResponse, error) {
	n, err := s.svc.Notify(ctx, req.GetUserId(), req.GetKind(), req.GetOrderId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &notifyv1.NotifyResponse{Notification: toProto(n)}, nil
}

func (s *server) List(ctx context.Context, req *notifyv1.ListRequest) (*notifyv1.ListResponse, error) {
	page, err := s.svc.List(ctx, notify.ListRequest{
		UserID:    req.GetUserId(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	out := &notifyv1.ListResponse{Notifications: make([]*notifyv1.Notification, len(page.Notifications)), NextPageToken: page.NextPageToken}
	for i, n := range page.Notifications {
		out.Notifications[i] = toProto(n)
	}
	return out, nil
}

// Client is notify.Service over a gRPC connection.
type Client struct {
	c notifyv1.NotifyServiceClient
}

var _ notify.Service = (*Client)(nil)

// NewClient returns a notify.Service that calls the server at the other end of conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: notifyv1.NewNotifyServiceClient(conn)}
}

func (c *Client) Notify(ctx context.Context, userID, kind, orderID string) (notify.Notification, error) {
	res, err := c.c.Notify(ctx, &notifyv1.NotifyRequest{UserId: userID, Kind: kind, OrderId: orderID})
	if err != nil {
		return notify.Notification{}, rpcerr.FromStatus(notifyv1.NotifyService_Notify_FullMethodName, err)
	}
	return fromProto(res.GetNotification()), nil
}

func (c *Client) List(ctx context.Context, req notify.ListRequest) (notify.Page, error) {
	res, err := c.c.List(ctx, &notifyv1.ListRequest{
		UserId:    req.UserID,
		PageSize:  int64(req.PageSize),
		PageToken: req.PageToken,
	})
	if err != nil {
		return notify.Page{}, rpcerr.FromStatus(notifyv1.NotifyService_List_FullMethodName, err)
	}
	page := notify.Page{Notifications: make([]notify.Notification, len(res.GetNotifications())), NextPageToken: res.GetNextPageToken()}
	for i, n := range res.GetNotifications() {
		page.Notifications[i] = fromProto(n)
	}
	return page, nil
}

func toProto(n notify.Notification) *notifyv1.Notification {
	return &notifyv1.Notification{Id: n.ID, Kind: n.Kind, OrderId: n.OrderID, CreatedAt: conv.Time(n.CreatedAt)}
}

func fromProto(n *notifyv1.Notification) notify.Notification {
	return notify.Notification{ID: n.GetId(), Kind: n.GetKind(), OrderID: n.GetOrderId(), CreatedAt: conv.FromTime(n.GetCreatedAt())}
}
