package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store/journal"
)

var (
	bucketEvents  = []byte("events")           // event id → EventRecord
	bucketJobs    = []byte("jobs")             // job id (event id first) → Job
	bucketPending = []byte("pending")          // job id → its key in due: the jobs still to run
	bucketDue     = []byte("due")              // action, 0, due time, job id → nothing (see jobindex.go)
	bucketDead    = []byte("dead")             // job id → nothing: dead letters
	bucketDedupe  = []byte("dedupe-by-expiry") // expiry (8-byte big-endian Unix ns) + dedupe key → event id
	bucketMeta    = []byte("meta")
	bucketState   = []byte("state")   // state key → version, expiry, value (see state.go)
	keyApplied    = []byte("applied") // journal seq up to which events are in the db
	keyPending    = []byte("pending") // how many jobs the pending bucket holds
	keyDead       = []byte("dead")    // how many the dead bucket holds
	allBuckets    = [][]byte{bucketEvents, bucketJobs, bucketPending, bucketDue, bucketDead, bucketDedupe, bucketMeta, bucketState,
		bucketSummary, bucketEventIndex, bucketStreamIndex}
)

// appendOnlyFill is how full bbolt packs the pages of buckets whose keys
// arrive in increasing order (ULIDs, expiry times). Its default of one half
// suits random inserts; here the tree grows at its right edge only, and
// half-empty pages would double what every commit writes.
const appendOnlyFill = 0.95

// Local is the embedded store under one directory: journal/ holds accepted
// events until they are applied to livehook.db. It serves one process:
// what a shared backend keeps in its database (the dedupe index, the
// events still to evaluate, the due-time index of pending jobs and their
// leases) Local keeps in memory, rebuilt from disk at Open.
type Local struct {
	dir       string
	journal   appendLog
	db        *bolt.DB
	saves     *saves
	unapplied *unapplied // finished jobs' states journaled, not yet in the db

	stop        chan struct{} // closed by Close: the applier stops
	applierDone chan struct{}
	closeOnce   sync.Once

	dedupe *dedupe
	inbox  *inbox
	jobs   *jobIndex
	state  *ruleState
	early  *earlyDuplicates // duplicates of events not yet evaluated

	commitMu sync.Mutex // one commit at a time: it owns mark and lastSweep
	mark     watermark
	swept    time.Time

	replayMu sync.Mutex // one replay at a time, so a dead letter is replayed once
	pace     pacer
	dead     atomic.Int64
	// changes counts the moves of work between the inbox and the job
	// index, so Stats can tell a consistent reading from one taken
	// across such a move.
	changes atomic.Uint64
}

// appendLog is what Local needs of the journal (a seam for tests that
// make writes fail).
type appendLog interface {
	Append(ctx context.Context, rec []byte) (uint64, error)
	Replay(after uint64, fn func(seq uint64, rec []byte) error) error
	Release(upTo uint64) error
	Size() int64
	Close() error
}

var _ Store = (*Local)(nil)

// Options tune a Local store.
type Options struct {
	// OnCommit observes each group commit of the journal (metrics).
	OnCommit func(records int, d time.Duration)
}

// journalRecord is an accepted event as the journal holds it, or a job's
// new state (a finish, a replayed dead letter: see unapplied.go).
type journalRecord struct {
	Event     *event.Event    `json:"event,omitempty"`
	DedupeKey string          `json:"dedupe_key,omitempty"`
	DedupeTTL time.Duration   `json:"dedupe_ttl,omitempty"`
	Job       json.RawMessage `json:"job,omitempty"`
}

