// Package paymentsrpc carries payments.Service over gRPC: NewServer serves any implementation,
// NewClient is an implementation that calls one. Client and server together are transparent:
// the payments conformance suite passes through them as it does in process, and each decline
// arrives as its own sentinel (errors.Is holds for it and for payments.ErrDeclined).
package paymentsrpc

import (
	"context"

	"google.golang.org/grpc"

	paymentsv1 "github.com/mitosis-dev/mitosis/services/gen/payments/v1"
	"github.com/mitosis-dev/mitosis/services/internal/conv"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// ServiceName is the gRPC service's full name (also its health-check service name).
const ServiceName = "mitosis.payments.v1.PaymentsService"

// ServiceConfig is the client's gRPC service config: calls spread over every address the
// peer's name resolves to (its replicas), and the idempotent read is retried when the
// server is unavailable. Charge and Refund are not: whether to retry a charge whose outcome is
// unknown is the checkout saga's decision.
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
	"name": [{"service": "mitosis.payments.v1.PaymentsService", "method": "Get"}],
	"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
	                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Register serves svc on s.
func Register(s grpc.ServiceRegistrar, svc payments.Service) {
	paymentsv1.RegisterPaymentsServiceServer(s, &server{svc: svc})
}

type server struct {
	paymentsv1.UnimplementedPaymentsServiceServer
	svc payments.Service
}

func (s *server) Charge(ctx context.Context, req *paymentsv1.ChargeRequest) (*paymentsv1.ChargeResponse, error) {
	ch, err := s.svc.Charge(ctx, payments.ChargeRequest{
		IdempotencyKey: req.GetIdempotencyKey(),
		Amount:         conv.FromMoney(req.GetAmount()),
		Card:           CardFromProto(req.GetCard()),
	})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &paymentsv1.ChargeResponse{Charge: chargeToProto(ch)}, nil
}

func (s *server) Refund(ctx context.Context, req *paymentsv1.RefundRequest) (*paymentsv1.RefundResponse, error) {
	ch, err := s.svc.Refund(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &paymentsv1.RefundResponse{Charge: chargeToProto(ch)}, nil
}

func (s *server) Get(ctx context.Context, req *paymentsv1.GetRequest) (*paymentsv1.GetResponse, error) {
	ch, err := s.svc.Get(ctx, req.GetIdempotencyKey())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &paymentsv1.GetResponse{Charge: chargeToProto(ch)}, nil
}

// Client is payments.Service over a gRPC connection.
type Client struct {
	c paymentsv1.PaymentsServiceClient
}

var _ payments.Service = (*Client)(nil)

// NewClient returns a payments.Service that calls the server at the other end of conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: paymentsv1.NewPaymentsServiceClient(conn)}
}

func (c *Client) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	res, err := c.c.Charge(ctx, &paymentsv1.ChargeRequest{
		IdempotencyKey: req.IdempotencyKey,
		Amount:         conv.Money(req.Amount),
		Card:           CardToProto(req.Card),
	})
	if err != nil {
		return payments.Charge{}, rpcerr.FromStatus(paymentsv1.PaymentsService_Charge_FullMethodName, err)
	}
	return chargeFromProto(res.GetCharge()), nil
}

func (c *Client) Refund(ctx context.Context, idempotencyKey string) (payments.Charge, error) {
	res, err := c.c.Refund(ctx, &paymentsv1.RefundRequest{IdempotencyKey: idempotencyKey})
	if err != nil {
		return payments.Charge{}, rpcerr.FromStatus(paymentsv1.PaymentsService_Refund_FullMethodName, err)
	}
	return chargeFromProto(res.GetCharge()), nil
}

func (c *Client) Get(ctx context.Context, idempotencyKey string) (payments.Charge, error) {
	res, err := c.c.Get(ctx, &paymentsv1.GetRequest{IdempotencyKey: idempotencyKey})
	if err != nil {
		return payments.Charge{}, rpcerr.FromStatus(paymentsv1.PaymentsService_Get_FullMethodName, err)
	}
	return chargeFromProto(res.GetCharge()), nil
}

// CardToProto returns c's protobuf form (orders' checkout request carries a card too).
func CardToProto(c payments.Card) *paymentsv1.Card {
	return &paymentsv1.Card{Number: c.Number, ExpMonth: int64(c.ExpMonth), ExpYear: int64(c.ExpYear), Cvv: c.CVV}
}

// CardFromProto returns c's Go form.
func CardFromProto(c *paymentsv1.Card) payments.Card {
	return payments.Card{Number: c.GetNumber(), ExpMonth: int(c.GetExpMonth()), ExpYear: int(c.GetExpYear()), CVV: c.GetCvv()}
}

func chargeToProto(c payments.Charge) *paymentsv1.Charge {
	return &paymentsv1.Charge{
		Id:             c.ID,
		IdempotencyKey: c.IdempotencyKey,
		Amount:         conv.Money(c.Amount),
		Last4:          c.Last4,
		Status:         c.Status,
		CreatedAt:      conv.Time(c.CreatedAt),
	}
}

func chargeFromProto(c *paymentsv1.Charge) payments.Charge {
	return payments.Charge{
		ID:             c.GetId(),
		IdempotencyKey: c.GetIdempotencyKey(),
		Amount:         conv.FromMoney(c.GetAmount()),
		Last4:          c.GetLast4(),
		Status:         c.GetStatus(),
		CreatedAt:      conv.FromTime(c.GetCreatedAt()),
	}
}
