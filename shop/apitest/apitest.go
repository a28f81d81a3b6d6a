// Package apitest is the behaviour suite every deployment of the shop runs: the monolith in
// process, the microservices behind their gateway, and both in containers. It speaks only
// HTTP to a base URL, as API.md describes it, and checks the contract to the letter: paths,
// statuses, the exact fields of every body, problem documents, and the behaviours listed at
// the end of API.md (all-or-nothing checkout, idempotency, no oversell, conservation of
// stock, asynchronous shipping and notifications).
//
// Tests are independent of each other and of whatever else the deployment holds: each makes
// its own products (unique IDs, through the admin API), stock and users, so the suite can
// run against a shop that is serving other traffic. Every loop is bounded and every wait for
// an asynchronous effect polls against a deadline.
//
// The Client it exports is also the vocabulary of other end-to-end tests (a restart test, a
// smoke test, the crash tests): NewProduct, AddStock, AddToCart, Checkout, WaitShipped,
// CheckConservation, CheckoutRetrying, CheckAfterCrash...
package apitest

import (
	"net/http"
	"testing"
)

// Target is a deployment to test.
type Target struct {
	BaseURL    string       // e.g. http://127.0.0.1:8080, no trailing slash needed
	AdminToken string       // the bearer token of the admin routes
	Client     *http.Client // nil means a client with a timeout
}

// Run runs the whole suite against target. The behaviours run in parallel with each other;
// Run returns once they all have, then checks that stock was conserved for every product the
// suite stocked.
func Run(t *testing.T, target Target) {
	c := NewClient(target)
	t.Run("behaviour", func(t *testing.T) {
		for _, tc := range tests() {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, c)
			})
		}
	})
	t.Run("conservation", func(t *testing.T) {
		c.CheckConservation(t)
	})
}

type test struct {
	name string
	run  func(t *testing.T, c *Client)
}

// tests is the suite, in the order of API.md.
func tests() []test {
	return []test{
		{"health", testHealth},
		{"openapi-document", testOpenAPIDocument},
		{"unknown-route", testUnknownRoute},
		{"trace-headers", testTraceHeaders},
		{"admin-unauthorized", testAdminUnauthorized},
		{"request-body-rules", testRequestBodyRules},
		{"body-over-1MiB", testBodyTooLarge},
		{"id-rule", testIDRule},

		{"product-get", testProductGet},
		{"product-put-replaces", testProductReplace},
		{"product-put-rejects-id", testProductPutRejectsID},
		{"product-list-paging", testProductListPaging},
		{"product-list-whole-catalog", testProductListWholeCatalog},
		{"product-search", testProductSearch},
		{"product-list-bad-query", testProductListBadQuery},

		{"cart-add-merge", testCartAddMerge},
		{"cart-line-over-99", testCartOver99},
		{"cart-unknown-product", testCartUnknownProduct},
		{"cart-delete", testCartDelete},
		{"cart-unknown-user", testCartUnknownUser},

		{"inventory", testInventory},

		{"checkout-happy-path", testCheckoutHappyPath},
		{"checkout-all-or-nothing", testCheckoutAllOrNothing},
		{"checkout-declined-cards", testCheckoutDeclined},
		{"checkout-luhn-invalid", testCheckoutLuhnInvalid},
		{"checkout-other-luhn-valid", testCheckoutOtherLuhnValid},
		{"checkout-bad-requests", testCheckoutBadRequests},
		{"idempotency-same-body", testIdempotencySameBody},
		{"idempotency-concurrent", testIdempotencyConcurrent},
		{"no-oversell", testNoOversell},

		{"order-unknown", testOrderUnknown},
		{"order-history-newest-first", testOrderHistory},
		{"order-history-paging", testOrderHistoryPaging},
		{"notifications-unknown-user", testNotificationsUnknownUser},
		{"notifications-paging", testNotificationsPaging},
	}
}
