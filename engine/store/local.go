package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/journal"
)

var (
	bucketEvents  = []byte("events")           // event id → EventRecord
	bucketJobs    = []byte("jobs")             // job id (event id first) → Job
	bucketPending = []byte("pending")          // job id → nothing: the jobs still to run
	bucketDead    = []byte("dead")             // job id → nothing: dead letters
	bucketDedupe  = []byte("dedupe-by-expiry") // expiry (8-byte big-endian Unix ns) + dedupe key → event id
	bucketMeta    = []byte("meta")
	keyApplied    = []byte("applied") // journal seq up to which events are in the db
	allBuckets    = [][]byte{bucketEvents, bucketJobs, bucketPending, bucketDead, bucketDedupe, bucketMeta}
)

// appendOnlyFill is how full bbolt packs the pages of buckets whose keys
// arrive in increasing order (ULIDs, expiry times). Its default of one half
// suits random inserts; here the tree grows at its right edge only, and
// half-empty pages would double what every commit writes.
const appendOnlyFill = 0.95

// maxScan bounds how many events a filtered listing looks at.
const maxScan = 100_000

// Local is the embedded store under one directory: journal/ holds accepted
// events until they are applied to livehook.db.
type Local struct {
	dir     string
	journal *journal.Log
	db      *bolt.DB
	saves   *saves
}

var _ Store = (*Local)(nil)

// Options tune a Local store.
type Options struct {
	// OnCommit observes each group commit of the journal (metrics).
	OnCommit func(records int, d time.Duration)
}

// Open opens or creates the store in dir.
func Open(dir string, o Options) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{OnCommit: o.OnCommit})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "livehook.db"), 0o600, &bolt.Options{
		Timeout:        time.Second, // another livehook holds it: say so rather than hang
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		j.Close()
		return nil, fmt.Errorf("open store: %s: %w", filepath.Join(dir, "livehook.db"), err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		j.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &Local{dir: dir, journal: j, db: db, saves: &saves{db: db}}, nil
}

// Append implements Store.
func (s *Local) Append(ctx context.Context, a *Accepted) error {
	rec, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	seq, err := s.journal.Append(ctx, rec)
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	a.Seq, a.Encoded = seq, rec
	return nil
}

// Unapplied implements Store.
func (s *Local) Unapplied(fn func(*Accepted) error) (uint64, error) {
	var applied uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		applied = readApplied(tx)
		return nil
	}); err != nil {
		return 0, err
	}
	return applied, s.journal.Replay(applied, func(seq uint64, rec []byte) error {
		var a Accepted
		if err := json.Unmarshal(rec, &a); err != nil || a.Event == nil {
			return fmt.Errorf("journal record %d: not an accepted event: %v", seq, err)
		}
		a.Seq, a.Encoded = seq, rec
		a.Stored = s.has(a.Event.ID) // applied ahead of the watermark before the crash
		return fn(&a)
	})
}

func (s *Local) has(eventID string) bool {
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketEvents).Get([]byte(eventID)) != nil
		return nil
	})
	return found
}

func readApplied(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyApplied); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// Apply implements Store.
func (s *Local) Apply(events []*EventRecord, jobs []*Job, dedupe map[string]DedupeEntry, seq uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		b.FillPercent = appendOnlyFill
		for _, ev := range events {
			if err := putEvent(b, ev); err != nil {
				return err
			}
		}
		if err := putJobs(tx, jobs); err != nil {
			return err
		}
		if err := putDedupe(tx.Bucket(bucketDedupe), dedupe); err != nil {
			return err
		}
		if seq > readApplied(tx) {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], seq)
			return tx.Bucket(bucketMeta).Put(keyApplied, b[:])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply events: %w", err)
	}
	// The events are in the db now: the journal need not keep them. A
	// failed release is not a failed apply: the next Apply releases again.
	_ = s.journal.Release(seq)
	return nil
}

