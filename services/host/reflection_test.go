package host_test

import (
	"encoding/json"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/catalog"
)

// A gRPC tool that knows nothing of mitosis's protos (grpcurl, Postman, Evans) finds the
// catalog by server reflection, calls Get with a message it builds from the descriptors it
// was sent, and reads the product's name as text: text fields are proto strings, shown as
// themselves, not as base64. Reflection needs a certificate of the stack, the tooling one
// does (identity.Tooling); the call itself an identity the access table lets call it.
func TestReflectionShowsText(t *testing.T) {
	ns := hosttest.StartNATS(t)
	h := hosttest.Start(t, "catalog", map[string]string{"SHOP_NATS_URL": ns.URL()})
	dial := func(service string) *grpc.ClientConn {
		conn, err := grpc.NewClient(h.GRPCAddr, grpc.WithTransportCredentials(hosttest.Security(t, service).ClientCredentials("catalog")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	conn := dial(identity.Tooling)
	ctx := t.Context()
	stream, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		res, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e := res.GetErrorResponse(); e != nil {
			t.Fatalf("reflection: %s", e.GetErrorMessage())
		}
		return res
	}

	const service = "mitosis.catalog.v1.CatalogService"
	var names []string
	for _, s := range ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}).GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, service) {
		t.Fatalf("reflection lists %v, not %s", names, service)
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, b := range ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: service}}).GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fd); err != nil {
			t.Fatal(err)
		}
		set.File = append(set.File, fd)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("the descriptors reflection sent: %v", err)
	}
	d, err := files.FindDescriptorByName(service + ".Get")
	if err != nil {
		t.Fatal(err)
	}
	get := d.(protoreflect.MethodDescriptor)

	want := catalog.Seed()[0]
	req := dynamicpb.NewMessage(get.Input())
	req.Set(get.Input().Fields().ByName("id"), protoreflect.ValueOfString(want.ID))
	res := dynamicpb.NewMessage(get.Output())
	if err := conn.Invoke(ctx, "/"+service+"/Get", req, res); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Get with the tooling identity: %v, want PermissionDenied", err)
	}
	if err := dial("gateway").Invoke(ctx, "/"+service+"/Get", req, res); err != nil {
		t.Fatalf("Get %s: %v", want.ID, err)
	}
	name := get.Output().Fields().ByName("product").Message().Fields().ByName("name")
	if name.Kind() != protoreflect.StringKind {
		t.Fatalf("the product's name is a %s field, want string", name.Kind())
	}
	if got := res.Get(get.Output().Fields().ByName("product")).Message().Get(name).String(); got != want.Name {
		t.Errorf("name %q, want %q", got, want.Name)
	}
	// What grpcurl prints: the message as JSON, the name as text.
	out, err := protojson.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var printed struct {
		Product struct{ ID, Name string }
	}
	if err := json.Unmarshal(out, &printed); err != nil || printed.Product.ID != want.ID || printed.Product.Name != want.Name {
		t.Errorf("printed %s (%v), want id %q and name %q", out, err, want.ID, want.Name)
	}
}
