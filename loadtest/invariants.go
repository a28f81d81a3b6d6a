package loadtest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mitosis-dev/mitosis/platform/storeview"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// The invariants the shop must keep through any fault (API.md's "Behaviour every deployment
// must show"), checked after the faults phase through the public and admin API, and the
// charges, which the API does not show, through the stack's NATS, read only.

// Names of the invariant checks, in the order they run and are reported.
const (
	InvFinal         = "final answers"
	InvOrders        = "orders"
	InvReservations  = "reservations"
	InvStock         = "stock"
	InvNotifications = "notifications"
	InvCharges       = "charges"
)

// InvariantReport is what the checks of one architecture found.
type InvariantReport struct {
	Passed    bool             `json:"passed"` // every check held (a skipped one does not count against it)
	Checkouts CheckoutCounts   `json:"checkouts"`
	Checks    []InvariantCheck `json:"checks"`
	SettleS   float64          `json:"settle_s"` // how long the checks took, waits included
}

// CheckoutCounts sums up the checkouts of the phase and how they ended.
type CheckoutCounts struct {
	Sent       int `json:"sent"`
	Created    int `json:"created"`      // 201
	Declined   int `json:"declined"`     // 402
	OutOfStock int `json:"out_of_stock"` // 409 out-of-stock
	Unknown    int `json:"unknown"`      // no final answer: 5xx, a timeout, no connection
	Unexpected int `json:"unexpected"`   // any other answer (a broken contract)
	// Of the unknown, retried with their key once the phase was over:
	RetryCreated  int `json:"retry_created"`  // answered 201
	RetryExisting int `json:"retry_existing"` // of those, an order that existed before the retry (the checkout had gone through)
	RetryRefused  int `json:"retry_refused"`  // answered 402 or 409 out-of-stock
	// RetryLongestS is the longest a retried checkout took to get its final answer, from the
	// first retry (the shop's recovery of an interrupted checkout bounds it), and RetryLongest
	// names that checkout.
	RetryLongestS float64 `json:"retry_longest_s"`
	RetryLongest  string  `json:"retry_longest,omitempty"`
	Orders        int     `json:"orders"` // distinct orders the shop accepted: every 201's
	Users         int     `json:"users"`  // users who sent a checkout
}

// InvariantCheck is one invariant: whether it held, how it was checked and, when it broke,
// the evidence (order, product and user IDs with the counts found).
type InvariantCheck struct {
	Name     string   `json:"name"`
	How      string   `json:"how"`
	Passed   bool     `json:"passed"`
	Skipped  string   `json:"skipped,omitempty"` // why it could not be checked
	Checked  int      `json:"checked"`           // how many things it covered (orders, products...)
	TookS    float64  `json:"took_s"`            // how long it took, waiting for the stack included
	Evidence []string `json:"evidence,omitempty"`
	Omitted  int      `json:"evidence_omitted,omitempty"` // evidence lines beyond the first maxEvidence
}

// maxEvidence bounds the evidence kept per check: the first lines say what broke.
const maxEvidence = 50

func (c *InvariantCheck) fail(format string, args ...any) {
	if len(c.Evidence) >= maxEvidence {
		c.Omitted++
		return
	}
	c.Evidence = append(c.Evidence, fmt.Sprintf(format, args...))
}

func (c *InvariantCheck) done() { c.Passed = c.Skipped == "" && len(c.Evidence) == 0 && c.Omitted == 0 }

// invariantInput is what the checks know: the checkouts as the client saw them, the stock
// before the phase and what it added, when it began, where the NATS is.
type invariantInput struct {
	shop     Shop
	attempts []attempt
	products []string
	before   map[string]apitest.Stock
	added    map[string]int64
	since    time.Time // the phase's start: charges made since are its own
	natsURL  string
	natsTLS  nats.Option // nil: none
	settle   time.Duration
	progress io.Writer
}

// accepted is an order the shop answered 201 for.
type accepted struct {
	order apitest.Order
	key   string
	user  string
}

