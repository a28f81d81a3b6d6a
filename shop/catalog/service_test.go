package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/catalog/catalogtest"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

func TestMemory(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) catalog.Service { return newCatalog(t, kv.NewMemory()) })
}

func TestJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	catalogtest.Run(t, func(t *testing.T) catalog.Service { return newCatalog(t, srv.Bucket(t, "products")) })
}

// newCatalog returns a catalog over b whose watch ends with the test.
func newCatalog(t testing.TB, b kv.Bucket) catalog.Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	svc, err := catalog.New(ctx, b, nil)
	if err != nil {
		t.Fatalf("catalog.New: %v", err)
	}
	return svc
}

func TestSeedIsValidAndStable(t *testing.T) {
	seed := catalog.Seed()
	if len(seed) < 50 {
		t.Fatalf("seed has %d products, want at least 50", len(seed))
	}
	if !slices.Equal(seed, catalog.Seed()) {
		t.Fatal("Seed() differs between calls")
	}
	names := map[string]bool{}
	for i, p := range seed {
		if want := fmt.Sprintf("sku-%04d", i+1); p.ID != want {
			t.Errorf("seed[%d].ID = %q, want %q", i, p.ID, want)
		}
		if names[p.Name] {
			t.Errorf("seed name %q appears twice", p.Name)
		}
		names[p.Name] = true
		if p.Description == "" || p.Price.Units < 100 || p.WeightGrams <= 0 {
			t.Errorf("seed %s looks unreal: %+v", p.ID, p)
		}
	}
	// Every seed product is one Upsert accepts.
	svc := newCatalog(t, kv.NewMemory())
	for _, p := range seed {
		if _, err := svc.Upsert(context.Background(), p); err != nil {
			t.Errorf("Upsert of seed %s: %v", p.ID, err)
		}
	}
}

func TestNewSeedsOnlyAnEmptyBucket(t *testing.T) {
	ctx := context.Background()
	b := kv.NewMemory()
	own := catalog.Product{ID: "own-1", Name: "Own Product", Price: money.Cents(100)}
	if _, err := kv.Create(ctx, b, own.ID, own); err != nil {
		t.Fatal(err)
	}
	svc := newCatalog(t, b)
	page, err := svc.List(ctx, catalog.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Products) != 1 || page.Products[0] != own || page.NextPageToken != "" {
		t.Fatalf("catalog over a non-empty bucket lists %+v, want only %+v", page, own)
	}
}

func TestConcurrentStartsOverOneBucketSeedOnce(t *testing.T) {
	srv := natsjstest.New(t)
	b := srv.Bucket(t, "products")
	const n = 4
	svcs := make([]catalog.Service, n)
	errs := make([]error, n)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { svcs[i], errs[i] = catalog.New(ctx, b, nil) })
	}
	wg.Wait()
	seed := catalog.Seed()
	for i, svc := range svcs {
		if errs[i] != nil {
			t.Fatalf("New %d: %v", i, errs[i])
		}
		// Every instance ends up with exactly the seed (one that found the bucket half
		// seeded gets the rest from its watch).
		waitFor(t, func() string {
			got := listAll(t, svc)
			if !slices.Equal(got, seed) {
				return fmt.Sprintf("instance %d lists %d products, want the %d of the seed", i, len(got), len(seed))
			}
			return ""
		})
	}
	keys, err := b.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(seed) {
		t.Fatalf("bucket has %d keys, want %d", len(keys), len(seed))
	}
}

func TestInstancesOverOneBucketSeeEachOthersUpserts(t *testing.T) {
	srv := natsjstest.New(t)
	b := srv.Bucket(t, "products")
	one, two := newCatalog(t, b), newCatalog(t, b)
	ctx := context.Background()

	created := catalog.Product{ID: "shared-1", Name: "Camp Kettle", Description: "Made by instance one.", Price: money.Cents(2500), WeightGrams: 600}
	if _, err := one.Upsert(ctx, created); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, two, created)

	replaced := created
	replaced.Description = "Replaced by instance two."
	replaced.Price = money.Cents(2700)
	if _, err := two.Upsert(ctx, replaced); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, one, replaced)

	seedChange, err := two.Get(ctx, "sku-0002")
	if err != nil {
		t.Fatal(err)
	}
	seedChange.Name = "Summit Down Sleeping Bag, Long"
	if _, err := two.Upsert(ctx, seedChange); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, one, seedChange)
}

func TestViewFollowsWritesMadeOutsideTheService(t *testing.T) {
	srv := natsjstest.New(t)
	b := srv.Bucket(t, "products")
	svc := newCatalog(t, b)
	ctx := context.Background()

	p := catalog.Product{ID: "outside-1", Name: "Written Elsewhere", Price: money.Cents(100)}
	if _, err := kv.Create(ctx, b, p.ID, p); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, svc, p)
	if err := b.Delete(ctx, p.ID, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string {
		if _, err := svc.Get(ctx, p.ID); !errors.Is(err, catalog.ErrNotFound) {
			return fmt.Sprintf("Get after delete: %v, want ErrNotFound", err)
		}
		if slices.ContainsFunc(listAll(t, svc), func(q catalog.Product) bool { return q.ID == p.ID }) {
			return "List still shows the deleted product"
		}
		return ""
	})
	// A value that is not a product is skipped, and what follows still arrives.
	if _, err := b.Create(ctx, "garbage", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	q := catalog.Product{ID: "outside-2", Name: "After The Garbage", Price: money.Cents(100)}
	if _, err := kv.Create(ctx, b, q.ID, q); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, svc, q)
	if _, err := svc.Get(ctx, "garbage"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Get garbage: %v, want ErrNotFound", err)
	}
}

func TestNewFailsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := catalog.New(ctx, kv.NewMemory(), nil); err == nil {
		t.Fatal("New with a cancelled context succeeded")
	}
}

// waitVisible polls until svc's Get and List show p.
func waitVisible(t *testing.T, svc catalog.Service, p catalog.Product) {
	t.Helper()
	waitFor(t, func() string {
		got, err := svc.Get(context.Background(), p.ID)
		if err != nil || got != p {
			return fmt.Sprintf("Get(%s) = %+v, %v; want %+v", p.ID, got, err, p)
		}
		if !slices.Contains(listAll(t, svc), p) {
			return fmt.Sprintf("List does not show %+v", p)
		}
		return ""
	})
}

// waitFor polls check until it returns "" or a deadline passes, then fails with its last
// complaint.
func waitFor(t *testing.T, check func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for an event
	}
}

func listAll(t *testing.T, svc catalog.Service) []catalog.Product {
	t.Helper()
	var all []catalog.Product
	req := catalog.ListRequest{PageSize: catalog.MaxPageSize}
	for {
		page, err := svc.List(context.Background(), req)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		all = append(all, page.Products...)
		if page.NextPageToken == "" {
			return all
		}
		req.PageToken = page.NextPageToken
	}
}
