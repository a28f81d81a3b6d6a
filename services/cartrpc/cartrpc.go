// Package cartrpc carries cart.Service over gRPC: NewServer serves any implementation,
// NewClient is an implementation that calls one. Client and server together are transparent:
// the cart conformance suite passes through them as it does in process.
package cartrpc

import (
	"context"

	"google.golang.org/grpc"

	cartv1 "github.com/mitosis-dev/mitosis/services/gen/cart/v1"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/cart"
)

// ServiceName is the gRPC service's full name (also its health-check service name).
const ServiceName = "mitosis.cart.v1.CartService"

// ServiceConfig is the client's gRPC service config: calls spread over every address the
// peer's name resolves to (its replicas), and the idempotent calls (Get, and RemoveBought,
// which removes once per order) are retried when the server is unavailable; the other
// writes never are.
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
	"name": [{"service": "mitosis.cart.v1.CartService", "method": "Get"},
	         {"service": "mitosis.cart.v1.CartService", "method": "RemoveBought"}],
	"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
	                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Register serves svc on s.
func Register(s grpc.ServiceRegistrar, svc cart.Service) {
	cartv1.RegisterCartServiceServer(s, &server{svc: svc})
}

type server struct {
	cartv1.UnimplementedCartServiceServer
	svc cart.Service
}

func (s *server) Get(ctx context.Context, req *cartv1.GetRequest) (*cartv1.GetResponse, error) {
	c, err := s.svc.Get(ctx, req.GetUserId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &cartv1.GetResponse{Cart: toProto(c)}, nil
}

func (s *server) Add(ctx context.Context, req *cartv1.AddRequest) (*cartv1.AddResponse, error) {
	c, err := s.svc.Add(ctx, req.GetUserId(), fromProtoItem(req.GetItem()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &cartv1.AddResponse{Cart: toProto(c)}, nil
}

func (s *server) Clear(ctx context.Context, req *cartv1.ClearRequest) (*cartv1.ClearResponse, error) {
	if err := s.svc.Clear(ctx, req.GetUserId()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &cartv1.ClearResponse{}, nil
}

func (s *server) RemoveBought(ctx context.Context, req *cartv1.RemoveBoughtRequest) (*cartv1.RemoveBoughtResponse, error) {
	items := make([]cart.Item, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = fromProtoItem(it)
	}
	c, err := s.svc.RemoveBought(ctx, req.GetUserId(), req.GetOrderId(), items)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &cartv1.RemoveBoughtResponse{Cart: toProto(c)}, nil
}

// Client is cart.Service over a gRPC connection.
type Client struct {
	c cartv1.CartServiceClient
}

var _ cart.Service = (*Client)(nil)

// NewClient returns a cart.Service that calls the server at the other end of conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: cartv1.NewCartServiceClient(conn)}
}

func (c *Client) Get(ctx context.Context, userID string) (cart.Cart, error) {
	res, err := c.c.Get(ctx, &cartv1.GetRequest{UserId: userID})
	if err != nil {
		return cart.Cart{}, rpcerr.FromStatus(cartv1.CartService_Get_FullMethodName, err)
	}
	return fromProto(res.GetCart()), nil
}

func (c *Client) Add(ctx context.Context, userID string, item cart.Item) (cart.Cart, error) {
	res, err := c.c.Add(ctx, &cartv1.AddRequest{
		UserId: userID,
		Item:   toProtoItem(item),
	})
	if err != nil {
		return cart.Cart{}, rpcerr.FromStatus(cartv1.CartService_Add_FullMethodName, err)
	}
	return fromProto(res.GetCart()), nil
}

func (c *Client) Clear(ctx context.Context, userID string) error {
	if _, err := c.c.Clear(ctx, &cartv1.ClearRequest{UserId: userID}); err != nil {
		return rpcerr.FromStatus(cartv1.CartService_Clear_FullMethodName, err)
	}
	return nil
}

func (c *Client) RemoveBought(ctx context.Context, userID, orderID string, items []cart.Item) (cart.Cart, error) {
	req := &cartv1.RemoveBoughtRequest{UserId: userID, OrderId: orderID, Items: make([]*cartv1.Item, len(items))}
	for i, it := range items {
		req.Items[i] = toProtoItem(it)
	}
	res, err := c.c.RemoveBought(ctx, req)
	if err != nil {
		return cart.Cart{}, rpcerr.FromStatus(cartv1.CartService_RemoveBought_FullMethodName, err)
	}
	return fromProto(res.GetCart()), nil
}

func toProto(c cart.Cart) *cartv1.Cart {
	out := &cartv1.Cart{UserId: c.UserID, Items: make([]*cartv1.Item, len(c.Items))}
	for i, it := range c.Items {
		out.Items[i] = toProtoItem(it)
	}
	return out
}

func fromProto(c *cartv1.Cart) cart.Cart {
	out := cart.Cart{UserID: c.GetUserId(), Items: make([]cart.Item, len(c.GetItems()))}
	for i, it := range c.GetItems() {
		out.Items[i] = fromProtoItem(it)
	}
	return out
}

func toProtoItem(it cart.Item) *cartv1.Item {
	return &cartv1.Item{ProductId: it.ProductID, Quantity: int64(it.Quantity)}
}

func fromProtoItem(it *cartv1.Item) cart.Item {
	return cart.Item{ProductID: it.GetProductId(), Quantity: int(it.GetQuantity())}
}
