package store

import (
	"context"
	"sync"
	"time"
)

// inbox holds the accepted events of a Local store that are not yet
// evaluated: waiting to be taken, or taken and not yet committed. It is
// unbounded on purpose: an event in it is already durable in the journal,
// and refusing it would be worse than holding it in memory; the journal
// bounds what a crash can replay.
type inbox struct {
	mu      sync.Mutex
	waiting []*inflight
	taken   map[string]*inflight // by event id
	all     map[string]*inflight // waiting and taken, by event id
	wake    chan struct{}        // coalesced: something was pushed
}

// inflight is an accepted event with what the journal knows of it.
type inflight struct {
	accepted Accepted
	seq      uint64    // its journal position
	record   []byte    // its journal record, spliced into the stored event
	expires  time.Time // its identity's expiry, for the dedupe bucket
}

func newInbox() *inbox {
	return &inbox{taken: map[string]*inflight{}, all: map[string]*inflight{}, wake: make(chan struct{}, 1)}
}

func (b *inbox) push(f *inflight) {
	b.mu.Lock()
	b.waiting = append(b.waiting, f)
	b.all[f.accepted.Event.ID] = f
	b.mu.Unlock()
	signal(b.wake)
}

// take implements Store.Unevaluated's waiting rule.
func (b *inbox) take(ctx context.Context, max int) ([]*Accepted, error) {
	for {
		b.mu.Lock()
		if n := min(len(b.waiting), max); n > 0 {
			out := make([]*Accepted, n)
			for i, f := range b.waiting[:n] {
				b.taken[f.accepted.Event.ID] = f
				out[i] = &f.accepted
			}
			b.waiting = b.waiting[n:]
			b.mu.Unlock()
			return out, nil
		}
		b.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-b.wake:
		case <-ctx.Done():
		}
	}
}

// lookup returns the taken event with id.
func (b *inbox) lookup(id string) (*inflight, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.taken[id]
	return f, ok
}

// keyOf is the dedupe key of an event not yet committed.
func (b *inbox) keyOf(id string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.all[id]
	if !ok {
		return "", false
	}
	return f.accepted.DedupeKey, true
}

// done forgets committed events.
func (b *inbox) done(fs []*inflight) {
	b.mu.Lock()
	for _, f := range fs {
		if f != nil {
			delete(b.taken, f.accepted.Event.ID)
			delete(b.all, f.accepted.Event.ID)
		}
	}
	b.mu.Unlock()
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting) + len(b.taken)
}

// watermark tracks the journal position below which every event is
// applied. Events are committed in a different order than the journal
// numbered them (concurrent requests, evaluators taking batches), so the
// position advances only over a dense run; events applied beyond it are
// replayed after a crash and skipped then, because the db already has them.
type watermark struct {
	next  uint64          // the lowest seq not yet applied; set at open from the db
	ahead map[uint64]bool // applied seqs above next
}

// peek returns the position that committing seqs would reach, without
// recording anything: a commit that fails must not move it.
func (w *watermark) peek(seqs []uint64) uint64 {
	extra := map[uint64]bool{}
	for _, s := range seqs {
		if s >= w.next {
			extra[s] = true
		}
	}
	n := w.next
	for w.ahead[n] || extra[n] {
		n++
	}
	return n - 1
}

// advance records seqs as applied.
func (w *watermark) advance(seqs []uint64) {
	if w.ahead == nil {
		w.ahead = map[uint64]bool{}
	}
	for _, s := range seqs {
		if s >= w.next {
			w.ahead[s] = true
		}
	}
	for w.ahead[w.next] {
		delete(w.ahead, w.next)
		w.next++
	}
}