// Open opens or creates the store in dir and recovers what a previous run
// left: accepted events not yet evaluated, identities, pending jobs.
func Open(dir string, o Options) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{OnCommit: o.OnCommit})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "livehook.db"), 0o600, &bolt.Options{
		Timeout: time.Second, // another livehook holds it: say so rather than hang
		// The free list is written with every commit (a page or two) so
		// that open reads it rather than walking every page of the
		// database to rebuild it, which made a large store's whole file
		// resident at start.
		FreelistType: bolt.FreelistMapType,
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
	u := newUnapplied()
	s := &Local{dir: dir, journal: j, db: db, unapplied: u,
		inbox: newInbox(), jobs: newJobIndex(db, u), state: newRuleState(), early: &earlyDuplicates{m: map[string]Summary{}}}
	s.saves = &saves{db: db, early: s.early}
	s.dedupe = newDedupe(s.firstOf)
	if err := s.recover(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.stop, s.applierDone = make(chan struct{}), make(chan struct{})
	go s.applyLoop()
	return s, nil
}

// recover rebuilds the in-memory state from the db and the journal.
// Pending jobs are not read: their due times are paged in as they are
// claimed.
func (s *Local) recover() error {
	if err := s.db.Update(indexPendingByDue); err != nil {
		return fmt.Errorf("index pending deliveries by due time: %w", err)
	}
	if err := indexAllEvents(s.db); err != nil {
		return fmt.Errorf("index events for listing: %w", err)
	}
	var applied uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		applied = readApplied(tx)
		s.dedupe.restore(func(yield func([]byte, int64) bool) {
			c := tx.Bucket(bucketDedupe).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if ns, key, ok := cutExpiry(k); ok && !yield(key, ns) {
					return
				}
			}
		})
		return s.state.load(tx.Bucket(bucketState))
	})
	if err != nil {
		return err
	}
	// Events accepted but not evaluated before the process ended: the
	// journal still has them. Job states journaled above the watermark
	// may not be applied: they are applied again, in journal order, so
	// each job ends at its last; one applied already is written again
	// over itself.
	var stored []uint64
	var states []*jobState
	applyStates := func() error {
		err := s.db.Update(func(tx *bolt.Tx) error { return updateJobs(tx, states) })
		states = states[:0]
		return err
	}
	err = s.journal.Replay(applied, func(seq uint64, rec []byte) error {
		var r journalRecord
		if err := json.Unmarshal(rec, &r); err != nil {
			return fmt.Errorf("journal record %d: %w", seq, err)
		}
		if r.Job != nil {
			st, err := decodeJobState(r.Job)
			if err != nil {
				return fmt.Errorf("journal record %d: not a job's state: %w", seq, err)
			}
			stored, states = append(stored, seq), append(states, st)
			if len(states) == applyBatch {
				return applyStates()
			}
			return nil
		}
		if r.Event == nil {
			return fmt.Errorf("journal record %d: neither an accepted event nor a job's state", seq)
		}
		if s.has(r.Event.ID) { // applied ahead of the watermark before the crash
			stored = append(stored, seq)
			return nil
		}
		f := &inflight{accepted: Accepted{Event: r.Event, DedupeKey: r.DedupeKey}, seq: seq, record: rec}
		if r.DedupeKey != "" {
			f.expires = r.Event.ReceivedAt.Add(r.DedupeTTL)
			s.dedupe.restoreJournaled(indexKey(r.DedupeKey), r.Event.ID, f.expires)
		}
		s.inbox.push(f)
		return nil
	})
	if err == nil && len(states) > 0 {
		err = applyStates()
	}
	if err != nil {
		return fmt.Errorf("recover the journal: %w", err)
	}
	s.mark.next = applied + 1
	s.mark.advance(stored)
	// The counts and the actions with pending jobs, as the job states
	// applied above left them.
	return s.db.View(func(tx *bolt.Tx) error {
		s.jobs.open(tx)
		s.dead.Store(int64(readCount(tx, keyDead)))
		return nil
	})
}

// Accept implements Store.
func (s *Local) Accept(ctx context.Context, in *Incoming) (Acceptance, error) {
	ev := in.Event
	var mine *claim
	key := indexKey(in.DedupeKey)
	if key != "" {
		c, first, dup, err := s.dedupe.claim(ctx, key, ev.ID, ev.ReceivedAt, ev.ReceivedAt.Add(in.DedupeTTL))
		if err != nil {
			return Acceptance{}, err
		}
		if dup {
			// Counted on the first copy; a count that cannot be saved
			// must not turn the retry away, which would only bring more.
			_ = s.saves.put([]duplicate{{id: first, at: ev.ReceivedAt}})
			return Acceptance{ID: first, Duplicate: true}, nil
		}
		mine = c
	}
	f, err := s.append(ctx, in)
	if mine != nil {
		s.dedupe.settle(key, mine, err == nil)
	}
	if err != nil {
		return Acceptance{}, fmt.Errorf("append event: %w", err)
	}
	s.inbox.push(f)
	s.changes.Add(1)
	return Acceptance{ID: ev.ID}, nil
}

