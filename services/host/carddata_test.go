package host_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// No bucket or stream holds a card: after an approved and a declined checkout (whose records
// are kept for the retention), and their events, no stored message holds the card's number,
// its first twelve digits, its CVV beside it, nor the plain SHA-256 of the request a replay
// is compared by (16 digits and a CVV are few enough to try them all against one): what
// orders keeps is an HMAC under a secret key.
func TestNoStoreHoldsACard(t *testing.T) {
	ns := hosttest.StartNATS(t)
	h := hosttest.Start(t, "edge+catalog+cart+inventory+payments+orders+shipping+notify", map[string]string{"SHOP_NATS_URL": ns.URL()})
	c := apitest.NewClient(apitest.Target{BaseURL: h.BaseURL, AdminToken: hosttest.Token})
	p := c.NewProduct(t, 1500, 200)
	c.AddStock(t, p.ID, 10)

	const approved, declined, cvv = "5555555555554444", "4000000000000002", "987"
	user := apitest.NewID("u")
	c.AddToCart(t, user, p.ID, 1)
	req := apitest.NewCheckout(user, approved)
	req.Card.CVV = cvv
	key := apitest.NewID("k")
	o := c.Checkout(t, key, req)
	c.WaitShipped(t, o.ID)
	c.WaitNotifications(t, user, o.ID, apitest.KindOrderPaid, apitest.KindOrderShipped)

	other := apitest.NewID("u")
	c.AddToCart(t, other, p.ID, 1)
	decl := apitest.NewCheckout(other, declined)
	decl.Card.CVV = cvv
	r, err := c.CheckoutResponse(t.Context(), apitest.NewID("k"), decl)
	if err != nil || r.Status != 402 {
		t.Fatalf("the declined checkout: %v %v", r, err)
	}

	// The plain hash a replay would be compared by, were it not keyed.
	plain, err := json.Marshal(orders.CheckoutRequest{UserID: req.UserID, Email: req.Email,
		Address: orders.Address{Street: req.Address.Street, City: req.Address.City, PostalCode: req.Address.PostalCode, Country: req.Address.Country},
		Card:    payments.Card{Number: req.Card.Number, ExpMonth: req.Card.ExpMonth, ExpYear: req.Card.ExpYear, CVV: req.Card.CVV}})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(plain)
	forbidden := map[string]string{
		"the approved card's number":       approved,
		"the declined card's number":       declined,
		"the approved card's first digits": approved[:12],
		"the declined card's first digits": declined[:12],
		"the plain hash of the request":    hex.EncodeToString(sum[:]),
		"the number and the CVV, as JSON":  `"cvv":"` + cvv + `"`,
	}

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams, messages := 0, 0
	for name := range js.StreamNames(t.Context()).Name() {
		streams++
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		info := s.CachedInfo()
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(t.Context(), seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // deleted or replaced
			}
			if err != nil {
				t.Fatalf("%s #%d: %v", name, seq, err)
			}
			messages++
			var text strings.Builder
			text.WriteString(m.Subject)
			text.Write(m.Data)
			for k, vs := range m.Header {
				text.WriteString(k + strings.Join(vs, ""))
			}
			for what, s := range forbidden {
				if strings.Contains(text.String(), s) {
					t.Errorf("%s #%d (%s) holds %s: %s", name, seq, m.Subject, what, text.String())
				}
			}
		}
	}
	if streams < 5 || messages < 10 {
		t.Fatalf("searched %d streams and %d messages: not the shop's", streams, messages)
	}
	t.Logf("searched %d messages in %d streams", messages, streams)
}
