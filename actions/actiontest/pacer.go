package actiontest

import (
	"context"
	"sync"
	"time"
)

// Pacer is a store.Pacer for tests of paced actions: it records every
// reservation and lets each through at once.
type Pacer struct {
	mu    sync.Mutex
	calls []Reservation
}

// Reservation is one call of Pacer.Pace.
type Reservation struct {
	Key   string
	Every time.Duration
	Burst int
}

// Pace implements store.Pacer.
func (p *Pacer) Pace(_ context.Context, key string, _ time.Time, every time.Duration, burst int) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, Reservation{Key: key, Every: every, Burst: burst})
	return 0, nil
}

// Reservations are the calls so far, in order.
func (p *Pacer) Reservations() []Reservation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Reservation(nil), p.calls...)
}