func (s *Local) append(ctx context.Context, in *Incoming) (*inflight, error) {
	rec, err := encodeAccepted(in)
	if err != nil {
		return nil, err
	}
	// A client that hangs up mid-write must not cancel it: a record
	// written after its caller gave up would leave a hole in the journal
	// that the watermark could never pass.
	seq, err := s.journal.Append(context.WithoutCancel(ctx), rec)
	if err != nil {
		return nil, err
	}
	f := &inflight{accepted: Accepted{Event: in.Event, DedupeKey: in.DedupeKey}, seq: seq, record: rec}
	if in.DedupeKey != "" {
		f.expires = in.Event.ReceivedAt.Add(in.DedupeTTL)
	}
	return f, nil
}

// encodeAccepted is an accepted event's journal record: what
// json.Marshal makes of its journalRecord, without the reflection (see
// event.AppendJSON).
func encodeAccepted(in *Incoming) ([]byte, error) {
	rec, err := event.AppendJSON(append(make([]byte, 0, 2048), `{"event":`...), in.Event)
	if err != nil {
		return nil, err
	}
	if in.DedupeKey != "" {
		key, err := json.Marshal(in.DedupeKey)
		if err != nil {
			return nil, err
		}
		rec = append(append(rec, `,"dedupe_key":`...), key...)
	}
	if in.DedupeTTL != 0 {
		rec = strconv.AppendInt(append(rec, `,"dedupe_ttl":`...), int64(in.DedupeTTL), 10)
	}
	return append(rec, '}'), nil
}

// firstOf returns the id of the event accepted under dedupe key key whose
// identity expires at expires (Unix ns): the confirmation of a hit of the
// dedupe index, which remembers fingerprints and expiries.
func (s *Local) firstOf(key string, expires int64) (id string, ok bool) {
	_ = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDedupe).Get(appendExpiry(nil, expires, key))
		// An event the store no longer has (pruned) cannot be confirmed:
		// accepting the callback again is the safe side.
		if v != nil && tx.Bucket(bucketEvents).Get(v) != nil {
			id, ok = string(v), true
		}
		return nil
	})
	return id, ok
}

// maxIndexKey bounds the dedupe keys the index and the db hold as they
// are: a key is made of callback fields of any length, and bbolt refuses
// keys over 32 KiB (a longer one would fail every commit of its batch).
const maxIndexKey = 512

