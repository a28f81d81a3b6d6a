package stacktest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// GRPCCode calls method of the gRPC server at addr over creds, in and out its messages,
// within 5 s, and returns the call's status code: what the security tests assert (a refused
// handshake is Unavailable, a refused caller PermissionDenied).
func GRPCCode(ctx context.Context, t *testing.T, addr string, creds credentials.TransportCredentials, method string, in, out any) codes.Code {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return status.Code(conn.Invoke(ctx, method, in, out))
}

// HealthCode is GRPCCode of grpc.health.v1's Check of the whole server.
func HealthCode(ctx context.Context, t *testing.T, addr string, creds credentials.TransportCredentials) codes.Code {
	t.Helper()
	return GRPCCode(ctx, t, addr, creds, healthpb.Health_Check_FullMethodName, &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
}
