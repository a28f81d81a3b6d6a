// Package ids is the shop's one rule for identifiers. It checks the IDs callers give
// (products, users, orders: Valid and Check, applied by every context before any store or
// bus call) and makes the opaque, unguessable IDs of orders, shipments and notifications
// (New). Those sort by creation time (a millisecond prefix) so that logs and KV listings read
// in order, and carry 64 random bits so that replicas never collide.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// New returns prefix + "-" + 12 hex digits of milliseconds + 16 hex digits of randomness.
func New(prefix string, now time.Time) string {
	var b [14]byte
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on supported platforms
	// Written in one buffer (on the stack for prefixes up to 35 bytes, every one the shop
	// uses) and copied once into the string: a checkout makes three IDs, and the hex string
	// and the concatenation were an allocation each.
	var out [64]byte
	id := append(append(out[:0], prefix...), '-')
	return string(hex.AppendEncode(id, b[:]))
}
