// Package catalog is the shop's product catalog: products, search, pagination, and the
// admin upsert. Reads, which dominate the shop's traffic, are served from an in-memory view
// kept current by a watch on the catalog's bucket, never from a store round trip.
package catalog

import (
	"context"
	"errors"

	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/paging"
)

// Buckets this context owns; no other context reads them.
const (
	ProductsBucket = "catalog_products" // the products
)

// Product is a thing the shop sells.
type Product struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Price       money.Money `json:"price"`
	WeightGrams int64       `json:"weight_grams"`
}

// ListRequest asks for one page of products, optionally filtered.
type ListRequest struct {
	Query     string // matches name or description, case-insensitive; "" matches all
	PageSize  int    // 1..MaxPageSize; 0 means DefaultPageSize
	PageToken string // "" for the first page, else a Page's NextPageToken
}

// Page is one page of products sorted by ID.
type Page struct {
	Products      []Product `json:"products"`
	NextPageToken string    `json:"next_page_token"` // "" on the last page
}

// Page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = paging.MaxSize
)

// ErrNotFound: no product has that ID.
var ErrNotFound = errors.New("catalog: product not found")

// Service is the catalog's port.
type Service interface {
	// Get returns the product with id, or ErrNotFound.
	Get(ctx context.Context, id string) (Product, error)
	// List returns a page of products; a bad page size or token is a validation error.
	List(ctx context.Context, req ListRequest) (Page, error)
	// Upsert creates or replaces a product; a bad product is a validation error. A Get or
	// List by the same caller afterwards sees it.
	Upsert(ctx context.Context, p Product) (Product, error)
}
