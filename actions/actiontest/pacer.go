package actiontest

import (
	"context"
	"strings"
	"sync"
	"testing"
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

// TwoAccounts checks the reservations of two sends to one account (a
// webhook, a robot) and then one to another: the first two under one
// key, the third under another, none holding secret, the credential the
// key must hide. It returns them, for their rates.
func (p *Pacer) TwoAccounts(t testing.TB, secret string) []Reservation {
	t.Helper()
	got := p.Reservations()
	if len(got) != 3 || got[0].Key != got[1].Key || got[2].Key == got[0].Key {
		t.Fatalf("reservations %+v, want one key for the account both sends went to, another for the other", got)
	}
	for _, r := range got {
		if strings.Contains(r.Key, secret) {
			t.Errorf("key %q holds the account's credential", r.Key)
		}
	}
	return got
}