// indexKey is a dedupe key as the index and the dedupe bucket hold it: a
// long one by its SHA-256.
func indexKey(k string) string {
	if len(k) <= maxIndexKey {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Unevaluated implements Store.
func (s *Local) Unevaluated(ctx context.Context, max int) ([]*Accepted, error) {
	return s.inbox.take(ctx, max)
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

// putApplied records the journal position the db has everything up to.
func putApplied(tx *bolt.Tx, pos uint64) error {
	if pos <= readApplied(tx) {
		return nil
	}
	return tx.Bucket(bucketMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, pos))
}

// Commit implements Store: the events' outcomes, their jobs, their
// identities and the journal position they reach go in one bbolt
// transaction.
func (s *Local) Commit(ctx context.Context, evals []*Evaluation) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	fs := make([]*inflight, len(evals)) // nil for a timer's evaluation
	seqs := make([]uint64, 0, len(evals))
	var newest time.Time
	for i, e := range evals {
		if e.EventID == "" {
			continue
		}
		f, ok := s.inbox.lookup(e.EventID)
		if !ok {
			return fmt.Errorf("commit evaluations: event %s: %w", e.EventID, ErrNotTaken)
		}
		fs[i] = f
		seqs = append(seqs, f.seq)
		if at := f.accepted.Event.ReceivedAt; at.After(newest) {
			newest = at
		}
	}
	if err := s.state.check(evals); err != nil {
		return fmt.Errorf("commit evaluations: %w", err)
	}
	pos := s.mark.peek(seqs)
	var changes map[string]stateEntry
	early := map[string]Summary{} // duplicates counted before the events had summaries
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if changes, err = s.state.put(tx.Bucket(bucketState), evals); err != nil {
			return err
		}
		b := tx.Bucket(bucketEvents)
		b.FillPercent = appendOnlyFill
		dd := tx.Bucket(bucketDedupe)
		dd.FillPercent = appendOnlyFill
		var earlier []Shadow // shadow firings of events recorded before
		for i, e := range evals {
			f := fs[i]
			if f == nil {
				if err := putJobs(tx, e.Jobs); err != nil {
					return err
				}
				earlier = append(earlier, e.Shadow...)
				continue
			}
			rec := &EventRecord{Event: f.accepted.Event, Matched: e.Matched, Throttled: e.Throttled, Fed: e.Fed,
				Errors: e.Errors, DedupeKey: f.accepted.DedupeKey}
			for _, sh := range e.Shadow {
				if sh.EventID == e.EventID {
					rec.Shadow = append(rec.Shadow, sh)
				} else {
					earlier = append(earlier, sh)
				}
			}
			if rec.Matched == nil {
				rec.Matched = []string{}
			}
			if err := putEvent(b, rec, f.record); err != nil {
				return err
			}
			sum := s.early.take(rec.Event.ID)
			if sum.Duplicates > 0 {
				early[rec.Event.ID] = sum
			}
			// Its summary counts its new jobs from the start, rather than
			// being written again as each is put.
			for _, j := range e.Jobs {
				if j.EventID == rec.Event.ID {
					sum.Deliveries.count(j.State, 1)
				}
			}
			if err := indexEvent(tx, rec, sum); err != nil {
				return err
			}
			if err := putJobsEncoded(tx, e.Jobs, nil, rec.Event.ID); err != nil {
				return err
			}
			// Keyed by expiry first: new identities land at the end of the
			// bucket, whatever their keys, so a commit dirties few pages,
			// and expired ones are a prefix that pruning cuts off.
			if k := indexKey(f.accepted.DedupeKey); k != "" {
				if err := dd.Put(expiryKey(f.expires, k), []byte(rec.Event.ID)); err != nil {
					return err
				}
			}
		}
		if err := addShadow(b, earlier); err != nil {
			return err
		}
		return putApplied(tx, pos)
	})
	if err != nil {
		s.early.restore(early)
		return fmt.Errorf("commit evaluations: %w", err)
	}
	s.mark.advance(seqs)
	s.dedupe.committed(fs)
	s.state.apply(changes)
	// The events are in the db now: the journal need not keep them. A
	// failed release is not a failed commit: the next one releases again.
	_ = s.journal.Release(pos)
	// Jobs join the index before their events leave the inbox: see Stats.
	var jobs []*Job
	events := make(map[string]*event.Event, len(evals))
	for i, e := range evals {
		jobs = append(jobs, e.Jobs...)
		if fs[i] != nil {
			events[e.EventID] = fs[i].accepted.Event
		}
	}
	s.jobs.add(jobs, events)
	s.inbox.done(fs)
	s.changes.Add(1)
	if !newest.IsZero() && newest.Sub(s.swept) >= sweepEvery {
		s.swept = newest
		s.dedupe.sweep(newest)
	}
	return nil
}

// State implements Store.
func (s *Local) State(ctx context.Context, keys []string, now time.Time) (map[string]State, error) {
	return s.state.read(keys, now), nil
}

// DueTimers implements Store.
func (s *Local) DueTimers(ctx context.Context, now time.Time, max int) ([]StateEntry, time.Time, error) {
	due, next := s.state.takeDue(now, max)
	return due, next, nil
}

// ListState implements Store.
func (s *Local) ListState(ctx context.Context, prefix, after string, limit int) ([]StateEntry, error) {
	var out []StateEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = s.state.list(tx.Bucket(bucketState), prefix, after, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list state: %w", err)
	}
	return out, nil
}

// DropState implements Store.
func (s *Local) DropState(ctx context.Context, prefix string) (int, error) {
	// Under the commit lock: a commit checks the versions it read against
	// the entries this deletes.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var keys []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		keys, err = s.state.drop(tx.Bucket(bucketState), prefix)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("drop state %q: %w", prefix, err)
	}
	s.state.forget(keys)
	return len(keys), nil
}

