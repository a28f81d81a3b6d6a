// Package lambdatest is AWS Lambda behind API Gateway, as far as a function and its callers
// can tell, for tests: the Runtime API a function polls (next invocation, response, error,
// init error; https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) and, in front
// of it, an HTTP endpoint that turns each request into an HTTP API event (payload format
// 2.0, which function URLs send too) and the function's answer back into a response, as API
// Gateway does; and Invoke, for what invokes a function directly (the Invoke API, a Step
// Functions Task). Any number of function processes may poll it, as Lambda runs as many copies
// of a function as requests need; each takes one invocation at a time.
package lambdatest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Lambda is the fake. Its zero value is not usable: call Start.
type Lambda struct {
	runtime, gateway *http.Server
	runtimeAddr      string
	gatewayURL       string
	timeout          time.Duration

	queue   chan *invocation
	mu      sync.Mutex
	pending map[string]*invocation
	seq     atomic.Int64

	// Invocations counts the events handed to a function; Errors those it answered with an
	// error (or an init error).
	Invocations, Errors atomic.Int64

	polls atomic.Int64 // next calls waiting for an invocation
}

type invocation struct {
	id    string
	event []byte
	done  chan result
}

type result struct {
	body    []byte
	isError bool
}

// Start serves the Runtime API and the gateway on loopback ports; timeout is the function's
// (an invocation unanswered by then is a 504 to its caller, as API Gateway answers).
func Start(timeout time.Duration) (*Lambda, error) {
	l := &Lambda{timeout: timeout, queue: make(chan *invocation), pending: map[string]*invocation{}}
	rt, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = rt.Close()
		return nil, err
	}
	l.runtimeAddr, l.gatewayURL = rt.Addr().String(), "http://"+gw.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", l.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", l.answer(false))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", l.answer(true))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) {
		l.Errors.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})
	l.runtime = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	l.gateway = &http.Server{Handler: http.HandlerFunc(l.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = l.runtime.Serve(rt) }()
	go func() { _ = l.gateway.Serve(gw) }()
	return l, nil
}

// RuntimeAPI is the value of AWS_LAMBDA_RUNTIME_API for the functions: host:port.
func (l *Lambda) RuntimeAPI() string { return l.runtimeAddr }

// URL is the gateway's base URL, where callers send their HTTP requests.
func (l *Lambda) URL() string { return l.gatewayURL }

// Close stops both servers; invocations in flight end with a 503.
func (l *Lambda) Close() error {
	return errors.Join(l.gateway.Close(), l.runtime.Close())
}

// Polls is how many calls for the next invocation wait for one. A copy of the function
// that was killed leaves its call waiting until the server sees its connection closed, and
// an invocation the call takes meanwhile is lost (Lambda would answer it with a 502):
// a test that kills copies waits for their calls to end before it sends a request.
func (l *Lambda) Polls() int64 { return l.polls.Load() }

// next hands the next invocation to a polling function, as the Runtime API does: the
// event, and its request ID, deadline, function ARN and trace header.
func (l *Lambda) next(w http.ResponseWriter, r *http.Request) {
	l.polls.Add(1)
	defer l.polls.Add(-1)
	select {
	case <-r.Context().Done():
		return
	case inv := <-l.queue:
		l.mu.Lock()
		l.pending[inv.id] = inv
		l.mu.Unlock()
		l.Invocations.Add(1)
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(l.timeout).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:shop")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(inv.event)
	}
}

func (l *Lambda) answer(isError bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 6<<20)) // Lambda's limit on a response
		l.mu.Lock()
		inv, ok := l.pending[r.PathValue("id")]
		delete(l.pending, r.PathValue("id"))
		l.mu.Unlock()
		if !ok || err != nil {
			http.Error(w, `{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
			return
		}
		if isError {
			l.Errors.Add(1)
		}
		inv.done <- result{body: body, isError: isError}
		w.WriteHeader(http.StatusAccepted)
	}
}

// FunctionError is a function's answer to an invocation that failed: the error it reported,
// as Lambda's Invoke API and Step Functions' lambda:invoke pass it on (its type becomes the
// name a state machine's Retry and Catch match).
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Invoke invokes the function with payload as Lambda's Invoke API does (RequestResponse),
// as Step Functions' lambda:invoke does: the function's answer, a *FunctionError when it
// reported one, or another error when no copy took the invocation or answered within the
// function's timeout (or ctx).
func (l *Lambda) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	inv := &invocation{id: "inv-" + strconv.FormatInt(l.seq.Add(1), 10), event: payload, done: make(chan result, 1)}
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case l.queue <- inv:
	case <-timer.C:
		return nil, errors.New("no copy of the function took the invocation within its timeout")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var res result
	select {
	case res = <-inv.done:
	case <-timer.C:
		return nil, errors.New("the function did not answer within its timeout")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if res.isError {
		var fe FunctionError
		if err := json.Unmarshal(res.body, &fe); err != nil || fe.Type == "" {
			return nil, &FunctionError{Type: "Unhandled", Message: string(res.body)}
		}
		return nil, &fe
	}
	return res.body, nil
}

// serve is API Gateway's HTTP API in front of the function.
func (l *Lambda) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20+1))
	if err != nil || len(body) > 10<<20 { // API Gateway's payload limit
		http.Error(w, `{"message":"Request Entity Too Large"}`, http.StatusRequestEntityTooLarge)
		return
	}
	ev := Event(r, body)
	ev.RequestContext.RequestID = "req-" + strconv.FormatInt(l.seq.Add(1), 10)
	raw, err := json.Marshal(ev)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	inv := &invocation{id: ev.RequestContext.RequestID, event: raw, done: make(chan result, 1)}
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case l.queue <- inv:
	case <-timer.C:
		http.Error(w, `{"message":"Service Unavailable"}`, http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	var res result
	select {
	case res = <-inv.done:
	case <-timer.C:
		http.Error(w, `{"message":"Endpoint request timed out"}`, http.StatusGatewayTimeout)
		return
	}
	var out events.APIGatewayV2HTTPResponse
	if res.isError || json.Unmarshal(res.body, &out) != nil || out.StatusCode == 0 {
		http.Error(w, `{"message":"Internal Server Error"}`, http.StatusInternalServerError)
		return
	}
	for k, v := range out.Headers {
		w.Header().Set(k, v)
	}
	for _, c := range out.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	payload := []byte(out.Body)
	if out.IsBase64Encoded {
		if payload, err = base64.StdEncoding.DecodeString(out.Body); err != nil {
			http.Error(w, `{"message":"Internal Server Error"}`, http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(out.StatusCode)
	_, _ = w.Write(payload)
}

// Event is the HTTP API event (payload 2.0) API Gateway makes of r: header names in lower
// case with repeated ones joined by commas, cookies apart, the path as sent, a body that is
// not UTF-8 in base64.
func Event(r *http.Request, body []byte) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Headers:        map[string]string{},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:   "$default",
			Stage:      "$default",
			DomainName: r.Host,
			TimeEpoch:  time.Now().UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  strings.Split(r.RemoteAddr, ":")[0],
				UserAgent: r.UserAgent(),
			},
		},
	}
	for k, vs := range r.Header {
		if strings.EqualFold(k, "Cookie") {
			for _, v := range vs {
				ev.Cookies = append(ev.Cookies, strings.Split(v, "; ")...)
			}
			continue
		}
		ev.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	ev.Headers["host"] = r.Host
	if utf8.Valid(body) {
		ev.Body = string(body)
	} else {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return ev
}