// PutJobs implements Store. Calls from many goroutines share commits.
func (s *Local) PutJobs(jobs ...*Job) error {
	if err := s.saves.put(jobs); err != nil {
		return fmt.Errorf("save jobs: %w", err)
	}
	return nil
}

func putJobs(tx *bolt.Tx, jobs []*Job) error {
	for _, j := range jobs {
		if err := putJSON(tx.Bucket(bucketJobs), j.ID, j); err != nil {
			return err
		}
		pending, dead := tx.Bucket(bucketPending), tx.Bucket(bucketDead)
		var err error
		switch j.State {
		case Pending:
			err = errors.Join(pending.Put([]byte(j.ID), nil), dead.Delete([]byte(j.ID)))
		case Dead:
			err = errors.Join(pending.Delete([]byte(j.ID)), dead.Put([]byte(j.ID), nil))
		default:
			err = errors.Join(pending.Delete([]byte(j.ID)), dead.Delete([]byte(j.ID)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// PutEvent implements Store.
func (s *Local) PutEvent(ev *EventRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putEvent(tx.Bucket(bucketEvents), ev) })
}

// putEvent stores ev as JSON. With its journal record at hand, it splices
// the record's bytes (the event and its dedupe key) into the encoded
// outcome rather than encoding the event again, which was most of what
// applying an event cost: both are JSON objects with no key in common, so
// the result reads back as one EventRecord.
func putEvent(b *bolt.Bucket, ev *EventRecord) error {
	if len(ev.Encoded) < 2 || ev.Encoded[0] != '{' {
		return putJSON(b, ev.Event.ID, ev)
	}
	outcome, err := json.Marshal(struct {
		*EventRecord
		Event     json.RawMessage `json:"event,omitempty"`      // left out: in the journal record
		DedupeKey string          `json:"dedupe_key,omitempty"` // likewise
	}{EventRecord: ev})
	if err != nil {
		return err
	}
	// outcome always has "matched", so it is never the empty object.
	v := make([]byte, 0, len(outcome)+len(ev.Encoded))
	v = append(append(append(v, outcome[:len(outcome)-1]...), ','), ev.Encoded[1:]...)
	return b.Put([]byte(ev.Event.ID), v)
}

// PendingJobs implements Store.
func (s *Local) PendingJobs() ([]*Job, error) {
	var out []*Job
	err := s.db.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		return tx.Bucket(bucketPending).ForEach(func(k, _ []byte) error {
			var j Job
			if err := json.Unmarshal(jobs.Get(k), &j); err != nil {
				return fmt.Errorf("job %s: %w", k, err)
			}
			out = append(out, &j)
			return nil
		})
	})
	return out, err
}

// Dedupe implements Store.
func (s *Local) Dedupe(now time.Time) (map[string]DedupeEntry, error) {
	out := map[string]DedupeEntry{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDedupe).Cursor()
		for k, v := c.Seek(expiryKey(now, "")); k != nil; k, v = c.Next() {
			expires, key := splitExpiryKey(k)
			if now.Before(expires) && expires.After(out[key].Expires) {
				out[key] = DedupeEntry{ID: string(v), Expires: expires}
			}
		}
		return nil
	})
	return out, err
}

// putDedupe adds identities keyed by expiry first: new ones land at the
// end of the bucket, whatever their keys, so a commit dirties few pages,
// and expired ones are a prefix that pruning cuts off.
func putDedupe(b *bolt.Bucket, entries map[string]DedupeEntry) error {
	b.FillPercent = appendOnlyFill
	for k, d := range entries {
		if err := b.Put(expiryKey(d.Expires, k), []byte(d.ID)); err != nil {
			return err
		}
	}
	return nil
}

func expiryKey(expires time.Time, key string) []byte {
	ns := expires.UnixNano() // meaningless outside 1678–2262
	switch {
	case expires.Before(time.Unix(0, 0)):
		ns = 0
	case expires.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	}
	return append(binary.BigEndian.AppendUint64(nil, uint64(ns)), key...)
}

