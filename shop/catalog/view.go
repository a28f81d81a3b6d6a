//go:build !mitosis_group || mitosis_catalog

// Part of the implementation: only the binaries that run catalog link it (bounded.Group.BuildTags).

package catalog

import (
	"cmp"
	"slices"
	"strings"
	"unicode"
)

// snapshot is one immutable state of the catalog as reads see it. It is never changed after
// it is published: a change builds a new snapshot and swaps the pointer, so readers take no
// lock and a List never sees half an update.
type snapshot struct {
	products []Product      // sorted by ID; a page is one copy out of it
	entries  []entry        // entries[i] is what reads need of products[i]
	byID     map[string]int // product ID -> index in products and entries
}

// entry is what reads need of a product, precomputed so that List does no work per product
// beyond comparing strings.
type entry struct {
	rev      uint64 // bucket revision of the value products[i] holds
	foldName string // fold(product.Name)
	foldDesc string // fold(product.Description)
	token    string // the NextPageToken of a page that ends with this product
}

func newEntry(p Product, rev uint64) entry {
	return entry{
		rev:      rev,
		foldName: fold(p.Name),
		foldDesc: fold(p.Description),
		token:    encodeToken(p.ID),
	}
}

// change is one write to the bucket as the view learns of it, from the watch or from an
// Upsert of this process.
type change struct {
	id      string
	product Product // zero when deleted
	rev     uint64
	deleted bool
}

// apply returns a new snapshot with changes applied over old. A change applies only when its
// revision is newer than the one the view holds for that ID (or the one at which the ID was
// deleted, from tombs), so that an Upsert's own write arriving after a newer write seen by
// the watch does not roll the product back. tombs is updated in place; the caller owns it.
func apply(old *snapshot, changes []change, tombs map[string]uint64) *snapshot {
	if len(changes) == 0 {
		return old
	}
	// Keep only the newest change per ID, in ID order, to merge with the sorted entries.
	changes = slices.Clone(changes)
	slices.SortStableFunc(changes, func(a, b change) int {
		return cmp.Or(strings.Compare(a.id, b.id), cmp.Compare(a.rev, b.rev))
	})
	latest := changes[:0]
	for _, c := range changes {
		if n := len(latest); n > 0 && latest[n-1].id == c.id {
			latest[n-1] = c
			continue
		}
		latest = append(latest, c)
	}

	n := len(old.products) + len(latest)
	next := &snapshot{products: make([]Product, 0, n), entries: make([]entry, 0, n)}
	keep := func(i int) {
		next.products = append(next.products, old.products[i])
		next.entries = append(next.entries, old.entries[i])
	}
	add := func(c change) {
		delete(tombs, c.id)
		next.products = append(next.products, c.product)
		next.entries = append(next.entries, newEntry(c.product, c.rev))
	}
	i, j := 0, 0
	for i < len(old.products) || j < len(latest) {
		switch {
		case j == len(latest) || i < len(old.products) && old.products[i].ID < latest[j].id:
			keep(i)
			i++
		case i == len(old.products) || latest[j].id < old.products[i].ID:
			// A product the view does not hold.
			if c := latest[j]; c.rev > tombs[c.id] {
				if c.deleted {
					tombs[c.id] = c.rev
				} else {
					add(c)
				}
			}
			j++
		default:
			switch c := latest[j]; {
			case c.rev <= old.entries[i].rev:
				keep(i)
			case c.deleted:
				tombs[c.id] = c.rev
			default:
				add(c)
			}
			i++
			j++
		}
	}
	next.byID = make(map[string]int, len(next.products))
	for k, p := range next.products {
		next.byID[p.ID] = k
	}
	return next
}

// page returns the page of req (already validated: size in 1..MaxPageSize, query lower-cased)
// starting after the product whose ID is after. It allocates only the page's slice: tokens
// are precomputed, and search matches are collected as indices on the stack.
func (s *snapshot) page(query string, size int, after []byte) Page {
	start := 0
	if after != nil {
		// The first product whose ID sorts after the token's, whether or not that one
		// still exists. (Written out: slices.BinarySearchFunc
		// would make after escape, an allocation per request.)
		lo, hi := 0, len(s.entries)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if compareStringBytes(s.products[mid].ID, after) <= 0 {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		start = lo
	}

	if query == "" {
		n := min(size, len(s.products)-start)
		products := make([]Product, n) // never nil, even when empty
		copy(products, s.products[start:])
		next := ""
		if start+n < len(s.products) {
			next = s.entries[start+n-1].token
		}
		return Page{Products: products, NextPageToken: next}
	}

	var hits [MaxPageSize]int32
	n, more := 0, false
	for k := start; k < len(s.entries); k++ {
		e := &s.entries[k]
		if !strings.Contains(e.foldName, query) && !strings.Contains(e.foldDesc, query) {
			continue
		}
		if n == size { // look ahead: one more match means this page is not the last
			more = true
			break
		}
		hits[n] = int32(k)
		n++
	}
	products := make([]Product, n)
	for k := range n {
		products[k] = s.products[hits[k]]
	}
	next := ""
	if more {
		next = s.entries[hits[n-1]].token
	}
	return Page{Products: products, NextPageToken: next}
}

// compareStringBytes is strings.Compare(s, string(b)) without converting b.
func compareStringBytes(s string, b []byte) int {
	for i := 0; i < len(s) && i < len(b); i++ {
		if s[i] != b[i] {
			return cmp.Compare(s[i], b[i])
		}
	}
	return cmp.Compare(len(s), len(b))
}

// fold returns s with every rune replaced by one rune that stands for its case-folding orbit
// (unicode.SimpleFold): the lower case of the orbit's smallest rune. Two texts equal but for
// case, as Unicode's simple case folding (and strings.EqualFold) sees it, fold to the same
// string: "Σ", "σ" and "ς" are one rune, and so are "K", "k" and the Kelvin sign.
// strings.ToLower, which searched before, keeps "ς" apart from "σ" ("ΟΔΟΣ" lowers to
// "οδοσ"). One rune for one rune, so the fold of a substring is a substring of the fold. Like
// strings.ToLower it allocates nothing for a text already folded, lower-case ASCII among them.
func fold(s string) string {
	return strings.Map(foldRune, s)
}

func foldRune(r rune) rune {
	if r < 0x80 { // an ASCII letter's orbit holds its two cases, and perhaps one rune past ASCII
		if 'A' <= r && r <= 'Z' {
			return r - 'A' + 'a'
		}
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return unicode.ToLower(least)
}