// ClaimJobs implements Store. A job record, or the event of an event
// record, that cannot be read is left out, its lease ended, and named in
// the error; the jobs that could be read are claimed all the same. Only
// the event is read of an event record: the rest (its evaluation's
// outcome) is not the delivery's to need.
func (s *Local) ClaimJobs(ctx context.Context, c Claim) ([]Claimed, time.Time, error) {
	ids, next, err := s.jobs.claim(c)
	if err != nil {
		s.jobs.release(ids)
		return nil, next, fmt.Errorf("claim jobs: read due times: %w", err)
	}
	if len(ids) == 0 {
		return nil, next, nil
	}
	out := make([]Claimed, 0, len(ids))
	var dropped []string
	var errs []error
	// Looked up before the db is read: a state applied since is in the
	// db's view then.
	newer := s.unapplied.lookup(ids)
	fresh := s.jobs.takeFresh(ids)
	read := ids[:0:0]
	for _, id := range ids {
		if c, ok := fresh[id]; ok {
			out = append(out, c)
		} else {
			read = append(read, id)
		}
	}
	if len(read) == 0 {
		return out, next, nil
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		jobs, events := tx.Bucket(bucketJobs), tx.Bucket(bucketEvents)
		byEvent := map[string]*event.Event{}
		for _, id := range read {
			var j Job
			v, ok := newer[id]
			if !ok {
				v = jobs.Get([]byte(id))
			}
			if v == nil {
				dropped = append(dropped, id) // gone with its event: nothing to run
				continue
			}
			if err := json.Unmarshal(v, &j); err != nil {
				dropped, errs = append(dropped, id), append(errs, fmt.Errorf("job %s: %w", id, err))
				continue
			}
			if j.State != Pending {
				dropped = append(dropped, id) // finished since its due time was read: nothing to run
				continue
			}
			ev, ok := byEvent[j.EventID]
			if !ok {
				if v := events.Get([]byte(j.EventID)); v != nil {
					var err error
					if ev, err = event.UnmarshalStoredRecord(v); err != nil {
						dropped, errs = append(dropped, id), append(errs, fmt.Errorf("event %s of job %s: %w", j.EventID, id, err))
						continue
					}
				}
				byEvent[j.EventID] = ev
			}
			out = append(out, Claimed{Job: &j, Event: ev})
		}
		return nil
	})
	if err != nil {
		// Leases taken and not handed out expire, and the jobs are
		// claimed again.
		return nil, next, fmt.Errorf("claim jobs: %w", err)
	}
	s.jobs.release(dropped)
	if len(errs) > 0 {
		return out, next, fmt.Errorf("claim jobs: left out what cannot be read: %w", errors.Join(errs...))
	}
	return out, next, nil
}

// Finish implements Store. The new state is journaled, sharing the
// journal's flushes with other finishes and accepted events, and applied
// to the db later in a batch (see unapplied.go); the lease ends once it is
// journaled.
func (s *Local) Finish(ctx context.Context, owner string, j *Job) error {
	l := s.jobs.beginFinish(owner, j.ID)
	if l == nil {
		return fmt.Errorf("finish job %s: %w", j.ID, ErrLeaseLost)
	}
	err := s.record(ctx, j)
	s.jobs.endFinish(j.ID, l, err == nil, j.State == Pending, j.NextAt)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", j.ID, err)
	}
	if j.State == Dead {
		s.dead.Add(1)
	}
	s.changes.Add(1)
	return nil
}

// Wake implements Store.
func (s *Local) Wake() <-chan struct{} { return s.jobs.wake }

// ReplayJob implements Store.
func (s *Local) ReplayJob(ctx context.Context, id string, now time.Time) (*Job, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	j, err := s.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State != Dead {
		return nil, fmt.Errorf("job %s is %s: %w", id, j.State, ErrNotDead)
	}
	j.State, j.LastError, j.Since, j.Created, j.NextAt = Pending, "", len(j.Attempts), now, now
	// Journaled as a finish is, so that recovery, applying job states
	// again in journal order, ends the job here and not at its dead letter.
	if err := s.record(ctx, j); err != nil {
		return nil, fmt.Errorf("replay job %s: %w", id, err)
	}
	s.dead.Add(-1)
	s.jobs.add([]*Job{j}, nil)
	s.changes.Add(1)
	return j, nil
}

