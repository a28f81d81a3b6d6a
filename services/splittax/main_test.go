package splittax

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The catalog logs its seeding through the default logger; benchmark output stays clean.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
