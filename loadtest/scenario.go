package loadtest

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// Kind is one kind of request of the mix.
type Kind string

// The kinds of request, as API.md names the endpoints.
const (
	KindList     Kind = "list"     // GET /v1/products?page_size=20
	KindSearch   Kind = "search"   // GET /v1/products?q=<word>
	KindProduct  Kind = "product"  // GET /v1/products/{id}
	KindCartAdd  Kind = "cart-add" // POST /v1/carts/{user_id}/items
	KindCheckout Kind = "checkout" // POST /v1/checkout
)

// Kinds lists every kind in report order.
func Kinds() []Kind { return []Kind{KindList, KindSearch, KindProduct, KindCartAdd, KindCheckout} }

// Mix is the share of each kind of request (weights, any scale) and the share of checkouts
// that pay with a card the shop declines.
type Mix struct {
	List     float64 `json:"list"`
	Search   float64 `json:"search"`
	Product  float64 `json:"product"`
	CartAdd  float64 `json:"cart_add"`
	Checkout float64 `json:"checkout"`
	// Declined is the fraction of checkouts (0..1) paid with the declined test card: they
	// answer 402, which the report counts as an expected outcome, not an error.
	Declined float64 `json:"declined_share"`
}

// DefaultMix is mostly browsing, as in a shop: 75% reads of the catalog, 15% cart adds, 10%
// checkouts of which 5% are declined.
func DefaultMix() Mix {
	return Mix{List: 25, Search: 15, Product: 35, CartAdd: 15, Checkout: 10, Declined: 0.05}
}

func (m Mix) weights() []float64 {
	return []float64{m.List, m.Search, m.Product, m.CartAdd, m.Checkout}
}

// Validate rejects a mix with a negative weight, no weight at all or a declined share
// outside 0..1.
func (m Mix) Validate() error {
	sum := 0.0
	for i, w := range m.weights() {
		if w < 0 {
			return fmt.Errorf("mix: weight of %s is negative", Kinds()[i])
		}
		sum += w
	}
	if sum == 0 {
		return fmt.Errorf("mix: every weight is zero")
	}
	if m.Declined < 0 || m.Declined > 1 {
		return fmt.Errorf("mix: declined share %v is not in 0..1", m.Declined)
	}
	return nil
}

// Headers the Targeter sets for the Transport, which removes them before the request leaves
// and copies the kind onto the response, where vegeta's Result carries it.
const (
	headerKind     = "X-Loadtest-Kind"
	headerUser     = "X-Loadtest-User"
	headerDeclined = "X-Loadtest-Declined" // "1" on a checkout paid with the declined card
	headerAdd      = "X-Loadtest-Add"      // "<product> <quantity>" of a cart add
)

// maxCartLine keeps a cart line far below API.md's 99.
const maxCartLine = 20

// ScenarioConfig configures a Scenario.
type ScenarioConfig struct {
	BaseURL  string // http://127.0.0.1:8080
	Mix      Mix
	Users    int      // virtual users; default 500
	Products []string // product IDs to view and buy (the catalog's)
	Terms    []string // search words
	Prefix   string   // user IDs are <Prefix>-<n>; unique per run and architecture
	Seed     uint64   // of the mix's random choices
	// TraceShare is the share of requests, 0 to 1, sent with a W3C traceparent that asks for
	// the request to be traced; the others carry one that says not to. The stacks sample by
	// their parent, so the generator, like a front door, decides how much of its traffic is
	// traced, the same for every architecture, without restarting them. Negative: send no
	// traceparent and let each stack decide.
	TraceShare float64
}

// Scenario generates the mix for one architecture, statefully: each virtual user has its
// own user ID and cart; a checkout is only generated for a user whose cart add has come back
// 200 and who has no request in flight that changes its cart, so checkouts do not fail for
// the generator's sake in an open model where responses come back in any order. When no user
// can take the drawn kind, the next kind down the funnel is sent instead (checkout -> cart
// add -> product page) and counted as a substitution.
//
// Its Targeter and Transport are safe for concurrent use, as vegeta's workers need.
type Scenario struct {
	cfg     ScenarioConfig
	cum     []float64 // cumulative weights
	cardExp struct{ month, year int }

	mu      sync.Mutex
	rng     *rand.Rand
	users   []*vuser
	idle    []int // users with an empty cart and nothing in flight
	ready   []int // users with items and nothing in flight
	retired int
	next    int // suffix of the next new user

	sent          [5]atomic.Int64 // by Kind index
	substitutions atomic.Int64
	declinedSent  atomic.Int64
}