// ReplayEvent implements Store.
func (s *Local) ReplayEvent(ctx context.Context, id string, plan func(*event.Event, int) ([]*Job, error)) ([]*Job, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	d, err := s.Event(ctx, id)
	if err != nil {
		return nil, err
	}
	rec := d.EventRecord
	jobs, err := plan(rec.Event, rec.Replays+1)
	if err != nil {
		return nil, err
	}
	rec.Replays++
	err = s.db.Update(func(tx *bolt.Tx) error {
		return errors.Join(putJobs(tx, jobs), putEvent(tx.Bucket(bucketEvents), rec, nil))
	})
	if err != nil {
		return nil, fmt.Errorf("replay event %s: %w", id, err)
	}
	s.jobs.add(jobs, nil)
	s.changes.Add(1)
	return jobs, nil
}

// putJobs records jobs' state with the indexes of pending jobs (by due
// time, too) and of dead letters.
func putJobs(tx *bolt.Tx, jobs []*Job) error { return putJobsEncoded(tx, jobs, nil, "") }

// putJobsEncoded is putJobs with the jobs' JSON at hand (enc, in step with
// jobs, or nil), for the indexes' keys only are read from jobs. The
// summary of event counted, if named, counts its jobs among these already:
// it was indexed with them, in this transaction.
func putJobsEncoded(tx *bolt.Tx, jobs []*Job, enc [][]byte, counted string) error {
	if len(jobs) == 0 {
		return nil
	}
	pending, due, dead, all := tx.Bucket(bucketPending), tx.Bucket(bucketDue), tx.Bucket(bucketDead), tx.Bucket(bucketJobs)
	var dPending, dDead int64
	moved := map[string]*Deliveries{} // per event, what its jobs' moves change in its summary
	var order []string
	for i, j := range jobs {
		id := []byte(j.ID)
		d := moved[j.EventID]
		if d == nil {
			d = &Deliveries{}
			moved[j.EventID] = d
			order = append(order, j.EventID)
		}
		old := pending.Get(id)
		switch {
		case old != nil:
			dPending--
			d.count(Pending, -1)
		case dead.Get(id) != nil:
			dDead--
			d.count(Dead, -1)
		case all.Get(id) != nil:
			d.count(Delivered, -1)
		}
		d.count(j.State, 1)
		var err error
		if enc != nil {
			err = all.Put(id, enc[i])
		} else {
			err = putJSON(all, j.ID, j)
		}
		if err != nil {
			return err
		}
		if len(old) > 0 {
			if err := due.Delete(bytes.Clone(old)); err != nil {
				return err
			}
		}
		switch j.State {
		case Pending:
			dPending++
		case Dead:
			dDead++
		}
		switch j.State {
		case Pending:
			k := dueKey(j.Action, j.NextAt, j.ID)
			err = errors.Join(pending.Put(id, k), due.Put(k, nil), dead.Delete(id))
		case Dead:
			// Not nil: within the transaction, Get reads a nil value back
			// as no key, and a job written twice in one (recovery) would
			// not be seen leaving the dead letters.
			err = errors.Join(pending.Delete(id), dead.Put(id, []byte{}))
		default:
			err = errors.Join(pending.Delete(id), dead.Delete(id))
		}
		if err != nil {
			return err
		}
	}
	for _, ev := range order {
		d := moved[ev]
		if *d == (Deliveries{}) || ev == counted {
			continue
		}
		_, err := changeSummary(tx, ev, func(s *Summary) {
			s.Deliveries.Pending += d.Pending
			s.Deliveries.Delivered += d.Delivered
			s.Deliveries.Dead += d.Dead
		})
		if err != nil {
			return err
		}
	}
	return errors.Join(addCount(tx, keyPending, dPending), addCount(tx, keyDead, dDead))
}

