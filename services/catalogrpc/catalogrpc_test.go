package catalogrpc_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/catalog/catalogtest"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestConformance runs the catalog's suite through client -> TCP on 127.0.0.1 -> server ->
// the real catalog on JetStream.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	catalogtest.Run(t, func(t *testing.T) catalog.Service {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		impl, err := catalog.New(ctx, srv.Bucket(t, "products"), nil)
		if err != nil {
			t.Fatalf("catalog.New: %v", err)
		}
		conn := rpctest.Serve(t, catalogrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { catalogrpc.Register(s, impl) })
		return catalogrpc.NewClient(conn)
	})
}

// A page of products crosses the wire whole: every product of every page, listed through the
// client, is the one the catalog lists in process, field for field (a page's messages share
// their backing arrays on the server, and must not share their values).
func TestPagesCrossWhole(t *testing.T) {
	srv := natsjstest.New(t)
	impl, err := catalog.New(t.Context(), srv.Bucket(t, "products"), nil)
	if err != nil {
		t.Fatalf("catalog.New: %v", err)
	}
	p := catalog.Seed()[1]
	p.Price = money.Cents(12345) // prices that differ from product to product
	if _, err := impl.Upsert(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	client := catalogrpc.NewClient(rpctest.Serve(t, catalogrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { catalogrpc.Register(s, impl) }))
	req := catalog.ListRequest{PageSize: catalog.MaxPageSize}
	for pages := 0; ; pages++ {
		if pages > len(catalog.Seed()) {
			t.Fatal("the pages never end")
		}
		want, err := impl.List(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := client.List(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Products, want.Products) || got.NextPageToken != want.NextPageToken {
			t.Fatalf("page %d through gRPC:\n%+v\nin process:\n%+v", pages+1, got, want)
		}
		if len(want.Products) < 2 {
			t.Fatalf("page %d has %d products: the test needs pages of several", pages+1, len(want.Products))
		}
		if want.NextPageToken == "" {
			return
		}
		req.PageToken = want.NextPageToken
	}
}