type vuser struct {
	id    string
	items int // units in the cart as far as the scenario knows
	line  map[string]int
	seq   int // checkouts tried: the Idempotency-Key's suffix
	busy  bool
}

// NewScenario returns a scenario over cfg.
func NewScenario(cfg ScenarioConfig) (*Scenario, error) {
	if err := cfg.Mix.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Products) == 0 {
		return nil, fmt.Errorf("scenario: no products")
	}
	if cfg.Users <= 0 {
		cfg.Users = 500
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "lt"
	}
	if len(cfg.Terms) == 0 {
		cfg.Terms = []string{"steel"}
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("scenario: base URL: %w", err)
	}
	s := &Scenario{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d69746f736973))}
	sum := 0.0
	for _, w := range cfg.Mix.weights() {
		sum += w
		s.cum = append(s.cum, sum)
	}
	// A card that expires at the end of next year: never expired during a run.
	s.cardExp.month, s.cardExp.year = 12, time.Now().Year()+1
	for range cfg.Users {
		s.idle = append(s.idle, s.newUser())
	}
	return s, nil
}

// newUser adds a user and returns its index; s.mu held or s not yet shared.
func (s *Scenario) newUser() int {
	s.next++
	s.users = append(s.users, &vuser{id: fmt.Sprintf("%s-%05d", s.cfg.Prefix, s.next), line: map[string]int{}})
	return len(s.users) - 1
}

// traceparent is a new W3C trace context, sampled or not. Its trace ID starts with the time
// in seconds, as AWS X-Ray's do, so a traced request can be sent on to X-Ray as it is.
func traceparent(sampled bool) string {
	var id [16]byte
	binary.BigEndian.PutUint32(id[:4], uint32(time.Now().Unix()))
	binary.BigEndian.PutUint32(id[4:8], rand.Uint32()) // math/rand/v2's global source: unseeded
	binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	var span [8]byte
	binary.BigEndian.PutUint64(span[:], rand.Uint64()|1) // never all zero
	flags := "00"
	if sampled {
		flags = "01"
	}
	return "00-" + hex.EncodeToString(id[:]) + "-" + hex.EncodeToString(span[:]) + "-" + flags
}

// Targeter returns the vegeta Targeter that generates the mix.
func (s *Scenario) Targeter() vegeta.Targeter {
	return func(t *vegeta.Target) error {
		s.fill(t)
		return nil
	}
}

func (s *Scenario) draw() Kind {
	x := s.rng.Float64() * s.cum[len(s.cum)-1]
	for i, c := range s.cum {
		if x < c {
			return Kinds()[i]
		}
	}
	return Kinds()[len(s.cum)-1]
}

// pick removes a random element of list and returns it.
func (s *Scenario) pick(list *[]int) int {
	l := *list
	i := s.rng.IntN(len(l))
	u := l[i]
	l[i] = l[len(l)-1]
	*list = l[:len(l)-1]
	return u
}