// addCount adds d to one of the counts kept in the meta bucket, so that
// opening a store need not count (and so read) whole buckets.
func addCount(tx *bolt.Tx, key []byte, d int64) error {
	if d == 0 {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	n := int64(0)
	if v := meta.Get(key); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return meta.Put(key, binary.BigEndian.AppendUint64(nil, uint64(n+d)))
}

// readCount reads a count kept in the meta bucket.
func readCount(tx *bolt.Tx, key []byte) int {
	if v := tx.Bucket(bucketMeta).Get(key); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

// indexPendingByDue fills the due bucket from the pending jobs of a store
// written before it existed (their pending entries hold no due key).
func indexPendingByDue(tx *bolt.Tx) error {
	pending, due, jobs := tx.Bucket(bucketPending), tx.Bucket(bucketDue), tx.Bucket(bucketJobs)
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyPending) == nil { // counted once, then kept by putJobs
		if err := errors.Join(
			meta.Put(keyPending, binary.BigEndian.AppendUint64(nil, uint64(pending.Stats().KeyN))),
			meta.Put(keyDead, binary.BigEndian.AppendUint64(nil, uint64(tx.Bucket(bucketDead).Stats().KeyN)))); err != nil {
			return err
		}
	}
	if k, _ := due.Cursor().First(); k != nil {
		return nil
	}
	var todo []*Job
	err := pending.ForEach(func(k, v []byte) error {
		if len(v) > 0 {
			return nil
		}
		var j Job
		if err := json.Unmarshal(jobs.Get(k), &j); err != nil {
			return fmt.Errorf("job %s: %w", k, err)
		}
		todo = append(todo, &j)
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range todo {
		k := dueKey(j.Action, j.NextAt, j.ID)
		if err := errors.Join(pending.Put([]byte(j.ID), k), due.Put(k, nil)); err != nil {
			return err
		}
	}
	return nil
}

// putEvent stores rec as JSON. With its journal record at hand, it splices
// the record's bytes (the event and its dedupe key) into the encoded
// outcome rather than encoding the event again, which was most of what
// committing an event cost: both are JSON objects with no key in common,
// so the result reads back as one EventRecord.
// addShadow records shadow firings with the events they name, which are
// in the bucket already. An event pruned meanwhile takes none: the firing
// was logged and counted.
func addShadow(b *bolt.Bucket, shadow []Shadow) error {
	for _, sh := range shadow {
		v := b.Get([]byte(sh.EventID))
		if v == nil {
			continue
		}
		var rec EventRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("event %s: %w", sh.EventID, err)
		}
		rec.Shadow = append(rec.Shadow, sh)
		if err := putEvent(b, &rec, nil); err != nil {
			return err
		}
	}
	return nil
}

func putEvent(b *bolt.Bucket, rec *EventRecord, journalled []byte) error {
	if rec.Summary != (Summary{}) { // the summary bucket's, not the record's
		r := *rec
		r.Summary = Summary{}
		rec = &r
	}
	if len(journalled) < 2 || journalled[0] != '{' {
		return putJSON(b, rec.Event.ID, rec)
	}
	outcome, err := json.Marshal(struct {
		*EventRecord
		Event     json.RawMessage `json:"event,omitempty"`      // left out: in the journal record
		DedupeKey string          `json:"dedupe_key,omitempty"` // likewise
	}{EventRecord: rec})
	if err != nil {
		return err
	}
	// outcome always has "matched", so it is never the empty object.
	v := make([]byte, 0, len(outcome)+len(journalled))
	v = append(append(append(v, outcome[:len(outcome)-1]...), ','), journalled[1:]...)
	return b.Put([]byte(rec.Event.ID), v)
}

func expiryKey(expires time.Time, key string) []byte {
	return appendExpiry(nil, expiryNs(expires), key)
}

func appendExpiry(b []byte, ns int64, key string) []byte {
	return append(binary.BigEndian.AppendUint64(b, uint64(ns)), key...)
}

// expiryNs is an expiry as Unix ns, clamped into what the keys hold
// (meaningless outside 1678–2262 anyway).
func expiryNs(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func splitExpiryKey(k []byte) (time.Time, string) {
	ns, key, ok := cutExpiry(k)
	if !ok {
		return time.Time{}, ""
	}
	return time.Unix(0, ns), string(key)
}

// cutExpiry is splitExpiryKey without allocating: the expiry as Unix ns
// and the key's bytes, which alias k.
func cutExpiry(k []byte) (ns int64, key []byte, ok bool) {
	if len(k) < 8 {
		return 0, nil, false
	}
	return int64(binary.BigEndian.Uint64(k)), k[8:], true
}

// Event implements Store.
func (s *Local) Event(ctx context.Context, id string) (*EventDetail, error) {
	d := &EventDetail{EventRecord: &EventRecord{}, Jobs: []*Job{}}
	if err := s.settle(); err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEvents).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("event %s: %w", id, ErrNotFound)
		}
		if err := json.Unmarshal(v, d.EventRecord); err != nil {
			return fmt.Errorf("event %s: %w", id, err)
		}
		withSummary(tx, d.EventRecord)
		c := tx.Bucket(bucketJobs).Cursor()
		prefix := []byte(id + ".")
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("job %s: %w", k, err)
			}
			d.Jobs = append(d.Jobs, &j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Job implements Store.
func (s *Local) Job(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := s.settle(); err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("job %s: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &j)
	})
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// Events implements Store through the listing's indexes (eventindex.go).
func (s *Local) Events(ctx context.Context, f EventFilter) ([]*EventRecord, error) {
	out := []*EventRecord{}
	if err := s.settle(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		for _, id := range listEvents(tx, f) {
			var rec EventRecord
			if err := json.Unmarshal(events.Get(id), &rec); err != nil || rec.Event == nil {
				return fmt.Errorf("event %s: not an event record: %v", id, err)
			}
			withSummary(tx, &rec)
			out = append(out, &rec)
		}
		return nil
	})
	return out, err
}

// before places c on the last key below cursor, or the last key of all
// without one.
func before(c *bolt.Cursor, cursor string) ([]byte, []byte) {
	if cursor == "" {
		return c.Last()
	}
	k, _ := c.Seek([]byte(cursor))
	if k == nil {
		return c.Last()
	}
	return c.Prev()
}

// DeadLetters implements Store.
func (s *Local) DeadLetters(ctx context.Context, f DeadFilter) ([]*Job, error) {
	out := []*Job{}
	if err := s.settle(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketDead).Cursor()
		for k, _ := before(c, f.Before); k != nil && len(out) < f.Limit; k, _ = c.Prev() {
			var j Job
			if err := json.Unmarshal(jobs.Get(k), &j); err != nil {
				return fmt.Errorf("job %s: %w", k, err)
			}
			if f.Selects(&j) {
				out = append(out, &j)
			}
		}
		return nil
	})
	return out, err
}

