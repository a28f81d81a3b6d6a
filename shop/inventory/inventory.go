// Package inventory counts stock per product (available, reserved, sold) and reserves whole
// orders all or nothing. Invariant, at every quiet moment: available + reserved + sold equals
// everything ever added, and no count is ever below zero, whatever the concurrency.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Buckets this context owns; no other context reads them.
const (
	StockBucket        = "inventory_stock"        // one stock record per product
	ReservationsBucket = "inventory_reservations" // one record per reservation
)

// Stock is a product's counts.
type Stock struct {
	ProductID string `json:"product_id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
}

// Line is a quantity of one product to reserve.
type Line struct {
	ProductID string
	Quantity  int64
}

// Reservation holds stock for an order until it is committed (sold) or released.
type Reservation struct {
	ID        string
	Lines     []Line
	ExpiresAt time.Time
}

// Limits on a single call.
const (
	MaxAdd = 1_000_000 // units one Add makes available
	// MaxLines is the most lines one reservation holds, and so the most an order can buy:
	// it keeps a reservation record well under JetStream's 1 MiB value limit.
	MaxLines = 1000
)

var (
	// ErrOutOfStock: some product has less available than asked; see *OutOfStockError.
	ErrOutOfStock = errors.New("inventory: out of stock")
	// ErrReservationNotFound: no live reservation has that ID (never made, released or expired).
	ErrReservationNotFound = errors.New("inventory: reservation not found")
)

// OutOfStockError names the product that ran out. errors.Is(err, ErrOutOfStock) holds.
type OutOfStockError struct {
	ProductID string
	Requested int64
	Available int64
}

func (e *OutOfStockError) Error() string {
	return fmt.Sprintf("product %s is out of stock: %d requested, %d available", e.ProductID, e.Requested, e.Available)
}

// Is makes errors.Is(err, ErrOutOfStock) true.
func (e *OutOfStockError) Is(target error) bool { return target == ErrOutOfStock }

// Service is the inventory's port.
type Service interface {
	// Get returns a product's stock; all zeros for a product never stocked.
	Get(ctx context.Context, productID string) (Stock, error)
	// Add makes n (1..MaxAdd) more units available.
	Add(ctx context.Context, productID string, n int64) (Stock, error)
	// Reserve holds every line (1..MaxLines of them) or none (an *OutOfStockError for the
	// first short product).
	// Reserving an ID again returns the existing reservation: retries are safe.
	Reserve(ctx context.Context, reservationID string, lines []Line) (Reservation, error)
	// Commit turns a reservation's units from reserved into sold: they are sold when it
	// returns. Committing again is a no-op; committing a released or expired reservation,
	// or one no Reserve has finished making, is ErrReservationNotFound.
	Commit(ctx context.Context, reservationID string) error
	// Release returns a reservation's units to available. Releasing a released or committed
	// reservation is a no-op. Releasing an unknown one leaves it released: the units a Reserve
	// of its ID that never finished took are available again within a sweep or two
	// (SweepEvery), and a Reserve of it after that makes it anew.
	Release(ctx context.Context, reservationID string) error
	// ReleaseExpired releases every reservation past its expiry and returns how many.
	ReleaseExpired(ctx context.Context) (int, error)
}
