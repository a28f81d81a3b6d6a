// Package ordersrpc carries orders.Service over gRPC: NewServer serves any implementation,
// NewClient is an implementation that calls one. Client and server together are transparent:
// the orders conformance suite passes through them as it does in process. Deadlines travel
// with the call, so a checkout's deadline bounds the saga's own calls to its peers.
package ordersrpc

import (
	"context"

	"google.golang.org/grpc"

	ordersv1 "github.com/mitosis-dev/mitosis/services/gen/orders/v1"
	"github.com/mitosis-dev/mitosis/services/internal/conv"
	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/orders"
)

// ServiceName is the gRPC service's full name (also its health-check service name).
const ServiceName = "mitosis.orders.v1.OrdersService"

// ServiceConfig is the client's gRPC service config: calls spread over every address the
// peer's name resolves to (its replicas), and the idempotent reads are retried when
// the server is unavailable. Checkout is idempotent per key, but the HTTP caller owns the key
// and so the decision to retry; MarkShipped is retried by its event's redelivery.
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
	"name": [{"service": "mitosis.orders.v1.OrdersService", "method": "Get"},
	         {"service": "mitosis.orders.v1.OrdersService", "method": "ListByUser"}],
	"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
	                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Register serves svc on s.
func Register(s grpc.ServiceRegistrar, svc orders.Service) {
	ordersv1.RegisterOrdersServiceServer(s, &server{svc: svc})
}

type server struct {
	ordersv1.UnimplementedOrdersServiceServer
	svc orders.Service
}

func (s *server) Checkout(ctx context.Context, req *ordersv1.CheckoutRequest) (*ordersv1.CheckoutResponse, error) {
	o, err := s.svc.Checkout(ctx, req.GetIdempotencyKey(), orders.CheckoutRequest{
		UserID:  req.GetUserId(),
		Email:   req.GetEmail(),
		Address: conv.FromAddress(req.GetAddress()),
		Card:    paymentsrpc.CardFromProto(req.GetCard()),
	})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &ordersv1.CheckoutResponse{Order: toProto(o)}, nil
}

func (s *server) Get(ctx context.Context, req *ordersv1.GetRequest) (*ordersv1.GetResponse, error) {
	o, err := s.svc.Get(ctx, req.GetId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &ordersv1.GetResponse{Order: toProto(o)}, nil
}

func (s *server) ListByUser(ctx context.Context, req *ordersv1.ListByUserRequest) (*ordersv1.ListByUserResponse, error) {
	page, err := s.svc.ListByUser(ctx, orders.ListRequest{
		UserID:    req.GetUserId(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	out := &ordersv1.ListByUserResponse{Orders: make([]*ordersv1.Order, len(page.Orders)), NextPageToken: page.NextPageToken}
	for i, o := range page.Orders {
		out.Orders[i] = toProto(o)
	}
	return out, nil
}

func (s *server) MarkShipped(ctx context.Context, req *ordersv1.MarkShippedRequest) (*ordersv1.MarkShippedResponse, error) {
	o, err := s.svc.MarkShipped(ctx, req.GetOrderId(), req.GetTrackingId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &ordersv1.MarkShippedResponse{Order: toProto(o)}, nil
}

// Client is orders.Service over a gRPC connection.
type Client struct {
	c ordersv1.OrdersServiceClient
}

var _ orders.Service = (*Client)(nil)

// NewClient returns an orders.Service that calls the server at the other end of conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: ordersv1.NewOrdersServiceClient(conn)}
}

func (c *Client) Checkout(ctx context.Context, idempotencyKey string, req orders.CheckoutRequest) (orders.Order, error) {
	res, err := c.c.Checkout(ctx, &ordersv1.CheckoutRequest{
		IdempotencyKey: idempotencyKey,
		UserId:         req.UserID,
		Email:          req.Email,
		Address:        conv.Address(req.Address),
		Card:           paymentsrpc.CardToProto(req.Card),
	})
	if err != nil {
		return orders.Order{}, rpcerr.FromStatus(ordersv1.OrdersService_Checkout_FullMethodName, err)
	}
	return fromProto(res.GetOrder()), nil
}

func (c *Client) Get(ctx context.Context, id string) (orders.Order, error) {
	res, err := c.c.Get(ctx, &ordersv1.GetRequest{Id: id})
	if err != nil {
		return orders.Order{}, rpcerr.FromStatus(ordersv1.OrdersService_Get_FullMethodName, err)
	}
	return fromProto(res.GetOrder()), nil
}

func (c *Client) ListByUser(ctx context.Context, req orders.ListRequest) (orders.Page, error) {
	res, err := c.c.ListByUser(ctx, &ordersv1.ListByUserRequest{
		UserId:    req.UserID,
		PageSize:  int64(req.PageSize),
		PageToken: req.PageToken,
	})
	if err != nil {
		return orders.Page{}, rpcerr.FromStatus(ordersv1.OrdersService_ListByUser_FullMethodName, err)
	}
	page := orders.Page{Orders: make([]orders.Order, len(res.GetOrders())), NextPageToken: res.GetNextPageToken()}
	for i, o := range res.GetOrders() {
		page.Orders[i] = fromProto(o)
	}
	return page, nil
}

func (c *Client) MarkShipped(ctx context.Context, orderID, trackingID string) (orders.Order, error) {
	res, err := c.c.MarkShipped(ctx, &ordersv1.MarkShippedRequest{OrderId: orderID, TrackingId: trackingID})
	if err != nil {
		return orders.Order{}, rpcerr.FromStatus(ordersv1.OrdersService_MarkShipped_FullMethodName, err)
	}
	return fromProto(res.GetOrder()), nil
}

func toProto(o orders.Order) *ordersv1.Order {
	out := &ordersv1.Order{
		Id:         o.ID,
		UserId:     o.UserID,
		Status:     o.Status,
		Items:      make([]*ordersv1.Item, len(o.Items)),
		Subtotal:   conv.Money(o.Subtotal),
		Shipping:   conv.Money(o.Shipping),
		Total:      conv.Money(o.Total),
		TrackingId: o.TrackingID,
		CreatedAt:  conv.Time(o.CreatedAt),
	}
	for i, it := range o.Items {
		out.Items[i] = &ordersv1.Item{ProductId: it.ProductID, Quantity: int64(it.Quantity), UnitPrice: conv.Money(it.UnitPrice)}
	}
	return out
}

func fromProto(o *ordersv1.Order) orders.Order {
	out := orders.Order{
		ID:         o.GetId(),
		UserID:     o.GetUserId(),
		Status:     o.GetStatus(),
		Items:      make([]orders.Item, len(o.GetItems())),
		Subtotal:   conv.FromMoney(o.GetSubtotal()),
		Shipping:   conv.FromMoney(o.GetShipping()),
		Total:      conv.FromMoney(o.GetTotal()),
		TrackingID: o.GetTrackingId(),
		CreatedAt:  conv.FromTime(o.GetCreatedAt()),
	}
	for i, it := range o.GetItems() {
		out.Items[i] = orders.Item{ProductID: it.GetProductId(), Quantity: int(it.GetQuantity()), UnitPrice: conv.FromMoney(it.GetUnitPrice())}
	}
	return out
}
