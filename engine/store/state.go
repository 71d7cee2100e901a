package store

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ruleState is a Local store's copy of the state rules keep across events.
// The db holds it for restarts; reads come from memory.
type ruleState struct {
	mu      sync.Mutex
	entries map[string]stateEntry
	version uint64 // the last version written
}

type stateEntry struct {
	value   []byte
	version uint64
	expires time.Time
}

func newRuleState() *ruleState { return &ruleState{entries: map[string]stateEntry{}} }

func (r *ruleState) read(keys []string, now time.Time) map[string]State {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]State, len(keys))
	for _, k := range keys {
		e, ok := r.entries[k]
		switch {
		case !ok:
		case now.Before(e.expires):
			out[k] = State{Value: e.value, Version: e.version}
		default: // expired: no value, but a version to write over
			out[k] = State{Version: e.version}
		}
	}
	return out
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
			se := stateEntry{value: c.Value, version: version, expires: c.Expires}
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
		if e.value == nil {
			delete(r.entries, k)
			continue
		}
		r.entries[k] = e
		r.version = max(r.version, e.version)
	}
}

// load reads the state bucket at open.
func (r *ruleState) load(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		e, err := decodeState(v)
		if err != nil {
			return err
		}
		r.entries[string(k)] = e
		r.version = max(r.version, e.version)
		return nil
	})
}

// prune forgets entries expired at now, in the db and in memory.
func (r *ruleState) prune(b *bolt.Bucket, now time.Time) (func(), error) {
	r.mu.Lock()
	var doomed []string
	for k, e := range r.entries {
		if !now.Before(e.expires) {
			doomed = append(doomed, k)
		}
	}
	r.mu.Unlock()
	for _, k := range doomed {
		if err := b.Delete([]byte(k)); err != nil {
			return nil, err
		}
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, k := range doomed {
			if e, ok := r.entries[k]; ok && !now.Before(e.expires) {
				delete(r.entries, k)
			}
		}
	}, nil
}

// A stored entry: version, expiry (8-byte big-endian each), value.
func encodeState(e stateEntry) []byte {
	v := binary.BigEndian.AppendUint64(nil, e.version)
	v = append(v, expiryKey(e.expires, "")...)
	return append(v, e.value...)
}

func decodeState(v []byte) (stateEntry, error) {
	if len(v) < 16 {
		return stateEntry{}, errors.New("state entry: short record")
	}
	expires, _ := splitExpiryKey(v[8:16])
	return stateEntry{version: binary.BigEndian.Uint64(v), expires: expires, value: append([]byte{}, v[16:]...)}, nil
}
