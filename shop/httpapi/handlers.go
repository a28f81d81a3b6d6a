package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// statusOK is the body of /healthz and of a ready /readyz, as encoding/json writes it.
const statusOK = `{"status":"ok"}` + "\n"

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeStatusOK(w)
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(r.Context()); err != nil {
			a.log.LogAttrs(r.Context(), slog.LevelWarn, "not ready", slog.Any("err", err))
			a.writeProblem(w, newProblem(CodeUnavailable, "not ready: "+err.Error()))
			return
		}
	}
	writeStatusOK(w)
}

func writeStatusOK(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(statusOK)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(statusOK))
}

// listProducts serves the hot path of the shop; it parses the query by hand rather than
// through url.Values, which would allocate a map per request.
func (a *api) listProducts(w http.ResponseWriter, r *http.Request) {
	req, err := listRequest(r.URL.RawQuery)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page, err := a.cfg.Catalog.List(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if page.Products == nil {
		page.Products = []catalog.Product{}
	}
	a.writeJSON(w, http.StatusOK, &page)
}

// listRequest reads q, page_size and page_token.
func listRequest(rawQuery string) (catalog.ListRequest, error) {
	var req catalog.ListRequest
	var err error
	if req.Query, _, err = queryParam(rawQuery, "q"); err != nil {
		return req, err
	}
	req.PageSize, req.PageToken, err = pageParams(rawQuery)
	return req, err
}

// pageParams reads the page_size and page_token of every paged list. A page_size given must
// be an integer in 1..paging.MaxSize; an empty one, like an absent one, is 0: the list's
// default.
func pageParams(rawQuery string) (size int, token string, err error) {
	if token, _, err = queryParam(rawQuery, "page_token"); err != nil {
		return 0, "", err
	}
	s, _, err := queryParam(rawQuery, "page_size")
	if err != nil || s == "" {
		return 0, token, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > paging.MaxSize {
		return 0, "", validation.Errorf("page_size", "must be an integer from 1 to %d", paging.MaxSize)
	}
	return n, token, nil
}

// queryParam returns the first value of key in a raw query string, as url.Values.Get would,
// and whether key is present.
func queryParam(rawQuery, key string) (string, bool, error) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			var err error
			if k, err = url.QueryUnescape(k); err != nil {
				continue // a malformed parameter the API does not read
			}
		}
		if k != key {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return "", true, validation.Errorf(key, "malformed query escape")
			}
			v = u
		}
		return v, true, nil
	}
	return "", false, nil
}

