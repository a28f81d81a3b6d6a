package host

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// LambdaRuntimeEnv is set by AWS Lambda in a function's environment: the Runtime API's
// host:port, from which a function takes its invocations instead of listening on a port.
const LambdaRuntimeEnv = "AWS_LAMBDA_RUNTIME_API"

// serveLambda serves h to the function's invocations until ctx ends: each is an HTTP request
// in API Gateway's HTTP API payload (version 2.0), which Lambda function URLs send too, and
// its answer the response in the same format. aws-lambda-go runs the Runtime API loop (next
// invocation, response, error); a loop that fails ends the process, as Lambda expects, and
// Lambda starts another.
//
// The conversion is this package's, not aws-lambda-go-api-proxy's: that one splits every
// header that is not a standard single-valued one at its commas, and an Idempotency-Key may
// hold commas (API.md); here a header's value reaches the shop as the gateway received it.
func serveLambda(ctx context.Context, h http.Handler, logger *slog.Logger) error {
	logger.Info("serving Lambda invocations instead of listening")
	go lambda.StartWithOptions(func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return invoke(ctx, h, ev)
	}, lambda.WithContext(ctx))
	<-ctx.Done()
	return nil
}

// invoke turns one invocation into a request to h and h's answer into the invocation's
// response. An event that is no HTTP request (another trigger) is an error of the
// invocation, which Lambda reports to its caller.
func invoke(ctx context.Context, h http.Handler, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	r, err := lambdaRequest(ctx, ev)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	w := &lambdaResponse{header: http.Header{}}
	h.ServeHTTP(w, r)
	return w.event(), nil
}

func lambdaRequest(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	method, path := ev.RequestContext.HTTP.Method, ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	if method == "" || !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("the event is not an HTTP request of API Gateway's payload 2.0 (method %q, path %q)", method, path)
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, fmt.Errorf("the event's body: %w", err)
		}
		body = b
	}
	u := &url.URL{Scheme: "https", Host: ev.RequestContext.DomainName, RawQuery: ev.RawQueryString}
	if err := setPath(u, path); err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("the event's request: %w", err)
	}
	for k, v := range ev.Headers {
		r.Header.Set(k, v)
	}
	if len(ev.Cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	if host := r.Header.Get("Host"); host != "" {
		r.Host = host
	}
	r.RemoteAddr = ev.RequestContext.HTTP.SourceIP
	r.RequestURI = u.RequestURI()
	return r, nil
}

// setPath gives u the event's raw path: API Gateway passes it still escaped (%2F stays one
// path segment), as a server's request line would.
func setPath(u *url.URL, raw string) error {
	p, err := url.PathUnescape(raw)
	if err != nil {
		return fmt.Errorf("the event's path %q: %w", raw, err)
	}
	u.Path, u.RawPath = p, raw
	return nil
}

// lambdaResponse collects what the handler writes.
type lambdaResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *lambdaResponse) Header() http.Header { return w.header }

func (w *lambdaResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *lambdaResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// event is the response in payload 2.0: headers with several values joined by commas (the
// format has one string per header), Set-Cookie apart, a body that is not UTF-8 in base64.
func (w *lambdaResponse) event() events.APIGatewayV2HTTPResponse {
	w.WriteHeader(http.StatusOK)
	out := events.APIGatewayV2HTTPResponse{StatusCode: w.status, Headers: map[string]string{}}
	for k, vs := range w.header {
		if k == "Set-Cookie" {
			out.Cookies = slices.Clone(vs)
			continue
		}
		out.Headers[k] = strings.Join(vs, ",")
	}
	if b := w.body.Bytes(); utf8.Valid(b) {
		out.Body = string(b)
	} else {
		out.Body, out.IsBase64Encoded = base64.StdEncoding.EncodeToString(b), true
	}
	return out
}
