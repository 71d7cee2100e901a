package store

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// dedupe remembers the identities of recently accepted events. A claim is
// held while the first copy is being written: a retry arriving meanwhile
// waits for that outcome, so it is never told 200 for an event that did
// not make it to disk.
//
// A day of callbacks is remembered in little memory: a written identity
// is 32 bytes (a 64-bit hash of its key, the event's ULID and the expiry),
// not its key. Two keys can share a hash, so a hit is confirmed against
// the first event's own key (verify) before a callback is called a
// duplicate; only retries pay for that.
type dedupe struct {
	mu        sync.Mutex
	seed      maphash.Seed
	written   map[uint64]remembered
	others    map[uint64]string // ids of written identities that are not ULIDs
	writing   map[string]*claim // keys whose first copy is being written
	verify    func(key, id string) bool
	lastSweep time.Time
}

// remembered is a written identity.
type remembered struct {
	id      ulid.ULID // zero: the id is in others
	expires int64     // Unix ns
}

// sweepEvery spaces full scans of the index: expired entries are also
// ignored on lookup, so sweeping only bounds memory.
const sweepEvery = time.Minute

type claim struct {
	id      string
	expires time.Time
	done    chan struct{} // closed once the first copy is written or failed
	ok      bool
}

// newDedupe returns an index whose hits verify confirms: that the event
// id was accepted under key.
func newDedupe(verify func(key, id string) bool) *dedupe {
	return &dedupe{seed: maphash.MakeSeed(), written: map[uint64]remembered{}, others: map[uint64]string{},
		writing: map[string]*claim{}, verify: verify}
}

func (d *dedupe) hash(key string) uint64 { return maphash.String(d.seed, key) }

// restore records an identity known to be on disk; of two for one key,
// the later expiry wins.
func (d *dedupe) restore(key, id string, expires time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hash(key)
	if r, ok := d.written[h]; !ok || expiryNs(expires) > r.expires {
		d.remember(h, id, expires)
	}
}

// remember records a written identity; the caller holds mu.
func (d *dedupe) remember(h uint64, id string, expires time.Time) {
	u, err := ulid.ParseStrict(id)
	if err != nil { // the daemon's ids are ULIDs; a caller of the store may use others
		u = ulid.ULID{}
		d.others[h] = id
	} else {
		delete(d.others, h)
	}
	d.written[h] = remembered{id: u, expires: expiryNs(expires)}
}

// idOf is a remembered identity's event id; the caller holds mu.
func (d *dedupe) idOf(h uint64, r remembered) string {
	if r.id == (ulid.ULID{}) {
		return d.others[h]
	}
	return r.id.String()
}

// expiryNs is an expiry as Unix ns, clamped into what int64 holds.
func expiryNs(t time.Time) int64 {
	if t.After(time.Unix(0, math.MaxInt64)) {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// claim returns the first event's id and dup=true when key is already
// accepted and not expired at now; otherwise it claims key for id and
// returns the claim, which the caller must settle.
func (d *dedupe) claim(ctx context.Context, key, id string, now, expires time.Time) (mine *claim, first string, dup bool, err error) {
	h := d.hash(key)
	collided := "" // the id of another key's identity that shares key's hash
	for {
		d.mu.Lock()
		c, writing := d.writing[key]
		if !writing {
			r, ok := d.written[h]
			if first := d.idOf(h, r); ok && now.UnixNano() < r.expires && first != collided {
				d.mu.Unlock()
				if d.verify(key, first) {
					return nil, first, true, nil
				}
				collided = first // this key is new: claim it, looking again under the lock
				continue
			}
			mine = &claim{id: id, expires: expires, done: make(chan struct{})}
			d.writing[key] = mine
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

// settle ends the caller's own claim: remembered when written, dropped
// when not.
func (d *dedupe) settle(key string, c *claim, written bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c.ok = written
	if d.writing[key] == c {
		delete(d.writing, key)
	}
	if written {
		d.remember(d.hash(key), c.id, c.expires)
	}
	close(c.done)
}

// sweep forgets expired identities, at most once a minute.
func (d *dedupe) sweep(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.lastSweep) < sweepEvery {
		return
	}
	d.lastSweep = now
	for h, r := range d.written {
		if now.UnixNano() >= r.expires {
			delete(d.written, h)
			delete(d.others, h)
		}
	}
}
