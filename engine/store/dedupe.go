package store

import (
	"context"
	"hash/maphash"
	"iter"
	"sync"
	"time"
)

// dedupe remembers the identities of recently accepted events. A claim is
// held while the first copy is being written: a retry arriving meanwhile
// waits for that outcome, so it is never told 200 for an event that did
// not make it to disk.
//
// An identity already in the db is remembered in 16 bytes, neither its
// key nor its event's id: a 64-bit fingerprint of the key and the expiry
// (idTable). Those two name the identity's entry in the dedupe bucket,
// which holds the key itself and the first event's id, so a hit is
// confirmed and answered from there (firstOf): two keys sharing a
// fingerprint never make a new callback a duplicate, and only retries pay
// the lookup. Identities not yet in the db are claims, by key.
type dedupe struct {
	mu        sync.Mutex
	seed      maphash.Seed
	stored    *idTable          // identities in the db
	claims    map[string]*claim // identities being written, or in the journal and not yet in the db
	firstOf   func(key string, expires int64) (id string, ok bool)
	lastSweep time.Time
}

// sweepEvery spaces full scans of the index: expired entries are also
// ignored on lookup, so sweeping only bounds memory.
const sweepEvery = time.Minute

type claim struct {
	id      string
	expires int64         // Unix ns
	done    chan struct{} // closed once the first copy is written or failed
	ok      bool          // written (to the journal)
}

// journaled is the done of claims recovered from the journal: written.
var journaled = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// newDedupe returns an index whose hits firstOf confirms: it returns the
// id of the event the db holds as accepted under key with that expiry.
func newDedupe(firstOf func(key string, expires int64) (string, bool)) *dedupe {
	return &dedupe{seed: maphash.MakeSeed(), stored: newIDTable(), claims: map[string]*claim{}, firstOf: firstOf}
}

// fingerprint is key's 64-bit hash; 0 marks an empty slot.
func fingerprint(h uint64) uint64 { return max(h, 1) }

// restore records the identities of the db's dedupe bucket: key and
// expiry (Unix ns).
func (d *dedupe) restore(identities iter.Seq2[[]byte, int64]) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, expires := range identities {
		d.stored.put(fingerprint(maphash.Bytes(d.seed, key)), expires)
	}
}

// restoreJournaled records an identity accepted in the journal and not
// yet in the db.
func (d *dedupe) restoreJournaled(key, id string, expires time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.claims[key]; !ok || expiryNs(expires) > c.expires {
		d.claims[key] = &claim{id: id, expires: expiryNs(expires), done: journaled, ok: true}
	}
}

// claim returns the first event's id and dup=true when key is already
// accepted and not expired at now; otherwise it claims key for id and
// returns the claim, which the caller must settle.
func (d *dedupe) claim(ctx context.Context, key, id string, now, expires time.Time) (mine *claim, first string, dup bool, err error) {
	fp := fingerprint(maphash.String(d.seed, key))
	at := now.UnixNano()
	unconfirmed := false // a stored identity with key's fingerprint is another key's
	var unconfirmedExp int64
	for {
		d.mu.Lock()
		c, held := d.claims[key]
		if held && c.ok {
			if at < c.expires {
				d.mu.Unlock()
				return nil, c.id, true, nil
			}
			held = false // its window is over: this copy takes the key
		}
		if !held {
			if exp, ok := d.stored.get(fp); ok && at < exp && !(unconfirmed && exp == unconfirmedExp) {
				d.mu.Unlock()
				if first, ok := d.firstOf(key, exp); ok {
					return nil, first, true, nil
				}
				unconfirmed, unconfirmedExp = true, exp // this key is new: claim it, looking again under the lock
				continue
			}
			mine = &claim{id: id, expires: expiryNs(expires), done: make(chan struct{})}
			d.claims[key] = mine
			d.mu.Unlock()
			return mine, "", false, nil
		}
		d.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, "", false, ctx.Err()
		}
		if c.ok { // written before done was closed, and never again
			return nil, c.id, true, nil
		}
		// The first copy failed to write: try again to be the first.
	}
}

// settle ends the caller's own claim: kept until its event is in the db
// when written, dropped when not.
func (d *dedupe) settle(key string, c *claim, written bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c.ok = written
	if !written && d.claims[key] == c {
		delete(d.claims, key)
	}
	close(c.done)
}

// committed moves the identities of events now in the db from claims to
// the table.
func (d *dedupe) committed(fs []*inflight) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range fs {
		key := ""
		if f != nil {
			key = indexKey(f.accepted.DedupeKey)
		}
		if key == "" {
			continue
		}
		d.stored.put(fingerprint(maphash.String(d.seed, key)), expiryNs(f.expires))
		// A later copy may hold the key already, its first copy's window
		// being over.
		if c := d.claims[key]; c != nil && c.id == f.accepted.Event.ID {
			delete(d.claims, key)
		}
	}
}

// sweep forgets expired identities, at most once a minute, a segment at a
// time: claims are not held up behind the whole scan.
func (d *dedupe) sweep(now time.Time) {
	d.mu.Lock()
	if now.Sub(d.lastSweep) < sweepEvery {
		d.mu.Unlock()
		return
	}
	d.lastSweep = now
	for i := 0; i < len(d.stored.dir); {
		i = d.stored.sweepSegment(i, now.UnixNano())
		d.mu.Unlock()
		d.mu.Lock()
	}
	d.mu.Unlock()
}