// fill writes the next request of the mix into t.
func (s *Scenario) fill(t *vegeta.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind := s.draw()
	if kind == KindCheckout && len(s.ready) == 0 {
		kind = KindCartAdd
		s.substitutions.Add(1)
	}
	if kind == KindCartAdd && len(s.idle)+len(s.ready) == 0 {
		kind = KindProduct
		s.substitutions.Add(1)
	}
	t.Header = http.Header{headerKind: {string(kind)}}
	if s.cfg.TraceShare >= 0 {
		t.Header.Set("traceparent", traceparent(s.rng.Float64() < s.cfg.TraceShare))
	}
	t.Body = nil
	base := s.cfg.BaseURL
	switch kind {
	case KindList:
		t.Method, t.URL = http.MethodGet, base+"/v1/products?page_size=20"
	case KindSearch:
		term := s.cfg.Terms[s.rng.IntN(len(s.cfg.Terms))]
		t.Method, t.URL = http.MethodGet, base+"/v1/products?q="+url.QueryEscape(term)
	case KindProduct:
		t.Method, t.URL = http.MethodGet, base+"/v1/products/"+url.PathEscape(s.product())
	case KindCartAdd:
		// Prefer a user with an empty cart, so that carts stay small.
		var ui int
		if len(s.idle) > 0 && (len(s.ready) == 0 || s.rng.IntN(4) > 0) {
			ui = s.pick(&s.idle)
		} else {
			ui = s.pick(&s.ready)
		}
		u := s.users[ui]
		u.busy = true
		product := s.product()
		for try := 0; u.line[product] >= maxCartLine && try < 2*len(s.cfg.Products); try++ {
			product = s.product() // a line never grows past maxCartLine
		}
		if u.line[product] >= maxCartLine {
			// Every line tried is full (only with a tiny catalog): a checkout will empty it.
			u.busy = false
			s.ready = append(s.ready, ui)
			t.Method, t.URL = http.MethodGet, base+"/v1/products/"+url.PathEscape(product)
			t.Header.Set(headerKind, string(KindProduct))
			s.substitutions.Add(1)
			s.sent[kindIndex(KindProduct)].Add(1)
			return
		}
		qty := 1 + s.rng.IntN(2)
		body, _ := json.Marshal(struct {
			ProductID string `json:"product_id"`
			Quantity  int    `json:"quantity"`
		}{product, qty}) // cannot fail: strings and ints
		t.Method, t.URL, t.Body = http.MethodPost, base+"/v1/carts/"+url.PathEscape(u.id)+"/items", body
		t.Header.Set("Content-Type", "application/json")
		t.Header.Set(headerUser, strconv.Itoa(ui))
		// The line the add will make, recorded now; undone if the add fails.
		u.line[product] += qty
		u.items += qty
		t.Header.Set(headerAdd, product+" "+strconv.Itoa(qty))
	case KindCheckout:
		ui := s.pick(&s.ready)
		u := s.users[ui]
		u.busy = true
		u.seq++
		card := apitest.CardApproved
		if s.rng.Float64() < s.cfg.Mix.Declined {
			card = apitest.CardDeclined
			t.Header.Set(headerDeclined, "1")
			s.declinedSent.Add(1)
		}
		req := apitest.CheckoutRequest{
			UserID:  u.id,
			Email:   u.id + "@example.com",
			Address: apitest.Address{Street: "1 Load Street", City: "Benchville", PostalCode: "12345", Country: "US"},
			Card:    apitest.Card{Number: card, ExpMonth: s.cardExp.month, ExpYear: s.cardExp.year, CVV: "123"},
		}
		body, _ := json.Marshal(req) // cannot fail: plain strings and ints
		t.Method, t.URL, t.Body = http.MethodPost, base+"/v1/checkout", body
		t.Header.Set("Content-Type", "application/json")
		t.Header.Set("Idempotency-Key", u.id+"."+strconv.Itoa(u.seq))
		t.Header.Set(headerUser, strconv.Itoa(ui))
	}
	s.sent[kindIndex(kind)].Add(1)
}

func (s *Scenario) product() string { return s.cfg.Products[s.rng.IntN(len(s.cfg.Products))] }

func kindIndex(k Kind) int {
	for i, x := range Kinds() {
		if x == k {
			return i
		}
	}
	return 0
}

// done records the outcome of a request that changes a user's cart: status is the HTTP
// status, 0 for a transport error.
func (s *Scenario) done(kind Kind, ui int, add string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ui < 0 || ui >= len(s.users) {
		return
	}
	u := s.users[ui]
	if !u.busy {
		return
	}
	u.busy = false
	ok := true
	switch kind {
	case KindCartAdd:
		switch {
		case status == http.StatusOK:
		case status >= 400 && status < 500 && status != http.StatusRequestTimeout:
			// Refused: nothing was added.
			product, qty, _ := strings.Cut(add, " ")
			n, _ := strconv.Atoi(qty)
			u.line[product] -= n
			u.items -= n
		default:
			ok = false // a timeout or a 5xx: the add may or may not have happened
		}
	case KindCheckout:
		switch status {
		case http.StatusCreated:
			u.items = 0
			clear(u.line)
		case http.StatusPaymentRequired, http.StatusConflict:
			// Declined or out of stock: all or nothing, so the cart is unchanged.
		default:
			ok = false // the order may or may not exist now
		}
	}
	if !ok {
		// The user's cart is unknown now: retire the user and bring in a fresh one, so
		// that no later request fails for the generator's doubt.
		s.retired++
		ui = s.newUser()
		u = s.users[ui]
	}
	if u.items > 0 {
		s.ready = append(s.ready, ui)
	} else {
		s.idle = append(s.idle, ui)
	}
}