// checkInvariants runs every check in turn, each waiting as long as the stack needs to
// settle, all of them within in.settle.
func checkInvariants(ctx context.Context, in invariantInput) InvariantReport {
	start := time.Now()
	deadline := start.Add(in.settle)
	var rep InvariantReport
	users := map[string]bool{}
	for _, a := range in.attempts {
		users[a.User] = true
	}
	rep.Checkouts.Sent, rep.Checkouts.Users = len(in.attempts), len(users)

	last := start
	add := func(c InvariantCheck) {
		c.TookS = time.Since(last).Seconds()
		last = time.Now()
		rep.Checks = append(rep.Checks, c)
	}
	final, orders := checkFinal(ctx, in, deadline, &rep.Checkouts)
	rep.Checkouts.Orders = len(orders)
	add(final)
	ordersCheck, lost := checkOrders(ctx, in.shop, users, orders)
	add(ordersCheck)
	reservations, stocks := checkReservations(ctx, in, deadline)
	add(reservations)
	add(checkStock(in, stocks, orders))
	add(checkNotifications(ctx, in.shop, users, orders, lost, deadline))
	add(checkCharges(ctx, in, orders, deadline))
	rep.Passed = true
	for i := range rep.Checks {
		rep.Checks[i].done()
		if !rep.Checks[i].Passed && rep.Checks[i].Skipped == "" {
			rep.Passed = false
		}
	}
	rep.SettleS = time.Since(start).Seconds()
	return rep
}

// parallel runs f for each item, at most 8 at a time: the checks read one user or product
// per request, and the stack has just been through its faults.
func parallel[T any](items []T, f func(T)) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(it)
		})
	}
	wg.Wait()
}

