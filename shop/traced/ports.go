package traced

import (
	"context"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
)

// Each decorator is given the name of the gRPC service that carries its port between
// processes (services/bounded has it), and indexes its methods in the order it names them.

// Catalog returns s with every call traced.
func (t *Tracing) Catalog(service string, s catalog.Service) catalog.Service {
	return &catalogCalls{t: t, next: s, m: methods(service, "Get", "List", "Upsert")}
}

type catalogCalls struct {
	t    *Tracing
	next catalog.Service
	m    []method // Get, List, Upsert
}

func (c *catalogCalls) Get(ctx context.Context, id string) (catalog.Product, error) {
	ctx, call := c.t.start(ctx, &c.m[0])
	p, err := c.next.Get(ctx, id)
	call.end(ctx, err)
	return p, err
}

func (c *catalogCalls) List(ctx context.Context, req catalog.ListRequest) (catalog.Page, error) {
	ctx, call := c.t.start(ctx, &c.m[1])
	p, err := c.next.List(ctx, req)
	call.end(ctx, err)
	return p, err
}

func (c *catalogCalls) Upsert(ctx context.Context, p catalog.Product) (catalog.Product, error) {
	ctx, call := c.t.start(ctx, &c.m[2])
	p, err := c.next.Upsert(ctx, p)
	call.end(ctx, err)
	return p, err
}

// Cart returns s with every call traced.
func (t *Tracing) Cart(service string, s cart.Service) cart.Service {
	return &cartCalls{t: t, next: s, m: methods(service, "Get", "Add", "Clear", "RemoveBought")}
}

type cartCalls struct {
	t    *Tracing
	next cart.Service
	m    []method // Get, Add, Clear, RemoveBought
}

func (c *cartCalls) Get(ctx context.Context, userID string) (cart.Cart, error) {
	ctx, call := c.t.start(ctx, &c.m[0])
	v, err := c.next.Get(ctx, userID)
	call.end(ctx, err)
	return v, err
}

func (c *cartCalls) Add(ctx context.Context, userID string, item cart.Item) (cart.Cart, error) {
	ctx, call := c.t.start(ctx, &c.m[1])
	v, err := c.next.Add(ctx, userID, item)
	call.end(ctx, err)
	return v, err
}

func (c *cartCalls) Clear(ctx context.Context, userID string) error {
	ctx, call := c.t.start(ctx, &c.m[2])
	err := c.next.Clear(ctx, userID)
	call.end(ctx, err)
	return err
}

func (c *cartCalls) RemoveBought(ctx context.Context, userID, orderID string, items []cart.Item) (cart.Cart, error) {
	ctx, call := c.t.start(ctx, &c.m[3])
	v, err := c.next.RemoveBought(ctx, userID, orderID, items)
	call.end(ctx, err)
	return v, err
}

// Inventory returns s with every call traced.
func (t *Tracing) Inventory(service string, s inventory.Service) inventory.Service {
	return &inventoryCalls{t: t, next: s, m: methods(service, "Get", "Add", "Reserve", "Commit", "Release", "ReleaseExpired")}
}

type inventoryCalls struct {
	t    *Tracing
	next inventory.Service
	m    []method // Get, Add, Reserve, Commit, Release, ReleaseExpired
}

func (c *inventoryCalls) Get(ctx context.Context, productID string) (inventory.Stock, error) {
	ctx, call := c.t.start(ctx, &c.m[0])
	v, err := c.next.Get(ctx, productID)
	call.end(ctx, err)
	return v, err
}

func (c *inventoryCalls) Add(ctx context.Context, productID string, n int64) (inventory.Stock, error) {
	ctx, call := c.t.start(ctx, &c.m[1])
	v, err := c.next.Add(ctx, productID, n)
	call.end(ctx, err)
	return v, err
}

func (c *inventoryCalls) Reserve(ctx context.Context, reservationID string, lines []inventory.Line) (inventory.Reservation, error) {
	ctx, call := c.t.start(ctx, &c.m[2])
	v, err := c.next.Reserve(ctx, reservationID, lines)
	call.end(ctx, err)
	return v, err
}

func (c *inventoryCalls) Commit(ctx context.Context, reservationID string) error {
	ctx, call := c.t.start(ctx, &c.m[3])
	err := c.next.Commit(ctx, reservationID)
	call.end(ctx, err)
	return err
}

func (c *inventoryCalls) Release(ctx context.Context, reservationID string) error {
	ctx, call := c.t.start(ctx, &c.m[4])
	err := c.next.Release(ctx, reservationID)
	call.end(ctx, err)
	return err
}