// Sent is how many requests of each kind the scenario has generated.
func (s *Scenario) Sent() map[Kind]int64 {
	out := map[Kind]int64{}
	for i, k := range Kinds() {
		out[k] = s.sent[i].Load()
	}
	return out
}

// Substitutions counts draws that had to send another kind because no user could take the
// drawn one.
func (s *Scenario) Substitutions() int64 { return s.substitutions.Load() }

// DeclinedSent counts checkouts sent with the declined card.
func (s *Scenario) DeclinedSent() int64 { return s.declinedSent.Load() }

// Retired counts users replaced because a request left their cart unknown.
func (s *Scenario) Retired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retired
}

// Transport wraps next (nil: a fresh http.Transport) so that the scenario sees every
// response of a request that changes a cart, and vegeta's Result carries the request's
// kind in its headers (X-Loadtest-Kind, and X-Loadtest-Declined for a checkout with the
// declined card). The bookkeeping headers never leave the process.
func (s *Scenario) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &scenarioTransport{s: s, next: next}
}

type scenarioTransport struct {
	s    *Scenario
	next http.RoundTripper
}

func (t *scenarioTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := Kind(req.Header.Get(headerKind))
	ui := -1
	if v := req.Header.Get(headerUser); v != "" {
		ui, _ = strconv.Atoi(v)
	}
	add := req.Header.Get(headerAdd)
	declined := req.Header.Get(headerDeclined)
	out := req.Clone(req.Context())
	for k := range out.Header {
		if strings.HasPrefix(k, "X-Loadtest-") || strings.HasPrefix(k, "X-Vegeta-") {
			delete(out.Header, k)
		}
	}
	res, err := t.next.RoundTrip(out)
	status := 0
	if err == nil {
		status = res.StatusCode
		if kind != "" {
			res.Header.Set(headerKind, string(kind))
		}
		if declined != "" {
			res.Header.Set(headerDeclined, declined)
		}
	}
	if ui >= 0 {
		t.s.done(kind, ui, add, status)
	}
	return res, err
}

// Outcome classifies one result: ok, or the kind of error ("" when ok). A 402 on a
// checkout with the declined card is ok; so is a 402 on one with the good card, never.
func Outcome(r *vegeta.Result) (kind Kind, errKind string) {
	kind = KindOf(r)
	if r.Code == 0 {
		return kind, transportError(r.Error)
	}
	want := http.StatusOK
	switch kind {
	case KindCheckout:
		want = http.StatusCreated
		if r.Headers.Get(headerDeclined) != "" {
			want = http.StatusPaymentRequired
		}
	}
	if int(r.Code) == want {
		return kind, ""
	}
	return kind, "http " + strconv.Itoa(int(r.Code))
}

// KindOf is the kind of a result: from the header the Transport set, else from its method
// and URL (a request that failed before its response).
func KindOf(r *vegeta.Result) Kind {
	if k := r.Headers.Get(headerKind); k != "" {
		return Kind(k)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return KindList
	}
	switch {
	case r.Method == http.MethodPost && u.Path == "/v1/checkout":
		return KindCheckout
	case r.Method == http.MethodPost:
		return KindCartAdd
	case strings.HasPrefix(u.Path, "/v1/products/"):
		return KindProduct
	case u.Query().Has("q"):
		return KindSearch
	}
	return KindList
}

// transportError names a transport failure by kind, not by its message (which carries
// ports and addresses that differ on every run).
func transportError(msg string) string {
	switch {
	case msg == "":
		return "no response"
	case strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "timeout"):
		return "timeout"
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "connection reset"), strings.Contains(msg, "broken pipe"), strings.Contains(msg, "EOF"):
		return "connection reset"
	case strings.Contains(msg, "too many open files"):
		return "too many open files (generator)"
	case strings.Contains(msg, "cannot assign requested address"):
		return "no free local port (generator)"
	}
	return "transport error"
}
