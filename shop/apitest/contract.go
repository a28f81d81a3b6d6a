package apitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

// Contract is the API's OpenAPI 3.1 document (shop/httpapi/openapi.yaml, the one the edges
// serve at /openapi.yaml), ready to check requests and responses against it with
// kin-openapi's openapi3filter: parameters, headers, bodies (JSON Schema 2020-12, unknown
// fields included), the bearer scheme of the admin routes, and that every status a route
// answers is one the document lists for it. It is safe for concurrent use.
type Contract struct {
	doc    *openapi3.T
	router *chi.Mux // the document's paths and methods, matched as the edge matches them
	// emptyIDs maps the path of a route's empty ID ("/v1/carts/") to the document's path
	// ("/v1/carts/{user_id}").
	emptyIDs map[string]string
	opts     *openapi3filter.Options
	// What the document says of a request none of its operations matches, an unknown path
	// or a method a path does not serve: 404 (its NotFound response), or 413.
	notFound *openapi3.Operation
}

// LoadContract parses and validates the API's OpenAPI document.
func LoadContract() (*Contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml is no valid OpenAPI document: %w", err)
	}
	// The edge routes with chi, and so does the contract: the same templates matched the
	// same way (on the escaped path, so that an ID holding "%2F" stays one segment; an empty
	// segment is a parameter, "" which the document then refuses), on any host.
	// A path that ends in an ID is also matched with that ID empty, as the edge does
	// (httpapi.EmptyIDPath): "/v1/carts/" is GET /v1/carts/{user_id} with user_id "".
	router := chi.NewMux()
	emptyIDs := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			router.MethodFunc(method, path, func(http.ResponseWriter, *http.Request) {})
			if empty, ok := httpapi.EmptyIDPath(path); ok {
				router.MethodFunc(method, empty, func(http.ResponseWriter, *http.Request) {})
				emptyIDs[empty] = path
			}
		}
	}
	// A request no operation matches is 404, or 413 when its body is over 1 MiB: the edge
	// refuses such a body before it routes.
	var answers []openapi3.NewResponsesOption
	for _, a := range []struct {
		status   int
		response string
	}{{http.StatusNotFound, "NotFound"}, {http.StatusRequestEntityTooLarge, "PayloadTooLarge"}} {
		ref := doc.Components.Responses[a.response]
		if ref == nil {
			return nil, fmt.Errorf("openapi.yaml: no response %s in its components", a.response)
		}
		answers = append(answers, openapi3.WithStatus(a.status, ref))
	}
	notFound := &openapi3.Operation{Responses: openapi3.NewResponses(answers...)}
	return &Contract{
		doc:      doc,
		router:   router,
		emptyIDs: emptyIDs,
		opts: &openapi3filter.Options{
			IncludeResponseStatus:             true, // a status the route does not list breaks the contract
			RejectWhenRequestBodyNotSpecified: true,
			SkipSettingDefaults:               true, // check the request as sent
			AuthenticationFunc:                bearerToken,
		},
		notFound: notFound,
	}, nil
}

// bearerToken checks the form of the admin routes' credentials (the document's http bearer
// scheme): an Authorization header "Bearer <token>". Whether the token is the right one is
// the server's to say (401).
func bearerToken(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("security scheme %s: only http bearer is known here", in.SecuritySchemeName)
	}
	scheme, token, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errors.New(`no "Authorization: Bearer <token>" header`)
	}
	return nil
}

// ContractError is a request or a response that breaks the API's OpenAPI document.
type ContractError struct {
	Method, Path string // of the request, as sent
	Route        string // the document's path that matched, "" for none
	Status       int    // of the response; 0 when the request itself breaks the document
	Err          error  // what the validator said
}

func (e *ContractError) Error() string {
	route := e.Route
	if route == "" {
		route = "no path of the document"
	}
	path := e.Path
	if len(path) > 200 {
		path = path[:200] + "..."
	}
	if e.Status == 0 {
		return fmt.Sprintf("openapi.yaml: the request %s %s (%s) breaks the document: %v", e.Method, path, route, e.Err)
	}
	return fmt.Sprintf("openapi.yaml: %s %s (%s) answered %d, which breaks the document: %v", e.Method, path, route, e.Status, e.Err)
}

func (e *ContractError) Unwrap() error { return e.Err }

// CheckRequest checks a request and its body (req.Body is not read) against the document:
// its route and method, path and query parameters, headers, credentials and body.
func (c *Contract) CheckRequest(req *http.Request, body []byte) error {
	in, err := c.input(req, body)
	if err != nil {
		return &ContractError{Method: req.Method, Path: req.URL.RequestURI(), Err: err}
	}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		return &ContractError{Method: req.Method, Path: req.URL.RequestURI(), Route: in.Route.Path, Err: err}
	}
	return nil
}

// CheckResponse checks the response to req (status, headers, body) against what the
// document says its route answers. A request no operation of the document matches (no path,
// or a method its path does not serve) must have been answered 404 not-found, as the
// document's NotFound response says.
func (c *Contract) CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	in, err := c.input(req, nil)
	if err != nil {
		if !errors.Is(err, routers.ErrPathNotFound) && !errors.Is(err, routers.ErrMethodNotAllowed) {
			return &ContractError{Method: req.Method, Path: req.URL.RequestURI(), Status: status, Err: err}
		}
		in = &openapi3filter.RequestValidationInput{Request: req, Options: c.opts,
			Route: &routers.Route{Spec: c.doc, Path: "", Method: req.Method, Operation: c.notFound}}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: c.opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		return &ContractError{Method: req.Method, Path: req.URL.RequestURI(), Route: in.Route.Path, Status: status, Err: err}
	}
	return nil
}

// input finds req's operation in the document: routers.ErrPathNotFound or
// routers.ErrMethodNotAllowed when there is none. The validator reads the request it gets,
// so it gets a copy carrying body.
func (c *Contract) input(req *http.Request, body []byte) (*openapi3filter.RequestValidationInput, error) {
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	rctx := chi.NewRouteContext()
	pattern := c.router.Find(rctx, req.Method, path)
	if pattern == "" {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			if c.router.Match(chi.NewRouteContext(), m, path) {
				return nil, routers.ErrMethodNotAllowed
			}
		}
		return nil, routers.ErrPathNotFound
	}
	// Matched on the escaped path; the parameters' schemas are about the IDs themselves.
	params := make(map[string]string, len(rctx.URLParams.Keys))
	for i, name := range rctx.URLParams.Keys {
		v := rctx.URLParams.Values[i]
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		params[name] = v
	}
	if path, ok := c.emptyIDs[pattern]; ok {
		pattern = path
		name := path[strings.LastIndexByte(path, '{')+1 : len(path)-1]
		params[name] = ""
	}
	item := c.doc.Paths.Value(pattern)
	route := &routers.Route{Spec: c.doc, Path: pattern, PathItem: item, Method: req.Method, Operation: item.GetOperation(req.Method)}
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	return &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts}, nil
}