func (c *inventoryCalls) ReleaseExpired(ctx context.Context) (int, error) {
	ctx, call := c.t.start(ctx, &c.m[5])
	n, err := c.next.ReleaseExpired(ctx)
	call.end(ctx, err)
	return n, err
}

// Payments returns s with every call traced.
func (t *Tracing) Payments(service string, s payments.Service) payments.Service {
	return &paymentsCalls{t: t, next: s, m: methods(service, "Charge", "Refund", "Get")}
}

type paymentsCalls struct {
	t    *Tracing
	next payments.Service
	m    []method // Charge, Refund, Get
}

func (c *paymentsCalls) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	ctx, call := c.t.start(ctx, &c.m[0])
	v, err := c.next.Charge(ctx, req)
	call.end(ctx, err)
	return v, err
}

func (c *paymentsCalls) Refund(ctx context.Context, idempotencyKey string) (payments.Charge, error) {
	ctx, call := c.t.start(ctx, &c.m[1])
	v, err := c.next.Refund(ctx, idempotencyKey)
	call.end(ctx, err)
	return v, err
}

func (c *paymentsCalls) Get(ctx context.Context, idempotencyKey string) (payments.Charge, error) {
	ctx, call := c.t.start(ctx, &c.m[2])
	v, err := c.next.Get(ctx, idempotencyKey)
	call.end(ctx, err)
	return v, err
}

// Orders returns s with every call traced.
func (t *Tracing) Orders(service string, s orders.Service) orders.Service {
	return &ordersCalls{t: t, next: s, m: methods(service, "Checkout", "Get", "ListByUser", "MarkShipped")}
}

type ordersCalls struct {
	t    *Tracing
	next orders.Service
	m    []method // Checkout, Get, ListByUser, MarkShipped
}

func (c *ordersCalls) Checkout(ctx context.Context, idempotencyKey string, req orders.CheckoutRequest) (orders.Order, error) {
	ctx, call := c.t.start(ctx, &c.m[0])
	v, err := c.next.Checkout(ctx, idempotencyKey, req)
	call.end(ctx, err)
	return v, err
}

func (c *ordersCalls) Get(ctx context.Context, id string) (orders.Order, error) {
	ctx, call := c.t.start(ctx, &c.m[1])
	v, err := c.next.Get(ctx, id)
	call.end(ctx, err)
	return v, err
}

func (c *ordersCalls) ListByUser(ctx context.Context, req orders.ListRequest) (orders.Page, error) {
	ctx, call := c.t.start(ctx, &c.m[2])
	v, err := c.next.ListByUser(ctx, req)
	call.end(ctx, err)
	return v, err
}

func (c *ordersCalls) MarkShipped(ctx context.Context, orderID, trackingID string) (orders.Order, error) {
	ctx, call := c.t.start(ctx, &c.m[3])
	v, err := c.next.MarkShipped(ctx, orderID, trackingID)
	call.end(ctx, err)
	return v, err
}

// Shipping returns s with every call traced.
func (t *Tracing) Shipping(service string, s shipping.Service) shipping.Service {
	return &shippingCalls{t: t, next: s, m: methods(service, "Ship", "Get")}
}

type shippingCalls struct {
	t    *Tracing
	next shipping.Service
	m    []method // Ship, Get
}

func (c *shippingCalls) Ship(ctx context.Context, paid events.OrderPaid) (shipping.Shipment, error) {
	ctx, call := c.t.start(ctx, &c.m[0])
	v, err := c.next.Ship(ctx, paid)
	call.end(ctx, err)
	return v, err
}

func (c *shippingCalls) Get(ctx context.Context, orderID string) (shipping.Shipment, error) {
	ctx, call := c.t.start(ctx, &c.m[1])
	v, err := c.next.Get(ctx, orderID)
	call.end(ctx, err)
	return v, err
}

// Notify returns s with every call traced.
func (t *Tracing) Notify(service string, s notify.Service) notify.Service {
	return &notifyCalls{t: t, next: s, m: methods(service, "Notify", "List")}
}

type notifyCalls struct {
	t    *Tracing
	next notify.Service
	m    []method // Notify, List
}

func (c *notifyCalls) Notify(ctx context.Context, userID, kind, orderID string) (notify.Notification, error) {
	ctx, call := c.t.start(ctx, &c.m[0])
	v, err := c.next.Notify(ctx, userID, kind, orderID)
	call.end(ctx, err)
	return v, err
}

func (c *notifyCalls) List(ctx context.Context, req notify.ListRequest) (notify.Page, error) {
	ctx, call := c.t.start(ctx, &c.m[1])
	v, err := c.next.List(ctx, req)
	call.end(ctx, err)
	return v, err
}
