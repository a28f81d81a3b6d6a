// Package inventoryrpc carries inventory.Service over gRPC: NewServer serves any
// implementation, NewClient is an implementation that calls one. Client and server together
// are transparent: the inventory conformance suite passes through them as it does in process,
// and an *inventory.OutOfStockError arrives with its product.
package inventoryrpc

import (
	"context"

	"google.golang.org/grpc"

	inventoryv1 "github.com/mitosis-dev/mitosis/services/gen/inventory/v1"
	"github.com/mitosis-dev/mitosis/services/internal/conv"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/inventory"
)

// ServiceName is the gRPC service's full name (also its health-check service name).
const ServiceName = "mitosis.inventory.v1.InventoryService"

// ServiceConfig is the client's gRPC service config: calls spread over every address the
// peer's name resolves to (its replicas), and the idempotent read is retried when the
// server is unavailable. Reserve, Commit and Release are idempotent in the domain too, but
// the saga that calls them decides about retries, not the transport.
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
	"name": [{"service": "mitosis.inventory.v1.InventoryService", "method": "Get"}],
	"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
	                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Register serves svc on s.
func Register(s grpc.ServiceRegistrar, svc inventory.Service) {
	inventoryv1.RegisterInventoryServiceServer(s, &server{svc: svc})
}

type server struct {
	inventoryv1.UnimplementedInventoryServiceServer
	svc inventory.Service
}

func (s *server) Get(ctx context.Context, req *inventoryv1.GetRequest) (*inventoryv1.GetResponse, error) {
	st, err := s.svc.Get(ctx, req.GetProductId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &inventoryv1.GetResponse{Stock: stockToProto(st)}, nil
}

func (s *server) Add(ctx context.Context, req *inventoryv1.AddRequest) (*inventoryv1.AddResponse, error) {
	st, err := s.svc.Add(ctx, req.GetProductId(), req.GetN())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &inventoryv1.AddResponse{Stock: stockToProto(st)}, nil
}

func (s *server) Reserve(ctx context.Context, req *inventoryv1.ReserveRequest) (*inventoryv1.ReserveResponse, error) {
	r, err := s.svc.Reserve(ctx, req.GetReservationId(), linesFromProto(req.GetLines()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &inventoryv1.ReserveResponse{Reservation: &inventoryv1.Reservation{
		Id:        r.ID,
		Lines:     linesToProto(r.Lines),
		ExpiresAt: conv.Time(r.ExpiresAt),
	}}, nil
}

func (s *server) Commit(ctx context.Context, req *inventoryv1.CommitRequest) (*inventoryv1.CommitResponse, error) {
	if err := s.svc.Commit(ctx, req.GetReservationId()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &inventoryv1.CommitResponse{}, nil
}

func (s *server) Release(ctx context.Context, req *inventoryv1.ReleaseRequest) (*inventoryv1.ReleaseResponse, error) {
	if err := s.svc.Release(ctx, req.GetReservationId()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &inventoryv1.ReleaseResponse{}, nil
}

func (s *server) ReleaseExpired(ctx context.Context, _ *inventoryv1.ReleaseExpiredRequest) (*inventoryv1.ReleaseExpiredResponse, error) {
	n, err := s.svc.ReleaseExpired(ctx)
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &inventoryv1.ReleaseExpiredResponse{Released: int64(n)}, nil
}

// Client is inventory.Service over a gRPC connection.
type Client struct {
	c inventoryv1.InventoryServiceClient
}

var _ inventory.Service = (*Client)(nil)

// NewClient returns an inventory.Service that calls the server at the other end of conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: inventoryv1.NewInventoryServiceClient(conn)}
}

func (c *Client) Get(ctx context.Context, productID string) (inventory.Stock, error) {
	res, err := c.c.Get(ctx, &inventoryv1.GetRequest{ProductId: productID})
	if err != nil {
		return inventory.Stock{}, rpcerr.FromStatus(inventoryv1.InventoryService_Get_FullMethodName, err)
	}
	return stockFromProto(res.GetStock()), nil
}

func (c *Client) Add(ctx context.Context, productID string, n int64) (inventory.Stock, error) {
	res, err := c.c.Add(ctx, &inventoryv1.AddRequest{ProductId: productID, N: n})
	if err != nil {
		return inventory.Stock{}, rpcerr.FromStatus(inventoryv1.InventoryService_Add_FullMethodName, err)
	}
	return stockFromProto(res.GetStock()), nil
}

func (c *Client) Reserve(ctx context.Context, reservationID string, lines []inventory.Line) (inventory.Reservation, error) {
	res, err := c.c.Reserve(ctx, &inventoryv1.ReserveRequest{ReservationId: reservationID, Lines: linesToProto(lines)})
	if err != nil {
		return inventory.Reservation{}, rpcerr.FromStatus(inventoryv1.InventoryService_Reserve_FullMethodName, err)
	}
	r := res.GetReservation()
	return inventory.Reservation{
		ID:        r.GetId(),
		Lines:     linesFromProto(r.GetLines()),
		ExpiresAt: conv.FromTime(r.GetExpiresAt()),
	}, nil
}

func (c *Client) Commit(ctx context.Context, reservationID string) error {
	if _, err := c.c.Commit(ctx, &inventoryv1.CommitRequest{ReservationId: reservationID}); err != nil {
		return rpcerr.FromStatus(inventoryv1.InventoryService_Commit_FullMethodName, err)
	}
	return nil
}

func (c *Client) Release(ctx context.Context, reservationID string) error {
	if _, err := c.c.Release(ctx, &inventoryv1.ReleaseRequest{ReservationId: reservationID}); err != nil {
		return rpcerr.FromStatus(inventoryv1.InventoryService_Release_FullMethodName, err)
	}
	return nil
}

func (c *Client) ReleaseExpired(ctx context.Context) (int, error) {
	res, err := c.c.ReleaseExpired(ctx, &inventoryv1.ReleaseExpiredRequest{})
	if err != nil {
		return 0, rpcerr.FromStatus(inventoryv1.InventoryService_ReleaseExpired_FullMethodName, err)
	}
	return int(res.GetReleased()), nil
}

func stockToProto(s inventory.Stock) *inventoryv1.Stock {
	return &inventoryv1.Stock{ProductId: s.ProductID, Available: s.Available, Reserved: s.Reserved, Sold: s.Sold}
}

func stockFromProto(s *inventoryv1.Stock) inventory.Stock {
	return inventory.Stock{ProductID: s.GetProductId(), Available: s.GetAvailable(), Reserved: s.GetReserved(), Sold: s.GetSold()}
}

func linesToProto(lines []inventory.Line) []*inventoryv1.Line {
	out := make([]*inventoryv1.Line, len(lines))
	for i, l := range lines {
		out[i] = &inventoryv1.Line{ProductId: l.ProductID, Quantity: l.Quantity}
	}
	return out
}

func linesFromProto(lines []*inventoryv1.Line) []inventory.Line {
	out := make([]inventory.Line, len(lines))
	for i, l := range lines {
		out[i] = inventory.Line{ProductID: l.GetProductId(), Quantity: l.GetQuantity()}
	}
	return out
}
