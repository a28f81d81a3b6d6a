package host

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Keepalive settings. Pings find a dead peer (a killed pod, a dropped NAT entry) within
// about a minute even when no call is in flight; the server accepts the clients' pace.
const (
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
)

// Flow-control windows of every connection between the services, fixed. gRPC's default
// sizes its windows by estimating the bandwidth-delay product, which costs a PING frame each
// way per burst of data: with the shop's calls one small message each way, about one PING
// and its ACK per call on each side, four more frames (and their writes) per hop. A window
// that is set is static, and no PING goes. The sizes hold a common message (a page of
// products or of orders: tens of KiB) many times over; a larger one (up to MaxMessageBytes)
// crosses in several windows. They are allowances, not buffers: memory is used only while a
// reader lags.
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

// MaxMessageBytes bounds a gRPC message either way, on every server and client. gRPC's own
// bound on what one takes in is 4 MiB, and the largest answer the shop gives is larger: a
// page of a user's orders, up to 100 orders of up to inventory.MaxLines lines whose product
// IDs may be 128 bytes each, about 16 MB. Under gRPC's bound the services answered such a
// page 503 where the monolith answered 200. The bound holds it twice over
// (TestLargestOrdersPageFitsAMessage in ordersrpc computes it); peers are the stack's own
// identities (mutual TLS), so the bound is against mistakes, not against strangers.
const MaxMessageBytes = 32 << 20

// NewServer returns a gRPC server with what every service needs: keepalive, panic recovery
// (a bug fails the call with Internal, it does not kill the process), a warning for every
// call that failed for a reason that is not the domain's, server reflection (grpcurl works
// against any service), and OpenTelemetry (otelgrpc: a SERVER span per call, continuing the
// caller's trace, and RPC metrics), and sec: mutual TLS and per-method authorization (see
// Security), health and reflection open to any identity of the stack. opts come after these.
//
// Stream workers (one per CPU) serve calls on long-lived goroutines instead of one new
// goroutine per call, and connections share write buffers (gRPC's default since it
// deprecated the option): together they cut a product list's CPU through one hop from
// about 390 to 230 µs on the 2-core test machine (go test -bench ProductList
// ./services/splittax).
func NewServer(logger *slog.Logger, sec Security, opts ...grpc.ServerOption) *grpc.Server {
	base := []grpc.ServerOption{
		grpc.Creds(sec.serverCreds()),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(spanWorthy))),
		grpc.StatsHandler(messageSizes{}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 3, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(guard(logger)),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		grpc.StaticStreamWindowSize(streamWindow),
		grpc.StaticConnWindowSize(connWindow),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
	}
	if !sec.Insecure {
		// Authorization first: a refused call costs no handler, no panic guard, no log but its own.
		base = append([]grpc.ServerOption{
			grpc.ChainUnaryInterceptor(sec.unaryAuthorization(logger)),
			grpc.ChainStreamInterceptor(sec.streamAuthorization(logger)),
		}, base...)
	}
	s := grpc.NewServer(append(base, opts...)...)
	reflection.Register(s)
	return s
}

// spanWorthy says which calls make spans: not the health checks, every 2 seconds to every peer,
// nor reflection; they would bury the requests' traces.
var spanWorthy = filters.Not(filters.Any(filters.HealthCheck(), filters.ServicePrefix("grpc.reflection.")))

// guard recovers panics and logs failures the domain has no name for.
func guard(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if v := recover(); v != nil {
				logger.LogAttrs(ctx, slog.LevelError, "grpc handler panicked",
					slog.String("method", info.FullMethod), slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
				resp, err = nil, status.Error(codes.Internal, fmt.Sprintf("%s: internal error", info.FullMethod))
			}
		}()
		resp, err = handler(ctx, req)
		if err != nil {
			switch code := status.Code(err); code {
			case codes.Unknown, codes.Internal, codes.Unavailable, codes.DeadlineExceeded, codes.DataLoss:
				logger.LogAttrs(ctx, slog.LevelWarn, "grpc call failed",
					slog.String("method", info.FullMethod), slog.String("code", code.String()), slog.Any("err", err))
			}
		}
		return resp, err
	}
}

// Dial returns the long-lived connection to a peer at addr: host:port (a name resolving to
// several addresses spreads calls over them), or the addresses of a group's replicas joined
// by commas (platform/topology), a static list that gRPC's manual resolver hands to the
// round-robin balancer of serviceConfig. Calls then spread over every replica connected; a
// replica that is down or draining (its connection lost, or told to go away as it stops) is
// not picked, and a call caught by its going away is retried on another (gRPC's transparent
// retry); the client redials its address (bounded.Redial), where a restarted replica is
// found again. Names in the list are resolved at each dial, so a remade pod is found under
// its name.
//
// The balancer goes by connectivity, not by each replica's health service: a context's
// health follows its callees' (Generation.Ready), so with client-side health checking a
// callee down would take every replica of its callers out of their callers' picks, failing
// calls that never needed the callee. A replica stopping says NOT_SERVING and then goes away
// (GOAWAY), which its clients see at once.
//
// serviceConfig is the peer package's ServiceConfig (load balancing and read retries); a
// call whose context has no deadline gets callTimeout. The connection is made lazily and
// remade after failures, for the life of the process: one per peer, never one per call.
// Every call is a CLIENT span (otelgrpc) whose context travels in the call's metadata. creds
// protect the connection: Security.ClientCredentials.
func Dial(addr, serviceConfig string, callTimeout time.Duration, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	target := addr
	var base []grpc.DialOption
	if list := strings.Split(addr, ","); len(list) > 1 {
		r := manual.NewBuilderWithScheme(replicasScheme)
		state := resolver.State{}
		for _, a := range list {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("dial %s: %q: %w", addr, a, err)
			}
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
		}
		r.InitialState(state)
		// The authority names the peer in each call's :authority: its first replica.
		target = replicasScheme + ":///" + list[0]
		base = append(base, grpc.WithResolvers(r))
	}
	base = append(base,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithConnectParams(bounded.Redial()),
		grpc.WithChainUnaryInterceptor(defaultDeadline(callTimeout)),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithFilter(spanWorthy))),
		grpc.WithStatsHandler(messageSizes{}),
		grpc.WithStaticStreamWindowSize(streamWindow),
		grpc.WithStaticConnWindowSize(connWindow),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	)
	conn, err := grpc.NewClient(target, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// replicasScheme is the resolver scheme of a peer given as a list of replicas' addresses.
const replicasScheme = "replicas"

// defaultDeadline bounds calls made without a deadline (event handlers, background loops):
// a peer that hangs must not hang its caller forever. A caller's own deadline, shorter or
// longer, stands; it travels to the server with the call.
func defaultDeadline(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok && d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
