package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// The product list and product page are the shop's hot paths. These benchmarks serve them
// through the whole handler (edge, router, catalog view, JSON) in process, over the real
// catalog on a JetStream bucket; the seed catalog has more than one default page.

func BenchmarkProductList(b *testing.B) {
	h := httpapi.New(jetStreamConfig(b))
	benchmarkGET(b, h, "/v1/products")
}

func BenchmarkProductListSearch(b *testing.B) {
	h := httpapi.New(jetStreamConfig(b))
	benchmarkGET(b, h, "/v1/products?q=tent&page_size=10")
}

func BenchmarkProductGet(b *testing.B) {
	h := httpapi.New(jetStreamConfig(b))
	benchmarkGET(b, h, "/v1/products/sku-0001")
}

func benchmarkGET(b *testing.B, h http.Handler, target string) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if rec := httptest.NewRecorder(); serveTo(h, rec, req).Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d", target, rec.Code)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func serveTo(h http.Handler, rec *httptest.ResponseRecorder, req *http.Request) *httptest.ResponseRecorder {
	h.ServeHTTP(rec, req)
	return rec
}
