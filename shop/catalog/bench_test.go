package catalog_test

import (
	"context"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// Reads never touch the store, so these measure the in-memory view that serves the shop's
// hottest path; the bucket is JetStream all the same, as in production.
//
//	go test -run '^$' -bench . -benchmem ./catalog/

func BenchmarkList(b *testing.B) {
	srv := natsjstest.New(b)
	svc := newCatalog(b, srv.Bucket(b, "products"))
	ctx := context.Background()
	first, err := svc.List(ctx, catalog.ListRequest{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		req  catalog.ListRequest
	}{
		{"FirstPage", catalog.ListRequest{}},
		{"NextPage", catalog.ListRequest{PageToken: first.NextPageToken}},
		{"MaxPage", catalog.ListRequest{PageSize: catalog.MaxPageSize}},
		{"Search", catalog.ListRequest{Query: "Steel"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.List(ctx, bc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	srv := natsjstest.New(b)
	svc := newCatalog(b, srv.Bucket(b, "products"))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Get(ctx, "sku-0042"); err != nil {
			b.Fatal(err)
		}
	}
}
