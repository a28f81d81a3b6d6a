package httpapi_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// The edge serves openapi.yaml, a valid OpenAPI 3.1 document, at /openapi.yaml.
func TestServesOpenAPIDocument(t *testing.T) {
	res := serve(newHandler(t), http.MethodGet, httpapi.OpenAPIPath, nil, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", httpapi.OpenAPIPath, res.Code, res.Body)
	}
	if ct := res.Header().Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
	if !bytes.Equal(res.Body.Bytes(), httpapi.OpenAPI()) {
		t.Errorf("served %d bytes that are not openapi.yaml", res.Body.Len())
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(res.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil || doc.OpenAPI != "3.1.0" {
		t.Errorf("the served document: OpenAPI %q, %v", doc.OpenAPI, err)
	}
	// OpenAPI hands out copies: what a caller does with one is not what the edge serves.
	clear(httpapi.OpenAPI())
	if again := serve(newHandler(t), http.MethodGet, httpapi.OpenAPIPath, nil, nil); !bytes.Equal(again.Body.Bytes(), res.Body.Bytes()) {
		t.Error("changing what OpenAPI returned changed the served document")
	}
}
