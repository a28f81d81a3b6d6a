package ordersrpc_test

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/mitosis-dev/mitosis/services/gen/common/v1"
	ordersv1 "github.com/mitosis-dev/mitosis/services/gen/orders/v1"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/ordersrpc"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// TestLargeOrdersPageOverGRPC: a page of a user's orders larger than gRPC's default 4 MiB
// message bound reaches the caller whole through the services' own server and client, as the
// monolith hands it over in process. The orders are real checkouts of the largest orders the
// shop takes (inventory.MaxLines lines, product IDs of the longest length), so the page holds
// at least that many bytes of product IDs alone.
//
// The contexts run in process on memory buckets, and the test writes each cart straight
// into the cart's bucket in the cart's own JSON: a thousand Adds re-encode the cart a
// thousand times, minutes of CPU under the race detector for no more than this is.
func TestLargeOrdersPageOverGRPC(t *testing.T) {
	const checkouts = 34 // each >= MaxLines*ids.MaxLen bytes: 34 of them pass 4 MiB
	if checkouts*inventory.MaxLines*ids.MaxLen <= 4<<20 {
		t.Fatalf("%d orders of %d lines are no page above 4 MiB", checkouts, inventory.MaxLines)
	}
	ctx := t.Context()
	logger := slog.New(slog.DiscardHandler)
	cat, err := catalog.New(ctx, kv.NewMemory(), logger)
	if err != nil {
		t.Fatalf("catalog.New: %v", err)
	}
	inv := inventory.New(kv.NewMemory(), kv.NewMemory(), time.Now, 5*time.Minute)
	cartBucket := kv.NewMemory()
	impl := orders.New(
		orders.Stores{Orders: kv.NewMemory(), Sagas: kv.NewMemory(), UserOrders: kv.NewMemory()},
		orders.Deps{
			Catalog: cat, Carts: cart.New(cartBucket), Inventory: inv, Payments: payments.New(kv.NewMemory(), time.Now),
			Events: events.NewMemory(logger), Now: time.Now, Logger: logger, RequestKey: []byte("ordersrpc-large-page-key"),
		})
	client := ordersrpc.NewClient(rpctest.Serve(t, ordersrpc.ServiceConfig,
		func(s grpc.ServiceRegistrar) { ordersrpc.Register(s, impl) }))

	items := make([]cart.Item, inventory.MaxLines)
	for i := range items {
		id := fmt.Sprintf("%0*d", ids.MaxLen, i)
		if _, err := cat.Upsert(ctx, catalog.Product{ID: id, Name: "part " + id[len(id)-4:], Price: money.Cents(999_999), WeightGrams: 1}); err != nil {
			t.Fatalf("upsert %s: %v", id, err)
		}
		if _, err := inv.Add(ctx, id, checkouts); err != nil {
			t.Fatalf("stock %s: %v", id, err)
		}
		items[i] = cart.Item{ProductID: id, Quantity: 1}
	}
	user := strings.Repeat("u", ids.MaxLen)
	for i := range checkouts {
		if _, err := kv.Mutate(ctx, cartBucket, user, func(c *cart.Cart, _ bool) error {
			*c = cart.Cart{UserID: user, Items: items}
			return nil
		}); err != nil {
			t.Fatalf("fill the cart: %v", err)
		}
		if _, err := impl.Checkout(ctx, fmt.Sprintf("large-page-%d", i), orderstest.Request(user)); err != nil {
			t.Fatalf("checkout %d: %v", i, err)
		}
	}

	req := orders.ListRequest{UserID: user, PageSize: paging.MaxSize}
	want, err := impl.ListByUser(ctx, req)
	if err != nil || len(want.Orders) != checkouts {
		t.Fatalf("in process: %d orders, %v; want %d", len(want.Orders), err, checkouts)
	}
	got, err := client.ListByUser(ctx, req)
	if err != nil {
		t.Fatalf("over gRPC: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("over gRPC the page differs from the one in process (%d orders, want %d)", len(got.Orders), len(want.Orders))
	}
}

// TestLargestOrdersPageFitsAMessage: the largest page of orders the domain can give (a full
// page of orders of inventory.MaxLines lines, every text at its longest and every number at
// its widest) fits in host.MaxMessageBytes, so no answer of the shop's is too large for the
// services' wire. The message is built as ordersrpc sends one, field for field.
func TestLargestOrdersPageFitsAMessage(t *testing.T) {
	id := strings.Repeat("i", ids.MaxLen)
	widest := &commonv1.Money{Currency: money.USD, Units: 1<<63 - 1}
	order := &ordersv1.Order{
		Id: id, UserId: id, Status: orders.StatusShipped, TrackingId: id,
		Subtotal: widest, Shipping: widest, Total: widest, CreatedAt: timestamppb.New(time.Now()),
	}
	for range inventory.MaxLines {
		order.Items = append(order.Items, &ordersv1.Item{ProductId: id, Quantity: cart.MaxQuantity, UnitPrice: widest})
	}
	page := &ordersv1.ListByUserResponse{NextPageToken: id}
	for range paging.MaxSize {
		page.Orders = append(page.Orders, order)
	}
	size := proto.Size(page)
	t.Logf("the largest page of orders: %d bytes in protobuf; the bound: %d", size, host.MaxMessageBytes)
	if size > host.MaxMessageBytes {
		t.Fatalf("the largest page of orders is %d bytes, above host.MaxMessageBytes (%d)", size, host.MaxMessageBytes)
	}
}
