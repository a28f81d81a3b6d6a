// Package catalogrpc carries catalog.Service over gRPC: NewServer serves any implementation,
// NewClient is an implementation that calls one. Client and server together are transparent:
// the catalog conformance suite passes through them as it does in process.
package catalogrpc

import (
	"context"

	"google.golang.org/grpc"

	catalogv1 "github.com/mitosis-dev/mitosis/services/gen/catalog/v1"
	commonv1 "github.com/mitosis-dev/mitosis/services/gen/common/v1"
	"github.com/mitosis-dev/mitosis/services/internal/conv"
	"github.com/mitosis-dev/mitosis/services/rpcerr"
	"github.com/mitosis-dev/mitosis/shop/catalog"
)

// ServiceName is the gRPC service's full name (also its health-check service name).
const ServiceName = "mitosis.catalog.v1.CatalogService"

// ServiceConfig is the client's gRPC service config: calls spread over every address the
// peer's name resolves to (its replicas), and the idempotent reads are retried when
// the server is unavailable (a restart, a connection reset); writes never are.
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
	"name": [{"service": "mitosis.catalog.v1.CatalogService", "method": "Get"},
	         {"service": "mitosis.catalog.v1.CatalogService", "method": "List"}],
	"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
	                "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Register serves svc on s.
func Register(s grpc.ServiceRegistrar, svc catalog.Service) {
	catalogv1.RegisterCatalogServiceServer(s, &server{svc: svc})
}

type server struct {
	catalogv1.UnimplementedCatalogServiceServer
	svc catalog.Service
}

func (s *server) Get(ctx context.Context, req *catalogv1.GetRequest) (*catalogv1.GetResponse, error) {
	p, err := s.svc.Get(ctx, req.GetId())
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &catalogv1.GetResponse{Product: toProto(p)}, nil
}

func (s *server) List(ctx context.Context, req *catalogv1.ListRequest) (*catalogv1.ListResponse, error) {
	page, err := s.svc.List(ctx, catalog.ListRequest{
		Query:     req.GetQuery(),
		PageSize:  int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	})
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &catalogv1.ListResponse{Products: toProtos(page.Products), NextPageToken: page.NextPageToken}, nil
}

func (s *server) Upsert(ctx context.Context, req *catalogv1.UpsertRequest) (*catalogv1.UpsertResponse, error) {
	p, err := s.svc.Upsert(ctx, fromProto(req.GetProduct()))
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &catalogv1.UpsertResponse{Product: toProto(p)}, nil
}

// Client is catalog.Service over a gRPC connection.
type Client struct {
	c catalogv1.CatalogServiceClient
}

var _ catalog.Service = (*Client)(nil)

// NewClient returns a catalog.Service that calls the server at the other end of conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: catalogv1.NewCatalogServiceClient(conn)}
}

func (c *Client) Get(ctx context.Context, id string) (catalog.Product, error) {
	res, err := c.c.Get(ctx, &catalogv1.GetRequest{Id: id})
	if err != nil {
		return catalog.Product{}, rpcerr.FromStatus(catalogv1.CatalogService_Get_FullMethodName, err)
	}
	return fromProto(res.GetProduct()), nil
}

func (c *Client) List(ctx context.Context, req catalog.ListRequest) (catalog.Page, error) {
	res, err := c.c.List(ctx, &catalogv1.ListRequest{
		Query:     req.Query,
		PageSize:  int64(req.PageSize),
		PageToken: req.PageToken,
	})
	if err != nil {
		return catalog.Page{}, rpcerr.FromStatus(catalogv1.CatalogService_List_FullMethodName, err)
	}
	page := catalog.Page{Products: make([]catalog.Product, len(res.GetProducts())), NextPageToken: res.GetNextPageToken()}
	for i, p := range res.GetProducts() {
		page.Products[i] = fromProto(p)
	}
	return page, nil
}

func (c *Client) Upsert(ctx context.Context, p catalog.Product) (catalog.Product, error) {
	res, err := c.c.Upsert(ctx, &catalogv1.UpsertRequest{Product: toProto(p)})
	if err != nil {
		return catalog.Product{}, rpcerr.FromStatus(catalogv1.CatalogService_Upsert_FullMethodName, err)
	}
	return fromProto(res.GetProduct()), nil
}

func toProto(p catalog.Product) *catalogv1.Product {
	return fillProto(new(catalogv1.Product), new(commonv1.Money), p)
}

// toProtos returns the protobuf forms of a page of products. A page is the shop's hottest
// read, and its messages are made in two allocations (products, prices) rather than two per
// product: 38 fewer for a page of 20.
func toProtos(ps []catalog.Product) []*catalogv1.Product {
	msgs, prices := make([]catalogv1.Product, len(ps)), make([]commonv1.Money, len(ps))
	out := make([]*catalogv1.Product, len(ps))
	for i, p := range ps {
		out[i] = fillProto(&msgs[i], &prices[i], p)
	}
	return out
}

// fillProto sets m, a new message, to p's protobuf form, with price as its price, and
// returns it.
func fillProto(m *catalogv1.Product, price *commonv1.Money, p catalog.Product) *catalogv1.Product {
	m.Id, m.Name, m.Description = p.ID, p.Name, p.Description
	m.Price = conv.FillMoney(price, p.Price)
	m.WeightGrams = p.WeightGrams
	return m
}

func fromProto(p *catalogv1.Product) catalog.Product {
	return catalog.Product{
		ID:          p.GetId(),
		Name:        p.GetName(),
		Description: p.GetDescription(),
		Price:       conv.FromMoney(p.GetPrice()),
		WeightGrams: p.GetWeightGrams(),
	}
}
