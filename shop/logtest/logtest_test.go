package logtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/logtest"
)

// Writers on many goroutines and a reader at the same time lose no line (run with -race).
func TestBufferTakesConcurrentWrites(t *testing.T) {
	var b logtest.Buffer
	const writers, lines = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(&b, "w%d-%d\n", w, i)
			}
		}()
	}
	for range lines {
		_ = b.String()
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != writers*lines {
		t.Errorf("%d lines, want %d", got, writers*lines)
	}
}
