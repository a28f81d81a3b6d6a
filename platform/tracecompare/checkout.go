package tracecompare

// Span names of a checkout, the same in both architectures (checkouttrace checks a trace
// holds them, where they belong).
const (
	CheckoutRoot     = "POST /v1/checkout"
	OrderPaidPublish = "publish shop.events.order-paid"
	OrderPaidProcess = "process shop.events.order-paid"
	ShippedPublish   = "publish shop.events.order-shipped"
	ShippedProcess   = "process shop.events.order-shipped"
)
