package stepfunctions_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	sf "github.com/mitosis-dev/mitosis/platform/stepfunctions"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/services/host/lambdatest"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/logtest"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/orders/sagatest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// The rendered machine runs, in the interpreter, against the real functions: the binary of
// the image they are rendered with (the monolith's, built as its image has it), run as
// mitosis-checkout-<context> (SHOP_GROUP=<context>) behind a fake Lambda Runtime API, each over a real JetStream
// with the real contexts. A checkout with a good card is paid end to end (the order
// recorded, the stock sold, the charge captured, the cart emptied); one with a declined card
// is compensated exactly as orders compensates it (sagatest), and leaves the stock as it
// was. The card goes to payments through HoldCard, never into the execution's data, and no
// function logs it.
func TestMachineRunsTheRealFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the monolith's binary and runs it as five functions")
	}
	ns := hosttest.StartNATS(t)
	const cardKey = "functions-test-card-key"
	var logs logtest.Buffer
	fns := map[string]*lambdatest.Lambda{}
	bin := stacktest.ImageBinary(t, filepath.Join("..", ".."), bounded.Everything().Name())
	for _, c := range checkoutstep.Contexts() {
		fn, err := lambdatest.Start(sf.TaskTimeout * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fn.Close() })
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), host.LambdaRuntimeEnv+"="+fn.RuntimeAPI(), "SHOP_GROUP="+c,
			checkoutstep.RoleEnv+"="+checkoutstep.Role, "SHOP_NATS_URL="+ns.URL(), checkoutstep.CardKeyEnv+"="+cardKey,
			"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		fns[sf.FunctionName(c)] = fn
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the functions' logs:\n%s", logs.String())
		}
	})

	w := openWorld(t, ns.URL())
	def, err := sf.Render("us-east-1", "123456789012")
	if err != nil {
		t.Fatal(err)
	}
	var payloads logtest.Buffer // every payload the machine sent: what its history would keep
	sent := map[string][]byte{} // the last payload of each state
	invoke := func(inv sf.TaskInvocation, payload map[string]any) (any, *sf.TaskError) {
		name := inv.Function[strings.LastIndex(inv.Function, ":")+1:]
		fn, ok := fns[name]
		if !ok {
			return nil, &sf.TaskError{Name: "Lambda.ResourceNotFoundException", Cause: "no function " + inv.Function}
		}
		raw, err := json.Marshal(payload)
		if err != nil {
			return nil, &sf.TaskError{Name: "States.Runtime", Cause: err.Error()}
		}
		_, _ = payloads.Write(raw)
		sent[inv.State] = raw
		out, err := fn.Invoke(t.Context(), raw)
		var fe *lambdatest.FunctionError
		switch {
		case errors.As(err, &fe):
			return nil, &sf.TaskError{Name: fe.Type, Cause: fe.Message}
		case err != nil:
			return nil, &sf.TaskError{Name: "States.Timeout", Cause: err.Error()}
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			return nil, &sf.TaskError{Name: "States.Runtime", Cause: "the answer is not JSON: " + err.Error()}
		}
		return v, nil
	}
	holdCard := func(orderID string, number string) {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"call": checkoutstep.HoldCard, "order_id": orderID,
			"card": payments.Card{Number: number, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVV: "123"}})
		if _, err := fns[sf.FunctionName("payments")].Invoke(t.Context(), raw); err != nil {
			t.Fatalf("hold the card: %v", err)
		}
	}

	// The catalog function prices from its view of the catalog, which follows the bucket a
	// moment behind the test's writes: wait until it prices p (a read: Price changes nothing).
	product := func(t *testing.T, cents, stock int64) string {
		t.Helper()
		p := w.product(t, cents, stock)
		raw, _ := json.Marshal(map[string]any{"call": "catalog.Get", "checkout": map[string]any{
			"order_id": "ord-probe", "user_id": "u-probe", "email": "probe@example.com",
			"address": input("", "")["address"],
			"results": map[string]any{"ReadCart": map[string]any{"value": orders.CartRead{Lines: []cart.Item{{ProductID: p, Quantity: 1}}}}},
		}})
		for deadline := time.Now().Add(10 * time.Second); ; {
			_, err := fns[sf.FunctionName("catalog")].Invoke(t.Context(), raw)
			if err == nil {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("the catalog function does not price %s: %v", p, err)
			}
			time.Sleep(20 * time.Millisecond) // polling: the view has no signal to wait on
		}
	}

	t.Run("paid", func(t *testing.T) {
		p := product(t, 1250, 10)
		user := w.cartOf(t, p, 3)
		orderID := ids.New("ord", time.Now())
		holdCard(orderID, orderstest.CardApproved)
		ex, err := sf.Run(def, input(orderID, user), invoke)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Status != "SUCCEEDED" || ex.End != sf.Paid {
			t.Fatalf("the execution ended %s in %s (%s), want SUCCEEDED in %s", ex.Status, ex.End, ex.Error, sf.Paid)
		}
		var want []string
		for _, s := range orders.Steps() {
			want = append(want, s.Call.String())
		}
		if got := callsOf(ex); !slices.Equal(got, want) {
			t.Errorf("called %v, want every step once: %v", got, want)
		}
		ord, err := w.orders.Get(t.Context(), orderID)
		if err != nil {
			t.Fatalf("the order: %v", err)
		}
		total := money.Cents(3 * 1250).Add(ord.Shipping)
		if ord.UserID != user || ord.Status != orders.StatusPaid || len(ord.Items) != 1 || ord.Items[0].Quantity != 3 || ord.Total != total {
			t.Errorf("order %+v, want 3 of %s for %s, total %v, paid", ord, p, user, total)
		}
		if st := w.stock(t, p); st != (inventory.Stock{ProductID: p, Available: 7, Reserved: 0, Sold: 3}) {
			t.Errorf("stock %+v, want 7 available and 3 sold", st)
		}
		if ch, err := w.pay.Get(t.Context(), orderID); err != nil || ch.Status != payments.StatusCaptured || ch.Amount != total {
			t.Errorf("charge %+v, %v: want %v captured", ch, err, total)
		}
		if c, err := w.carts.Get(t.Context(), user); err != nil || len(c.Items) != 0 {
			t.Errorf("cart %+v, %v: want empty", c, err)
		}
		if _, err := w.holds.Card(t.Context(), orderID); !errors.Is(err, payments.ErrNoCard) {
			t.Errorf("the card is still held after the charge: %v", err)
		}
		// Every call past the reads repeated, as Lambda's and the machine's retries repeat
		// them: nothing is charged, sold, recorded or removed twice.
		for _, step := range []string{"Charge", "Commit", "AddToHistory", "RecordOrder", "RemoveBought", "PublishOrderPaid"} {
			var sentCall struct{ Call string }
			if err := json.Unmarshal(sent[step], &sentCall); err != nil {
				t.Fatalf("%s's payload: %v", step, err)
			}
			c, _, _ := strings.Cut(sentCall.Call, ".")
			if _, err := fns[sf.FunctionName(c)].Invoke(t.Context(), sent[step]); err != nil {
				t.Errorf("%s repeated: %v", step, err)
			}
		}
		if st := w.stock(t, p); st.Sold != 3 || st.Available != 7 {
			t.Errorf("stock after the repeats %+v, want 7 available and 3 sold", st)
		}
		if ch, err := w.pay.Get(t.Context(), orderID); err != nil || ch.Status != payments.StatusCaptured || ch.Amount != total {
			t.Errorf("charge after the repeats %+v, %v: want %v captured", ch, err, total)
		}
		if page, err := w.orders.ListByUser(t.Context(), orders.ListRequest{UserID: user}); err != nil || len(page.Orders) != 1 || page.Orders[0].ID != orderID {
			t.Errorf("history after the repeats: %+v, %v; want the one order", page, err)
		}
	})

	t.Run("declined", func(t *testing.T) {
		p := product(t, 990, 5)
		user := w.cartOf(t, p, 2)
		orderID := ids.New("ord", time.Now())
		holdCard(orderID, orderstest.CardDeclined)
		ex, err := sf.Run(def, input(orderID, user), invoke)
		if err != nil {
			t.Fatal(err)
		}
		var c sagatest.Case
		for _, k := range sagatest.Cases() {
			if k.Step == "Charge" && k.Name == "payments.ErrDeclined" {
				c = k
			}
		}
		want := sf.Calls(sagatest.Run(t, c).Compensations())
		if got := ex.AfterCatch(); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("after the decline the machine called %v, orders %v", got, want)
		}
		if ex.End != sf.Failed || ex.Error != "payments.ErrDeclined" {
			t.Errorf("the execution ended in %s with %q, want %s with payments.ErrDeclined", ex.End, ex.Error, sf.Failed)
		}
		if st := w.stock(t, p); st != (inventory.Stock{ProductID: p, Available: 5}) {
			t.Errorf("stock %+v, want the reservation released: 5 available", st)
		}
		if _, err := w.orders.Get(t.Context(), orderID); !errors.Is(err, orders.ErrNotFound) {
			t.Errorf("an order was recorded for a declined card: %v", err)
		}
		if c, err := w.carts.Get(t.Context(), user); err != nil || len(c.Items) != 1 {
			t.Errorf("cart %+v, %v: want it as it was", c, err)
		}
		if _, err := w.holds.Card(t.Context(), orderID); !errors.Is(err, payments.ErrNoCard) {
			t.Errorf("the declined card is still held: %v", err)
		}
	})

	t.Run("no card held", func(t *testing.T) {
		p := product(t, 500, 4)
		user := w.cartOf(t, p, 1)
		ex, err := sf.Run(def, input(ids.New("ord", time.Now()), user), invoke)
		if err != nil {
			t.Fatal(err)
		}
		// Not the domain's decline: the charge is voided and the stock released.
		if got, want := ex.AfterCatch(), []string{"payments.Refund", "inventory.Release"}; !slices.Equal(got, want) || ex.Error != "payments.ErrNoCard" {
			t.Errorf("without a card: called %v after the failure and failed with %q, want %v and payments.ErrNoCard", got, ex.Error, want)
		}
		if st := w.stock(t, p); st.Available != 4 || st.Reserved != 0 {
			t.Errorf("stock %+v, want 4 available", st)
		}
	})

	for _, number := range []string{orderstest.CardApproved, orderstest.CardDeclined} {
		if strings.Contains(payloads.String(), number) {
			t.Errorf("a card number reached an execution's data")
		}
		if strings.Contains(logs.String(), number) {
			t.Errorf("a card number reached the functions' logs")
		}
	}
}

