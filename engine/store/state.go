package store

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ruleState is a Local store's copy of the state rules keep across events,
// with an index of its timers. The db holds it for restarts; reads come
// from memory.
type ruleState struct {
	mu      sync.Mutex
	entries map[string]stateEntry
	version uint64    // the last version written
	timers  timerHeap // may hold stale items: an entry's due time is the truth
	taken   map[string]bool
	withDue int // entries with a timer
}

type stateEntry struct {
	value   []byte
	version uint64
	expires time.Time
	due     time.Time
}

func newRuleState() *ruleState {
	return &ruleState{entries: map[string]stateEntry{}, taken: map[string]bool{}}
}

type timerItem struct {
	due int64 // Unix ns
	key string
}

type timerHeap []timerItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	return h[i].due < h[j].due || h[i].due == h[j].due && h[i].key < h[j].key
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (r *ruleState) read(keys []string, now time.Time) map[string]State {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]State, len(keys))
	for _, k := range keys {
		e, ok := r.entries[k]
		switch {
		case !ok:
		case now.Before(e.expires):
			out[k] = State{Value: e.value, Version: e.version, Due: e.due}
		default: // expired: no value, but a version to write over
			out[k] = State{Version: e.version}
		}
	}
	return out
}

// due takes the entries whose timer is due at now.
func (r *ruleState) takeDue(now time.Time, max int) ([]StateEntry, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []StateEntry
	for r.timers.Len() > 0 && len(out) < max {
		top := r.timers[0]
		e, ok := r.entries[top.key]
		if !ok || e.due.IsZero() || e.due.UnixNano() != top.due || r.taken[top.key] {
			heap.Pop(&r.timers) // stale: the entry changed since
			continue
		}
		if top.due > now.UnixNano() {
			return out, time.Unix(0, top.due)
		}
		heap.Pop(&r.timers)
		r.taken[top.key] = true
		out = append(out, StateEntry{Key: top.key, State: State{Value: e.value, Version: e.version, Due: e.due}, Expires: e.expires})
	}
	if len(out) == max && r.timers.Len() > 0 {
		return out, time.Unix(0, r.timers[0].due)
	}
	return out, time.Time{}
}

// check reports whether every key's first change in evals read the
// version it has now (later changes of a key in the same commit follow
// from the first).
func (r *ruleState) check(evals []*Evaluation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range evals {
		for _, c := range e.State {
			if seen[c.Key] {
				continue
			}
			seen[c.Key] = true
			if r.entries[c.Key].version != c.Read {
				return ErrStateConflict
			}
		}
	}
	return nil
}

// put writes evals' changes into the db's state bucket, and returns them
// as they will be applied in memory once the transaction commits.
func (r *ruleState) put(b *bolt.Bucket, evals []*Evaluation) (map[string]stateEntry, error) {
	r.mu.Lock()
	version := r.version
	r.mu.Unlock()
	out := map[string]stateEntry{}
	for _, e := range evals {
		for _, c := range e.State {
			if c.Value == nil {
				out[c.Key] = stateEntry{}
				if err := b.Delete([]byte(c.Key)); err != nil {
					return nil, err
				}
				continue
			}
			version++
			se := stateEntry{value: c.Value, version: version, expires: c.Expires, due: c.Due}
			out[c.Key] = se
			if err := b.Put([]byte(c.Key), encodeState(se)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// apply makes a committed transaction's changes visible.
func (r *ruleState) apply(changes map[string]stateEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range changes {
		taken := r.taken[k]
		delete(r.taken, k)
		if e.value == nil {
			r.delete(k)
			continue
		}
		r.set(k, e, taken)
	}
}

// set records an entry and its timer; the caller holds mu.
func (r *ruleState) set(k string, e stateEntry, taken bool) {
	old, had := r.entries[k]
	r.delete(k)
	if !e.due.IsZero() {
		r.withDue++
	}
	r.entries[k] = e
	r.version = max(r.version, e.version)
	// A key written again with the due time it had keeps its heap item
	// (a session's every event, a digest's every item): only a new due
	// time, or one whose item was taken, needs another.
	if !e.due.IsZero() && (!had || taken || !old.due.Equal(e.due)) {
		heap.Push(&r.timers, timerItem{due: e.due.UnixNano(), key: k})
	}
}

// load reads the state bucket at open.
func (r *ruleState) load(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		e, err := decodeState(v)
		if err != nil {
			return err
		}
		r.set(string(k), e, false)
		return nil
	})
}

// list returns entries under prefix, in key order, after the key after.
func (r *ruleState) list(b *bolt.Bucket, prefix, after string, limit int) ([]StateEntry, error) {
	var out []StateEntry
	c := b.Cursor()
	start := []byte(prefix)
	if after > prefix {
		start = []byte(after)
	}
	for k, v := c.Seek(start); k != nil && strings.HasPrefix(string(k), prefix) && len(out) < limit; k, v = c.Next() {
		if string(k) == after {
			continue
		}
		e, err := decodeState(v)
		if err != nil {
			return nil, err
		}
		out = append(out, StateEntry{Key: string(k), State: State{Value: e.value, Version: e.version, Due: e.due}, Expires: e.expires})
	}
	return out, nil
}

// drop deletes the entries under prefix from the db and returns their keys.
func (r *ruleState) drop(b *bolt.Bucket, prefix string) ([]string, error) {
	var keys []string
	c := b.Cursor()
	for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
		keys = append(keys, string(k))
	}
	for _, k := range keys {
		if err := b.Delete([]byte(k)); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// forget removes keys from memory once their deletion committed.
func (r *ruleState) forget(keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		r.delete(k)
		delete(r.taken, k)
	}
}

// prune finds entries expired at now, deletes them from the db and
// returns a function that forgets them in memory once the deletion has
// committed. An entry whose timer is still to run is kept.
func (r *ruleState) prune(b *bolt.Bucket, now time.Time) (func(), error) {
	r.mu.Lock()
	var doomed []string
	for k, e := range r.entries {
		if !now.Before(e.expires) && e.due.IsZero() {
			doomed = append(doomed, k)
		}
	}
	r.mu.Unlock()
	for _, k := range doomed {
		if err := b.Delete([]byte(k)); err != nil {
			return nil, err
		}
	}
	return func() { r.forget(doomed) }, nil
}

// delete forgets an entry; the caller holds mu.
func (r *ruleState) delete(k string) {
	if e, ok := r.entries[k]; ok {
		if !e.due.IsZero() {
			r.withDue--
		}
		delete(r.entries, k)
	}
}

func (r *ruleState) counts() (keys, timers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries), r.withDue
}

// A stored entry: version, expiry and due time (8-byte big-endian each;
// a zero due time is no timer), then the value.
func encodeState(e stateEntry) []byte {
	v := binary.BigEndian.AppendUint64(nil, e.version)
	v = append(v, expiryKey(e.expires, "")...)
	var due uint64
	if !e.due.IsZero() {
		due = uint64(e.due.UnixNano())
	}
	v = binary.BigEndian.AppendUint64(v, due)
	return append(v, e.value...)
}

func decodeState(v []byte) (stateEntry, error) {
	if len(v) < 24 {
		return stateEntry{}, errors.New("state entry: short record")
	}
	expires, _ := splitExpiryKey(v[8:16])
	e := stateEntry{version: binary.BigEndian.Uint64(v), expires: expires, value: append([]byte{}, v[24:]...)}
	if due := binary.BigEndian.Uint64(v[16:24]); due != 0 {
		e.due = time.Unix(0, int64(due))
	}
	return e, nil
}
