package httpapi_test

import (
	"net/http/httptest"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// TestAPISuite runs the deployment suite against the API over the real contexts on memory
// buckets and the memory bus, with the event consumers running.
func TestAPISuite(t *testing.T) {
	srv := httptest.NewServer(httpapi.New(config(memoryShop(t))))
	t.Cleanup(srv.Close)
	apitest.Run(t, apitest.Target{BaseURL: srv.URL, AdminToken: testToken})
}

// TestAPISuiteJetStream is TestAPISuite over a real embedded JetStream.
func TestAPISuiteJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite again over JetStream")
	}
	srv := httptest.NewServer(httpapi.New(config(jetStreamShop(t))))
	t.Cleanup(srv.Close)
	apitest.Run(t, apitest.Target{BaseURL: srv.URL, AdminToken: testToken})
}