// sleepUntil waits d or until deadline or ctx, whichever comes first; false when there is
// no time left.
func sleepUntil(ctx context.Context, d time.Duration, deadline time.Time) bool {
	if !time.Now().Add(d).Before(deadline) {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// checkFinal gives every checkout a final answer: a checkout that got none during the phase
// (a 5xx such as 503 unavailable, a timeout, a refused connection) is sent again with its
// Idempotency-Key and body, as API.md tells a client to, until it gets one (201, 402, or 409
// out-of-stock) or the deadline passes. Its order, if the shop had made one before, must be
// the one the retry returns: an order it made but the key no longer finds would be an order
// without a checkout, which checkOrders then shows. It returns the orders the shop accepted,
// by ID.
func checkFinal(ctx context.Context, in invariantInput, deadline time.Time, counts *CheckoutCounts) (InvariantCheck, map[string]accepted) {
	c := InvariantCheck{Name: InvFinal, Checked: len(in.attempts),
		How: "every checkout ends in 201, 402 or 409 out-of-stock; one without a final answer (5xx, timeout, no connection) is sent again with its Idempotency-Key and body until it gets one, and an order made before the retry must be the one the retry returns"}
	orders := map[string]accepted{}
	var unknown []attempt
	accept := func(a attempt, o apitest.Order) {
		if prev, ok := orders[o.ID]; ok && prev.key != a.Key {
			c.fail("order %s was answered to two checkouts: key %s (user %s) and key %s (user %s)", o.ID, prev.key, prev.user, a.Key, a.User)
			return
		}
		orders[o.ID] = accepted{order: o, key: a.Key, user: a.User}
	}
	for _, a := range in.attempts {
		switch {
		case a.Status == http.StatusCreated && a.Order != nil:
			counts.Created++
			accept(a, *a.Order)
		case a.Status == http.StatusPaymentRequired:
			counts.Declined++
		case a.Status == http.StatusConflict && a.Problem == "out-of-stock":
			counts.OutOfStock++
		case a.Status == 0 || a.Status >= 500 || a.Status == http.StatusCreated:
			counts.Unknown++ // a 201 whose order could not be read is retried for it
			unknown = append(unknown, a)
		default:
			counts.Unexpected++
			c.fail("checkout key %s of user %s answered %d %s during the phase", a.Key, a.User, a.Status, a.Problem)
		}
	}
	if len(unknown) == 0 {
		return c, orders
	}
	// The orders each such user had before any retry: to tell a checkout that went through
	// despite its 5xx from one that did not.
	existed := map[string]map[string]bool{}
	var mu sync.Mutex
	usersOf := map[string]bool{}
	for _, a := range unknown {
		usersOf[a.User] = true
	}
	if !in.shop.waitReady(ctx, deadline) {
		c.fail("the edge %s was not ready to retry %d checkouts without a final answer", in.shop.BaseURL, len(unknown))
		return c, orders
	}
	parallel(slices.Sorted(maps.Keys(usersOf)), func(u string) {
		list, err := in.shop.Orders(ctx, u)
		mu.Lock()
		defer mu.Unlock()
		existed[u] = map[string]bool{}
		if err != nil {
			c.fail("orders of user %s before the retries: %v", u, err)
			return
		}
		for _, o := range list {
			existed[u][o.ID] = true
		}
	})
	type outcome struct {
		status  int
		order   *apitest.Order
		problem string
		err     error
		tries   int
		took    time.Duration
	}
	results := make([]outcome, len(unknown))
	idx := make([]int, len(unknown))
	for i := range idx {
		idx[i] = i
	}
	parallel(idx, func(i int) {
		a := unknown[i]
		backoff := 250 * time.Millisecond
		first := time.Now()
		for {
			st, o, problem, err := in.shop.retryCheckout(ctx, a.Key, a.Body)
			results[i] = outcome{st, o, problem, err, results[i].tries + 1, time.Since(first)}
			if err == nil && st != 0 && st < 500 {
				return // final, or a broken contract that a retry will not mend
			}
			if !sleepUntil(ctx, backoff, deadline) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	})
	for i, a := range unknown {
		r := results[i]
		if s := r.took.Seconds(); s > counts.RetryLongestS {
			counts.RetryLongestS = s
			counts.RetryLongest = strings.TrimSpace(fmt.Sprintf("key %s of user %s, first answer %s, %d tries, then %d %s", a.Key, a.User, firstAnswer(a), r.tries, r.status, r.problem))
		}
		switch {
		case r.status == http.StatusCreated && r.order != nil:
			counts.RetryCreated++
			if existed[a.User][r.order.ID] {
				counts.RetryExisting++
			}
			accept(a, *r.order)
		case r.status == http.StatusPaymentRequired || (r.status == http.StatusConflict && r.problem == "out-of-stock"):
			counts.RetryRefused++
		case r.err != nil || r.status == 0 || r.status >= 500:
			c.fail("checkout key %s of user %s (first answer %s) has no final answer after %d retries: last %d %s %v",
				a.Key, a.User, firstAnswer(a), r.tries, r.status, r.problem, r.err)
		default:
			c.fail("checkout key %s of user %s (first answer %s), retried with the same key and body: %d %s",
				a.Key, a.User, firstAnswer(a), r.status, r.problem)
		}
	}
	return c, orders
}

func firstAnswer(a attempt) string {
	if a.Status == 0 {
		return "none: " + transportError(a.Err)
	}
	return fmt.Sprintf("%d %s", a.Status, a.Problem)
}

// waitReady polls the edge's /readyz until it answers or the deadline passes.
func (s Shop) waitReady(ctx context.Context, deadline time.Time) bool {
	for s.Ready(ctx) != nil {
		if !sleepUntil(ctx, 200*time.Millisecond, deadline) {
			return false
		}
	}
	return true
}

// checkOrders: every accepted order is one order, readable by its ID, of its user, for the
// total the 201 said, and each user's list holds exactly the orders accepted for them. lost
// are the accepted orders the shop does not know (404): the later checks do not wait for them
// to ship.
func checkOrders(ctx context.Context, shop Shop, users map[string]bool, orders map[string]accepted) (InvariantCheck, map[string]bool) {
	lost := map[string]bool{}
	c := InvariantCheck{Name: InvOrders, Checked: len(orders),
		How: "GET /v1/orders/{id} of every order a checkout got 201 (or its retry) for: found, the same user and total; GET /v1/users/{id}/orders of every user who sent a checkout: exactly those orders, no other"}
	byUser := map[string]map[string]bool{}
	for id, a := range orders {
		if byUser[a.user] == nil {
			byUser[a.user] = map[string]bool{}
		}
		byUser[a.user][id] = true
	}
	var mu sync.Mutex
	parallel(slices.Sorted(maps.Keys(orders)), func(id string) {
		a := orders[id]
		o, status, err := shop.Order(ctx, id)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			c.fail("order %s (key %s, user %s): %v", id, a.key, a.user, err)
		case status == http.StatusNotFound:
			lost[id] = true
			c.fail("order %s (key %s, user %s) was answered 201 but GET /v1/orders/%s is 404: the order is lost", id, a.key, a.user, id)
		case status != http.StatusOK:
			c.fail("order %s (key %s, user %s): GET answered %d", id, a.key, a.user, status)
		case o.UserID != a.user || o.Total != a.order.Total:
			c.fail("order %s (key %s) reads user %s total %d, the 201 said user %s total %d", id, a.key, o.UserID, o.Total.Units, a.user, a.order.Total.Units)
		}
	})
	parallel(slices.Sorted(maps.Keys(users)), func(u string) {
		list, err := shop.Orders(ctx, u)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			c.fail("orders of user %s: %v", u, err)
			return
		}
		seen := map[string]int{}
		for _, o := range list {
			seen[o.ID]++
			switch {
			case seen[o.ID] == 2:
				c.fail("user %s lists order %s twice", u, o.ID)
			case seen[o.ID] == 1 && !byUser[u][o.ID]:
				c.fail("user %s has order %s (total %d), which no checkout of theirs was answered 201 for", u, o.ID, o.Total.Units)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(byUser[u])) {
			if seen[id] == 0 {
				c.fail("order %s (key %s) was answered 201 but is not in user %s's orders (%d listed)", id, orders[id].key, u, len(list))
			}
		}
	})
	return c, lost
}

// checkReservations waits until no product has stock reserved: a checkout the faults
// interrupted is finished or undone by the saga's recovery, else its reservation expires.
// It returns the last stock read.
func checkReservations(ctx context.Context, in invariantInput, deadline time.Time) (InvariantCheck, map[string]apitest.Stock) {
	c := InvariantCheck{Name: InvReservations, Checked: len(in.products),
		How: "GET /v1/inventory/{id} of every product of the catalog, polled until none has units reserved (the saga's recovery finishes or undoes an interrupted checkout; a reservation left behind expires)"}
	if !in.shop.waitReady(ctx, deadline) {
		c.fail("the edge %s was not ready to read the stock", in.shop.BaseURL)
		return c, nil
	}
	for {
		stocks, err := in.shop.Stocks(ctx, in.products)
		if err != nil {
			c.fail("read the stock: %v", err)
			return c, nil
		}
		var held []string
		for _, id := range in.products {
			if st := stocks[id]; st.Reserved != 0 {
				held = append(held, fmt.Sprintf("product %s has %d units reserved (available %d, sold %d)", id, st.Reserved, st.Available, st.Sold))
			}
		}
		if len(held) == 0 {
			return c, stocks
		}
		if !sleepUntil(ctx, time.Second, deadline) {
			for _, h := range held {
				c.fail("%s after waiting until the deadline", h)
			}
			return c, stocks
		}
	}
}

// checkStock: for every product, available + reserved + sold is what there was before the
// phase plus what it added (everything ever added: the sum was that before, and only the
// phase added since), and the units sold during the phase are the units of the orders
// accepted.
func checkStock(in invariantInput, after map[string]apitest.Stock, orders map[string]accepted) InvariantCheck {
	c := InvariantCheck{Name: InvStock, Checked: len(in.products),
		How: "for every product: available + reserved + sold after the phase = the same sum before it + the units the phase added through the admin API; units sold during the phase = the units of the accepted orders"}
	if after == nil {
		c.Skipped = "the stock could not be read"
		return c
	}
	units := map[string]int64{}
	for _, a := range orders {
		for _, it := range a.order.Items {
			units[it.ProductID] += int64(it.Quantity)
		}
	}
	for _, id := range in.products {
		b, a := in.before[id], after[id]
		want := b.Available + b.Reserved + b.Sold + in.added[id]
		if got := a.Available + a.Reserved + a.Sold; got != want || a.Available < 0 || a.Reserved < 0 || a.Sold < 0 {
			c.fail("product %s: available %d + reserved %d + sold %d = %d, want %d (%d before the phase + %d added)",
				id, a.Available, a.Reserved, a.Sold, got, want, b.Available+b.Reserved+b.Sold, in.added[id])
		}
		if sold := a.Sold - b.Sold; sold != units[id] {
			c.fail("product %s: %d units sold during the phase, the accepted orders hold %d", id, sold, units[id])
		}
	}
	for id := range units {
		if _, ok := after[id]; !ok {
			c.fail("product %s is in accepted orders but not in the catalog", id)
		}
	}
	return c
}

// checkNotifications waits until every accepted order is shipped and notified, then checks
// that each has exactly one order-paid and one order-shipped notification, and that no
// notification names another order.
func checkNotifications(ctx context.Context, shop Shop, users map[string]bool, orders map[string]accepted, lost map[string]bool, deadline time.Time) InvariantCheck {
	c := InvariantCheck{Name: InvNotifications, Checked: len(orders),
		How: "GET /v1/orders/{id} polled until every accepted order is shipped, then GET /v1/users/{id}/notifications of every user who sent a checkout: exactly one order-paid and one order-shipped per accepted order, none for any other order"}
	userList := slices.Sorted(maps.Keys(users))
	type count struct{ paid, shipped, other int }
	var mu sync.Mutex
	var errs []string
	read := func() map[string]*count {
		counts := map[string]*count{}
		errs = nil
		parallel(userList, func(u string) {
			list, err := shop.Notifications(ctx, u)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("notifications of user %s: %v", u, err))
				return
			}
			for _, n := range list {
				k := counts[n.OrderID]
				if k == nil {
					k = &count{}
					counts[n.OrderID] = k
				}
				switch n.Kind {
				case apitest.KindOrderPaid:
					k.paid++
				case apitest.KindOrderShipped:
					k.shipped++
				default:
					k.other++
				}
				if a, ok := orders[n.OrderID]; ok && a.user != u {
					errs = append(errs, fmt.Sprintf("notification %s of order %s (user %s) went to user %s", n.ID, n.OrderID, a.user, u))
				}
			}
		})
		return counts
	}
	// Shipped: the order's event has been handled; poll the orders not yet seen shipped (a
	// lost order never will be: checkOrders reported it).
	pending := slices.DeleteFunc(slices.Sorted(maps.Keys(orders)), func(id string) bool { return lost[id] })
	for len(pending) > 0 {
		var still []string
		parallel(pending, func(id string) {
			o, status, err := shop.Order(ctx, id)
			if err != nil || status != http.StatusOK || o.Status != apitest.StatusShipped {
				mu.Lock()
				still = append(still, id)
				mu.Unlock()
			}
		})
		slices.Sort(still)
		pending = still
		if len(pending) > 0 && !sleepUntil(ctx, time.Second, deadline) {
			break
		}
	}
	for _, id := range pending {
		c.fail("order %s (user %s) is not shipped by the deadline", id, orders[id].user)
	}
	// Notified: both notifications of every order (notify handles the events apart from
	// shipping, so it may lag).
	var counts map[string]*count
	for {
		counts = read()
		missing := slices.ContainsFunc(slices.Collect(maps.Keys(orders)), func(id string) bool {
			k := counts[id]
			return !lost[id] && (k == nil || k.paid == 0 || (k.shipped == 0 && !slices.Contains(pending, id)))
		})
		if !missing || !sleepUntil(ctx, time.Second, deadline) {
			break
		}
	}
	for _, e := range errs {
		c.fail("%s", e)
	}
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		k := counts[id]
		if k == nil {
			k = &count{}
		}
		wantShipped := 1
		if slices.Contains(pending, id) || lost[id] {
			wantShipped = k.shipped // not shipped: its shipped notification is not due
		}
		if k.paid != 1 || k.shipped != wantShipped || k.shipped > 1 || k.other != 0 {
			c.fail("order %s (user %s): %d order-paid, %d order-shipped, %d other notifications; want 1 and 1", id, orders[id].user, k.paid, k.shipped, k.other)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		if _, ok := orders[id]; !ok {
			k := counts[id]
			c.fail("notifications of order %s, which no checkout was answered 201 for: %d order-paid, %d order-shipped", id, k.paid, k.shipped)
		}
	}
	return c
}

