package httpapi

import (
	_ "embed"
	"net/http"
	"slices"
	"strconv"
)

// openAPIDocument is openapi.yaml: the API as OpenAPI 3.1. Never written to.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPI returns the API's OpenAPI 3.1 document (openapi.yaml, written from API.md), as
// GET /openapi.yaml serves it: what a client generator, Postman or a validator reads.
func OpenAPI() []byte { return slices.Clone(openAPIDocument) }

// OpenAPIPath is where every edge serves the document.
const OpenAPIPath = "/openapi.yaml"

// openAPIContentType is YAML's media type (RFC 9512).
const openAPIContentType = "application/yaml"

func (a *api) openAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", openAPIContentType)
	h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument) // a write error means the client is gone
}
