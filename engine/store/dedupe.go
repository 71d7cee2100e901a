package store

import (
	"context"
	"sync"
	"time"
)

// dedupe remembers the identities of recently accepted events. A claim is
// held while the first copy is being written: a retry arriving meanwhile
// waits for that outcome, so it is never told 200 for an event that did
// not make it to disk.
type dedupe struct {
	mu        sync.Mutex
	entries   map[string]*claim
	lastSweep time.Time
}

// sweepEvery spaces full scans of the index: expired entries are also
// ignored on lookup, so sweeping only bounds memory.
const sweepEvery = time.Minute

type claim struct {
	id      string
	expires time.Time
	done    chan struct{} // closed once the first copy is written or failed; then settled
	ok      bool
}

// settled is the done channel of every claim whose write has ended. A claim
// needs its own channel only while its write is in progress; an index that
// remembers a day of callbacks need not keep one per entry.
var settled = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newDedupe() *dedupe {
	return &dedupe{entries: map[string]*claim{}}
}

// restore records an identity known to be on disk; of two for one key,
// the later expiry wins.
func (d *dedupe) restore(key, id string, expires time.Time) {
	d.mu.Lock()
	if c, ok := d.entries[key]; !ok || expires.After(c.expires) {
		d.entries[key] = &claim{id: id, expires: expires, done: settled, ok: true}
	}
	d.mu.Unlock()
}

// claim returns the first event's id and dup=true when key is already
// accepted and not expired at now; otherwise it claims key for id and
// returns the claim, which the caller must settle.
func (d *dedupe) claim(ctx context.Context, key, id string, now, expires time.Time) (mine *claim, first string, dup bool, err error) {
	for {
		d.mu.Lock()
		c, ok := d.entries[key]
		// Only a written identity expires: a claim still being written is
		// waited for however long the write takes.
		if ok && c.ok && !now.Before(c.expires) {
			delete(d.entries, key)
			ok = false
		}
		if !ok {
			mine = &claim{id: id, expires: expires, done: make(chan struct{})}
			d.entries[key] = mine
			d.mu.Unlock()
			return mine, "", false, nil
		}
		done := c.done // settle swaps it, under the lock
		d.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, "", false, ctx.Err()
		}
		if c.ok { // written before done was closed, and never again
			return nil, c.id, true, nil
		}
		// The first copy failed to write: try again to be the first.
	}
}

// settle ends the caller's own claim: kept when written, dropped when not.
func (d *dedupe) settle(key string, c *claim, written bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c.ok = written
	if !written && d.entries[key] == c {
		delete(d.entries, key)
	}
	close(c.done)
	c.done = settled
}

// sweep forgets expired identities, at most once a minute.
func (d *dedupe) sweep(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.lastSweep) < sweepEvery {
		return
	}
	d.lastSweep = now
	for k, c := range d.entries {
		if c.ok && !now.Before(c.expires) {
			delete(d.entries, k)
		}
	}
}