// checkCharges reads the payments context's charges made since the phase began, through the
// stack's NATS (read only: the API shows no charges), and waits until every accepted order
// has exactly one captured charge of its total and no captured charge is left without an
// accepted order (an interrupted checkout's charge is refunded by the saga's recovery).
// Payments keys a charge by the order's ID, so one charge per order is also one per
// checkout once checkOrders found one order per checkout.
func checkCharges(ctx context.Context, in invariantInput, orders map[string]accepted, deadline time.Time) InvariantCheck {
	c := InvariantCheck{Name: InvCharges, Checked: len(orders),
		How: "the payments context's charges since the phase began, read through the stack's NATS (read only, platform/storeview): every accepted order has one captured charge of its total (payments keys a charge by the order's ID), and no captured charge has no accepted order"}
	if in.natsURL == "" {
		c.Skipped = "no NATS of this architecture is reachable (an embedded one, or the runtime did not say where): with one order per checkout (checked above) and a charge keyed by its order, a checkout cannot have been charged twice, but a charge left without an order is not seen"
		return c
	}
	var opts []nats.Option
	if in.natsTLS != nil {
		opts = append(opts, in.natsTLS)
	}
	js, closeConn, err := storeview.Connect(in.natsURL, opts...)
	if err != nil {
		c.Skipped = "NATS not reachable: " + err.Error()
		return c
	}
	defer closeConn()
	// Only a captured charge without an order may still change (the saga's recovery refunds
	// it); what an accepted order's charge is does not, the charge preceding the order.
	var problems []string
	for {
		charges, err := storeview.Charges(ctx, js, in.since.Add(-time.Second))
		transient := 0
		if err != nil {
			problems, transient = []string{"read the charges: " + err.Error()}, 1
		} else {
			problems, transient = compareCharges(charges, orders)
		}
		if transient == 0 || !sleepUntil(ctx, time.Second, deadline) {
			break
		}
	}
	for _, p := range problems {
		c.fail("%s", p)
	}
	return c
}