// Prune implements Store.
func (s *Local) Prune(ctx context.Context, cutoff, now time.Time) (int, error) {
	pruned := 0
	if err := s.settle(); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
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
			var rec EventRecord
			if err := json.Unmarshal(events.Get(k), &rec); err == nil && rec.Event != nil {
				if err := unindexEvent(tx, &rec); err != nil {
					return err
				}
			}
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
	if err != nil {
		return pruned, err
	}
	// Retries of events that were pruned before they had a summary.
	s.early.forget(func(id string) bool { _, ok := s.inbox.keyOf(id); return !ok })
	// Under the commit lock: a commit checks the versions it read against
	// the entries this deletes.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var forget func()
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		forget, err = s.state.prune(tx.Bucket(bucketState), now)
		return err
	})
	if err == nil {
		forget()
	}
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

// Stats implements Store.
func (s *Local) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	// Work moves from the inbox to the job index (a commit) and back (a
	// delivery's follow-up events): a reading is kept only if no move
	// happened while it was taken, so "nothing left" is never a reading
	// taken across one.
	for range 100 {
		before := s.changes.Load()
		st.Unevaluated, st.Pending = s.inbox.len(), s.jobs.count()
		if s.changes.Load() == before {
			break
		}
	}
	st.Dead = int(s.dead.Load())
	st.StateKeys, st.Timers = s.state.counts()
	if fi, err := os.Stat(filepath.Join(s.dir, "livehook.db")); err == nil {
		st.Bytes = fi.Size()
	}
	st.Bytes += s.journal.Size()
	return st, nil
}

// Close implements Store. Job states still waiting are applied; if that
// fails, the journal still has them for the next open.
func (s *Local) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.applierDone
			_ = s.applyJobs()
		}
	})
	return errors.Join(s.journal.Close(), s.db.Close())
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}
