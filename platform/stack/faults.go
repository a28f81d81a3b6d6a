package stack

import (
	"errors"
	"time"
)

// What Kill and Start may say besides a runtime's own failure.
var (
	// ErrNoService: the stack has no service of that name in that architecture.
	ErrNoService = errors.New("no such service")
	// ErrNotRunning: Kill found the service down already.
	ErrNotRunning = errors.New("not running")
	// ErrAlreadyRunning: Start found the service running.
	ErrAlreadyRunning = errors.New("already running")
)

// DefaultReadyTimeout is how long a service may take to become ready, in Up (unless
// UpOptions.ReadyTimeout says otherwise) and in Start.
const DefaultReadyTimeout = 60 * time.Second