// compareCharges lists what is wrong with the charges, and how many of those problems are
// captured charges without an order, which the saga's recovery may yet refund.
func compareCharges(charges []payments.Charge, orders map[string]accepted) (out []string, transient int) {
	byKey := map[string][]payments.Charge{}
	for _, ch := range charges {
		byKey[ch.IdempotencyKey] = append(byKey[ch.IdempotencyKey], ch)
	}
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		o := orders[id]
		chs := byKey[id]
		switch {
		case len(chs) == 0:
			out = append(out, fmt.Sprintf("order %s (user %s, total %d) has no charge", id, o.user, o.order.Total.Units))
		case len(chs) > 1:
			out = append(out, fmt.Sprintf("order %s has %d charge records", id, len(chs)))
		case chs[0].Status != payments.StatusCaptured:
			out = append(out, fmt.Sprintf("order %s's charge %s is %s, not captured", id, chs[0].ID, chs[0].Status))
		case chs[0].Amount.Units != o.order.Total.Units || chs[0].Amount.Currency != o.order.Total.Currency:
			out = append(out, fmt.Sprintf("order %s charged %d %s, its total is %d %s", id, chs[0].Amount.Units, chs[0].Amount.Currency, o.order.Total.Units, o.order.Total.Currency))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		if _, ok := orders[key]; ok {
			continue
		}
		for _, ch := range byKey[key] {
			if ch.Status == payments.StatusCaptured {
				transient++
				out = append(out, fmt.Sprintf("charge %s of %d under key %s is captured, and no checkout was answered 201 for an order %s", ch.ID, ch.Amount.Units, key, key))
			}
		}
	}
	return out, transient
}

// summary is one line per check, for logs and tests.
func (r InvariantReport) summary() string {
	var b strings.Builder
	for _, c := range r.Checks {
		state := "held"
		switch {
		case c.Skipped != "":
			state = "skipped: " + c.Skipped
		case !c.Passed:
			state = "BROKEN: " + strings.Join(c.Evidence, "; ")
		}
		fmt.Fprintf(&b, "%s (%d, %.1f s): %s\n", c.Name, c.Checked, c.TookS, state)
	}
	return b.String()
}