// input is an execution's input: the order ID, who orders, where to; no card.
func input(orderID, user string) map[string]any {
	return map[string]any{"order_id": orderID, "user_id": user, "email": user + "@example.com",
		"address": map[string]any{"street": "1 Loop Rd", "city": "Springfield", "postal_code": "12345", "country": "US"}}
}

func callsOf(ex sf.Execution_) []string {
	var out []string
	for _, inv := range ex.Invocations {
		out = append(out, inv.Call)
	}
	return out
}

// world is the test's own view of the contexts, over the functions' store.
type world struct {
	catalog catalog.Service
	carts   cart.Service
	inv     inventory.Service
	pay     payments.Service
	holds   *payments.Holds
	orders  *orders.Orders
}

func openWorld(t *testing.T, url string) *world {
	t.Helper()
	js := natsjstest.Connect(t, url)
	open := func(name string) *natsjs.Bucket {
		b, err := natsjs.OpenBucket(t.Context(), js, natsjs.StoreConfig{}, name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.New(t.Context(), open(catalog.ProductsBucket), log)
	if err != nil {
		t.Fatal(err)
	}
	holds, err := payments.NewHolds(open(payments.CardsBucket), []byte("functions-test-card-key"))
	if err != nil {
		t.Fatal(err)
	}
	return &world{
		catalog: cat,
		carts:   cart.New(open(cart.CartsBucket)),
		inv:     inventory.New(open(inventory.StockBucket), open(inventory.ReservationsBucket), time.Now, inventory.DefaultReservationTTL),
		pay:     payments.New(open(payments.ChargesBucket), time.Now),
		holds:   holds,
		orders: orders.New(orders.Stores{Orders: open(orders.OrdersBucket), Sagas: open(orders.SagasBucket), UserOrders: open(orders.UserOrdersBucket)},
			orders.Deps{Events: events.NewMemory(log), Logger: log}),
	}
}

// product makes a product of price cents with stock units, and returns its ID.
func (w *world) product(t *testing.T, cents int64, stock int64) string {
	t.Helper()
	p, err := w.catalog.Upsert(t.Context(), catalog.Product{ID: ids.New("sku", time.Now()), Name: "Lamp", Description: "a lamp",
		Price: money.Cents(cents), WeightGrams: 800})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.inv.Add(t.Context(), p.ID, stock); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

// cartOf fills a new user's cart with n of product p, and returns the user.
func (w *world) cartOf(t *testing.T, p string, n int) string {
	t.Helper()
	user := ids.New("u", time.Now())
	if _, err := w.carts.Add(t.Context(), user, cart.Item{ProductID: p, Quantity: n}); err != nil {
		t.Fatal(err)
	}
	return user
}

func (w *world) stock(t *testing.T, p string) inventory.Stock {
	t.Helper()
	st, err := w.inv.Get(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