func (a *api) getProduct(w http.ResponseWriter, r *http.Request) {
	p, err := a.cfg.Catalog.Get(r.Context(), pathParam(r, "id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, &p)
}

func (a *api) getCart(w http.ResponseWriter, r *http.Request) {
	c, err := a.cfg.Carts.Get(r.Context(), pathParam(r, "user_id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeCart(w, c)
}

// addToCart checks with the catalog that the product exists: the cart does not know the
// catalog. A product_id that is no ID at all goes straight to the cart, which names the
// field (API.md: 400 where a product ID is written, not 404).
func (a *api) addToCart(w http.ResponseWriter, r *http.Request) {
	var item cart.Item
	if err := a.decodeBody(r, a.schemas.cartItem, &item); err != nil {
		a.fail(w, r, err)
		return
	}
	if ids.Valid(item.ProductID) {
		if _, err := a.cfg.Catalog.Get(r.Context(), item.ProductID); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	c, err := a.cfg.Carts.Add(r.Context(), pathParam(r, "user_id"), item)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeCart(w, c)
}

func (a *api) writeCart(w http.ResponseWriter, c cart.Cart) {
	if c.Items == nil {
		c.Items = []cart.Item{}
	}
	a.writeJSON(w, http.StatusOK, &c)
}

func (a *api) clearCart(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Carts.Clear(r.Context(), pathParam(r, "user_id")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// MaxIdempotencyKey is the longest Idempotency-Key header accepted: the orders context's.
const MaxIdempotencyKey = orders.MaxKeyLen

func (a *api) checkout(w http.ResponseWriter, r *http.Request) {
	key, err := idempotencyKey(r.Header)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req orders.CheckoutRequest
	if err := a.decodeBody(r, a.schemas.checkout, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	o, err := a.cfg.Orders.Checkout(r.Context(), key, req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	normalizeOrder(&o)
	a.writeJSON(w, http.StatusCreated, &o)
}

// idempotencyKey returns the request's Idempotency-Key: exactly one, 1..64 printable ASCII
// characters.
func idempotencyKey(h http.Header) (string, error) {
	const field = "Idempotency-Key"
	values := h[field]
	switch {
	case len(values) == 0:
		return "", validation.Errorf(field, "header required")
	case len(values) > 1:
		return "", validation.Errorf(field, "header given more than once")
	}
	key := values[0]
	if len(key) < 1 || len(key) > MaxIdempotencyKey {
		return "", validation.Errorf(field, "must be 1 to %d characters", MaxIdempotencyKey)
	}
	for i := range len(key) {
		if key[i] < 0x20 || key[i] > 0x7e {
			return "", validation.Errorf(field, "must be printable ASCII characters")
		}
	}
	return key, nil
}

func (a *api) getOrder(w http.ResponseWriter, r *http.Request) {
	o, err := a.cfg.Orders.Get(r.Context(), pathParam(r, "id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	normalizeOrder(&o)
	a.writeJSON(w, http.StatusOK, &o)
}

func (a *api) listOrders(w http.ResponseWriter, r *http.Request) {
	size, token, err := pageParams(r.URL.RawQuery)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page, err := a.cfg.Orders.ListByUser(r.Context(), orders.ListRequest{UserID: pathParam(r, "user_id"), PageSize: size, PageToken: token})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if page.Orders == nil {
		page.Orders = []orders.Order{}
	}
	for i := range page.Orders {
		normalizeOrder(&page.Orders[i])
	}
	a.writeJSON(w, http.StatusOK, &page)
}

// normalizeOrder makes an order read as API.md shows it whatever the context or transport
// produced: items a list, never null, and created_at in UTC.
func normalizeOrder(o *orders.Order) {
	if o.Items == nil {
		o.Items = []orders.Item{}
	}
	o.CreatedAt = o.CreatedAt.UTC()
}

// getInventory answers 404 for a product the catalog does not know: the inventory counts
// any product ID it is given and would report all zeros.
func (a *api) getInventory(w http.ResponseWriter, r *http.Request) {
	id := pathParam(r, "product_id")
	if _, err := a.cfg.Catalog.Get(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.cfg.Inventory.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	s.ProductID = id
	a.writeJSON(w, http.StatusOK, &s)
}

func (a *api) listNotifications(w http.ResponseWriter, r *http.Request) {
	size, token, err := pageParams(r.URL.RawQuery)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page, err := a.cfg.Notifications.List(r.Context(), notify.ListRequest{UserID: pathParam(r, "user_id"), PageSize: size, PageToken: token})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if page.Notifications == nil {
		page.Notifications = []notify.Notification{}
	}
	for i := range page.Notifications {
		page.Notifications[i].CreatedAt = page.Notifications[i].CreatedAt.UTC()
	}
	a.writeJSON(w, http.StatusOK, &page)
}

// admin lets a request through to h only with the admin bearer token.
func (a *api) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			a.writeProblem(w, newProblem(CodeUnauthorized,
				"this route needs the header Authorization: Bearer <admin token>"))
			return
		}
		h(w, r)
	}
}

// authorized compares the bearer token with the admin token in constant time: both are
// hashed first, so that not even the token's length leaks through timing.
func (a *api) authorized(r *http.Request) bool {
	if a.cfg.AdminToken == "" {
		return false
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], a.adminHash[:]) == 1
}

func (a *api) putProduct(w http.ResponseWriter, r *http.Request) {
	var body productBody
	if err := a.decodeBody(r, a.schemas.product, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.cfg.Catalog.Upsert(r.Context(), catalog.Product{
		ID:          pathParam(r, "id"),
		Name:        body.Name,
		Description: body.Description,
		Price:       body.Price,
		WeightGrams: body.WeightGrams,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, &p)
}

// addStock checks the range of "add" itself, so that the problem names the API's field.
func (a *api) addStock(w http.ResponseWriter, r *http.Request) {
	var body stockBody
	if err := a.decodeBody(r, a.schemas.stock, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	if body.Add < 1 || body.Add > inventory.MaxAdd {
		a.fail(w, r, validation.Errorf("add", "must be an integer from 1 to %d", inventory.MaxAdd))
		return
	}
	id := pathParam(r, "product_id")
	if _, err := a.cfg.Catalog.Get(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.cfg.Inventory.Add(r.Context(), id, body.Add)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	s.ProductID = id
	a.writeJSON(w, http.StatusOK, &s)
}

// pathParam returns a path parameter unescaped. chi matches on the escaped path when it
// differs from the decoded one (an ID holding "%2F"), and then hands out escaped values.
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if r.URL.RawPath != "" {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
	}
	return v
}
