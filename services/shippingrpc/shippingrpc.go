// Package shippingrpc carries shipping.Service over gRPC: NewServer serves any implementation,
// NewClient is an implementation that calls one. Client and server together are transparent:
// the shipping conformance suite passes through them as it does in process. In the shop,
// shipping is driven by order-paid events; the service exists for operators and tests.
package shippingrpc

import (
	"context"

	"google.golang.org/grpc"

	shippingv1 "github.com/mitosis-dev/mitosis/services/gen/shipping/v1"
	"github.com/mitosis-dev/mitosis/services/internal/conv"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/shipping"
)

// ServiceName is the gRPC service's full name (also its health-check service name).
const ServiceName = "mitosis.shipping.v1.ShippingService"

// ServiceConfig is the client's gRPC service config: calls spread over every address the
// peer's name resolves to (its replicas), and the idempotent read is retried when the
// server is unavailable.
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
	"name": [{"service": "mitosis.shipping.v1.ShippingService", "method": "Get"}],
	"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
	                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Register serves svc on s.
func Register(s grpc.ServiceRegistrar, svc shipping.Service) {
	shippingv1.RegisterShippingServiceServer(s, &server{svc: svc})
}

type server struct {
	shippingv1.UnimplementedShippingServiceServer
	svc shipping.Service
}

func (s *server) Ship(ctx context.Context, req *shippingv1.ShipRequest) (*shippingv1.ShipResponse, error) {
	sh, err := s.svc.Ship(ctx, paidFromProto(req.GetOrderPaid()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &shippingv1.ShipResponse{Shipment: shipmentToProto(sh)}, nil
}

func (s *server) Get(ctx context.Context, req *shippingv1.GetRequest) (*shippingv1.GetResponse, error) {
	sh, err := s.svc.Get(ctx, req.GetOrderId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &shippingv1.GetResponse{Shipment: shipmentToProto(sh)}, nil
}

// Client is shipping.Service over a gRPC connection.
type Client struct {
	c shippingv1.ShippingServiceClient
}

var _ shipping.Service = (*Client)(nil)

// NewClient returns a shipping.Service that calls the server at the other end of conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: shippingv1.NewShippingServiceClient(conn)}
}

func (c *Client) Ship(ctx context.Context, paid events.OrderPaid) (shipping.Shipment, error) {
	res, err := c.c.Ship(ctx, &shippingv1.ShipRequest{OrderPaid: paidToProto(paid)})
	if err != nil {
		return shipping.Shipment{}, rpcerr.FromStatus(shippingv1.ShippingService_Ship_FullMethodName, err)
	}
	return shipmentFromProto(res.GetShipment()), nil
}

func (c *Client) Get(ctx context.Context, orderID string) (shipping.Shipment, error) {
	res, err := c.c.Get(ctx, &shippingv1.GetRequest{OrderId: orderID})
	if err != nil {
		return shipping.Shipment{}, rpcerr.FromStatus(shippingv1.ShippingService_Get_FullMethodName, err)
	}
	return shipmentFromProto(res.GetShipment()), nil
}

func paidToProto(p events.OrderPaid) *shippingv1.OrderPaid {
	out := &shippingv1.OrderPaid{
		OrderId:     p.OrderID,
		UserId:      p.UserID,
		Email:       p.Email,
		Address:     conv.Address(p.Address),
		Items:       make([]*shippingv1.Item, len(p.Items)),
		WeightGrams: p.WeightGrams,
		Total:       conv.Money(p.Total),
		PaidAt:      conv.Time(p.PaidAt),
	}
	for i, it := range p.Items {
		out.Items[i] = &shippingv1.Item{ProductId: it.ProductID, Quantity: int64(it.Quantity)}
	}
	return out
}

func paidFromProto(p *shippingv1.OrderPaid) events.OrderPaid {
	out := events.OrderPaid{
		OrderID:     p.GetOrderId(),
		UserID:      p.GetUserId(),
		Email:       p.GetEmail(),
		Address:     conv.FromAddress(p.GetAddress()),
		WeightGrams: p.GetWeightGrams(),
		Total:       conv.FromMoney(p.GetTotal()),
		PaidAt:      conv.FromTime(p.GetPaidAt()),
	}
	// The event's items stay nil when there are none, as a decoded JSON event without items
	// has them: the shipping handler sees the same value in both architectures.
	for _, it := range p.GetItems() {
		out.Items = append(out.Items, events.Item{ProductID: it.GetProductId(), Quantity: int(it.GetQuantity())})
	}
	return out
}

func shipmentToProto(s shipping.Shipment) *shippingv1.Shipment {
	return &shippingv1.Shipment{
		OrderId:     s.OrderID,
		UserId:      s.UserID,
		TrackingId:  s.TrackingID,
		Address:     conv.Address(s.Address),
		WeightGrams: s.WeightGrams,
		CreatedAt:   conv.Time(s.CreatedAt),
	}
}

func shipmentFromProto(s *shippingv1.Shipment) shipping.Shipment {
	return shipping.Shipment{
		OrderID:     s.GetOrderId(),
		UserID:      s.GetUserId(),
		TrackingID:  s.GetTrackingId(),
		Address:     conv.FromAddress(s.GetAddress()),
		WeightGrams: s.GetWeightGrams(),
		CreatedAt:   conv.FromTime(s.GetCreatedAt()),
	}
}