func splitExpiryKey(k []byte) (time.Time, string) {
	if len(k) < 8 {
		return time.Time{}, ""
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k))), string(k[8:])
}

// Event implements Store.
func (s *Local) Event(id string) (*EventRecord, []*Job, error) {
	var ev EventRecord
	var jobs []*Job
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEvents).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(v, &ev); err != nil {
			return err
		}
		c := tx.Bucket(bucketJobs).Cursor()
		prefix := []byte(id + ".")
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			jobs = append(jobs, &j)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return &ev, jobs, nil
}

// Job implements Store.
func (s *Local) Job(id string) (*Job, error) {
	var j Job
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &j)
	})
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// Events implements Store. Event ids are ULIDs, so key order is time order.
func (s *Local) Events(f EventFilter) ([]*EventRecord, error) {
	var out []*EventRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		scanned := 0
		for k, v := c.Last(); k != nil && len(out) < f.Limit && scanned < maxScan; k, v = c.Prev() {
			scanned++
			var ev EventRecord
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("event %s: %w", k, err)
			}
			if (f.Source == "" || ev.Event.Source == f.Source) && (f.Rule == "" || slices.Contains(ev.Matched, f.Rule)) {
				out = append(out, &ev)
			}
		}
		return nil
	})
	return out, err
}

// DeadLetters implements Store.
func (s *Local) DeadLetters(limit int) ([]*Job, error) {
	var out []*Job
	err := s.db.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketDead).Cursor()
		for k, _ := c.Last(); k != nil && len(out) < limit; k, _ = c.Prev() {
			var j Job
			if err := json.Unmarshal(jobs.Get(k), &j); err != nil {
				return fmt.Errorf("job %s: %w", k, err)
			}
			out = append(out, &j)
		}
		return nil
	})
	return out, err
}

// DeadCount implements Store.
func (s *Local) DeadCount() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketDead).Stats().KeyN
		return nil
	})
	return n, err
}

// Prune implements Store.
func (s *Local) Prune(cutoff, now time.Time) (int, error) {
	pruned := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		events, jobs := tx.Bucket(bucketEvents), tx.Bucket(bucketJobs)
		var doomed [][]byte
		c := events.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id, err := ulid.ParseStrict(string(k))
			if err != nil || ulid.Time(id.Time()).After(cutoff) {
				break // ids are time-ordered: everything after is newer
			}
			if finished(jobs, k) {
				doomed = append(doomed, k)
			}
		}
		for _, k := range doomed {
			jc := jobs.Cursor()
			prefix := append(bytes.Clone(k), '.')
			var jobKeys [][]byte
			for jk, _ := jc.Seek(prefix); jk != nil && bytes.HasPrefix(jk, prefix); jk, _ = jc.Next() {
				jobKeys = append(jobKeys, jk)
			}
			for _, jk := range jobKeys {
				if err := jobs.Delete(jk); err != nil {
					return err
				}
			}
			if err := events.Delete(k); err != nil {
				return err
			}
			pruned++
		}
		return pruneDedupe(tx.Bucket(bucketDedupe), now)
	})
	return pruned, err
}

// finished reports whether every job of the event is delivered: events
// with pending work or dead letters are kept.
func finished(jobs *bolt.Bucket, eventID []byte) bool {
	c := jobs.Cursor()
	prefix := append(bytes.Clone(eventID), '.')
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var j Job
		if json.Unmarshal(v, &j) != nil || j.State != Delivered {
			return false
		}
	}
	return true
}

func pruneDedupe(b *bolt.Bucket, now time.Time) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		if expires, _ := splitExpiryKey(k); now.Before(expires) {
			return nil // keys are in expiry order: the rest are live
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Size implements Store.
func (s *Local) Size() int64 {
	var n int64
	if st, err := os.Stat(filepath.Join(s.dir, "livehook.db")); err == nil {
		n = st.Size()
	}
	return n + s.journal.Size()
}

// Close implements Store.
func (s *Local) Close() error {
	return errors.Join(s.journal.Close(), s.db.Close())
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}
