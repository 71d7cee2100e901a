package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A finished delivery costs what an accepted event costs: one record in
// the journal's shared flush. Its new state waits in unapplied until the
// applier writes many of them in one bbolt commit, as the ingester does
// with accepted events; the watermark passes their records once they are
// applied, and recovery applies again the ones above it. Reads that list
// or return job state apply what is waiting first (settle), so they see
// every Finish that returned; claims, on the delivery path, read the
// waiting states instead (see ClaimJobs and jobIndex.page).

const (
	// applyPace spaces the applies while deliveries keep up: each bbolt
	// commit costs two fsyncs on the disk the journal flushes on (see
	// the ingester's pace).
	applyPace = 50 * time.Millisecond
	// applyBatch is a backlog: applied at once, without waiting out the
	// pace.
	applyBatch = 4096
	// maxUnapplied bounds the job states held in memory: a finish that
	// finds this many waiting (applies failing, or far behind) applies
	// them itself before journaling its own.
	maxUnapplied = 16384
)

// unapplied holds the job states journaled and not yet in bbolt: the
// newest of each job, and the journal positions of every record, which
// the watermark passes once they are applied.
type unapplied struct {
	mu   sync.Mutex
	jobs map[string]*jobState // by job id
	seqs []uint64
	wake chan struct{} // coalesced: something to apply
	full chan struct{} // coalesced: a batch is worth applying at once
}

// jobState is a job's journaled state: its encoding (the journal record's
// job) and, decoded from it, what the indexes are keyed by.
type jobState struct {
	job  *Job // its keys only: ID, EventID, Action, State, NextAt
	data []byte
}

func newUnapplied() *unapplied {
	return &unapplied{jobs: map[string]*jobState{}, wake: make(chan struct{}, 1), full: make(chan struct{}, 1)}
}

// signal sends on a coalescing channel (buffered, of one) without waiting.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// add holds a journaled state until it is applied.
func (u *unapplied) add(seq uint64, st *jobState) {
	u.mu.Lock()
	u.jobs[st.job.ID] = st
	u.seqs = append(u.seqs, seq)
	n := len(u.seqs)
	u.mu.Unlock()
	signal(u.wake)
	if n >= applyBatch {
		signal(u.full)
	}
}

// len counts the jobs whose states are waiting or being applied: an
// apply in progress has taken their positions, but they are forgotten
// only once it has committed.
func (u *unapplied) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.jobs)
}

// lookup returns the waiting encodings of the jobs of ids that have one.
func (u *unapplied) lookup(ids []string) map[string][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out map[string][]byte
	for _, id := range ids {
		if st, ok := u.jobs[id]; ok {
			if out == nil {
				out = map[string][]byte{}
			}
			out[id] = st.data
		}
	}
	return out
}

// dueOf returns the waiting states of action's jobs: their due times for
// those still pending, nil for the others.
func (u *unapplied) dueOf(action string) map[string]*dueJob {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out map[string]*dueJob
	for id, st := range u.jobs {
		if st.job.Action != action {
			continue
		}
		if out == nil {
			out = map[string]*dueJob{}
		}
		out[id] = nil
		if st.job.State == Pending {
			out[id] = &dueJob{at: st.job.NextAt.UnixNano(), id: id}
		}
	}
	return out
}

// applying is what one apply takes: the states waiting then and every
// record's position.
type applying struct {
	states []*jobState
	seqs   []uint64
}

func (u *unapplied) take() *applying {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seqs) == 0 {
		return nil
	}
	b := &applying{seqs: u.seqs, states: make([]*jobState, 0, len(u.jobs))}
	for _, st := range u.jobs {
		b.states = append(b.states, st)
	}
	u.seqs = nil
	return b
}

// done forgets the applied states, except those a newer finish replaced
// meanwhile.
func (u *unapplied) done(b *applying) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, st := range b.states {
		if u.jobs[st.job.ID] == st {
			delete(u.jobs, st.job.ID)
		}
	}
}

// untake gives back the positions of a failed apply.
func (u *unapplied) untake(b *applying) {
	u.mu.Lock()
	u.seqs = append(b.seqs, u.seqs...)
	u.mu.Unlock()
	signal(u.wake) // tried again after the pace
}

// encodeJobState is a job's state as the journal records it, with the
// state it holds for the applier.
func encodeJobState(j *Job) ([]byte, *jobState, error) {
	data, err := json.Marshal(j)
	if err != nil {
		return nil, nil, err
	}
	rec := make([]byte, 0, len(data)+8)
	rec = append(append(append(rec, `{"job":`...), data...), '}')
	return rec, newJobState(j, data), nil
}

// newJobState holds data, j's encoding, with the keys of j the indexes
// are keyed by.
func newJobState(j *Job, data []byte) *jobState {
	return &jobState{job: &Job{ID: j.ID, EventID: j.EventID, Action: j.Action, State: j.State, NextAt: j.NextAt}, data: data}
}

// decodeJobState reads a job's state back from its journal record's job.
func decodeJobState(data []byte) (*jobState, error) {
	var j Job
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, err
	}
	if j.ID == "" {
		return nil, fmt.Errorf("no job id")
	}
	return newJobState(&j, data), nil
}

// record journals a job's new state and holds it for the applier: once
// it returns nil, the state survives a crash and every read sees it.
func (s *Local) record(ctx context.Context, j *Job) error {
	if s.unapplied.len() >= maxUnapplied {
		if err := s.applyJobs(); err != nil {
			return fmt.Errorf("apply finished deliveries: %w", err)
		}
	}
	rec, st, err := encodeJobState(j)
	if err != nil {
		return err
	}
	// Not cancelled with its caller, as an accepted event's (see append).
	seq, err := s.journal.Append(context.WithoutCancel(ctx), rec)
	if err != nil {
		return err
	}
	s.unapplied.add(seq, st)
	return nil
}

// settle applies the job states waiting, or waits for the apply in
// progress (it holds commitMu), so that a read of the db sees every
// finish that returned.
func (s *Local) settle() error {
	if s.unapplied.len() == 0 {
		return nil
	}
	if err := s.applyJobs(); err != nil {
		return fmt.Errorf("apply finished deliveries: %w", err)
	}
	return nil
}

// applyJobs writes the waiting job states in one bbolt commit, with the
// journal position they let the watermark reach.
func (s *Local) applyJobs() error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	b := s.unapplied.take()
	if b == nil {
		return nil
	}
	pos := s.mark.peek(b.seqs)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := updateJobs(tx, b.states); err != nil {
			return err
		}
		return putApplied(tx, pos)
	})
	if err != nil {
		s.unapplied.untake(b)
		return err
	}
	s.mark.advance(b.seqs)
	s.unapplied.done(b)
	_ = s.journal.Release(pos) // as in Commit: the next apply releases again
	return nil
}

// updateJobs writes job states in order over the jobs' stored ones. A job
// the db no longer has (its dead letter deleted, its event pruned) takes
// none: recovery applies again states journaled before such a deletion.
func updateJobs(tx *bolt.Tx, states []*jobState) error {
	all := tx.Bucket(bucketJobs)
	jobs := make([]*Job, 0, len(states))
	enc := make([][]byte, 0, len(states))
	for _, st := range states {
		if all.Get([]byte(st.job.ID)) == nil {
			continue
		}
		jobs, enc = append(jobs, st.job), append(enc, st.data)
	}
	return putJobsEncoded(tx, jobs, enc, "")
}

// applyLoop applies the waiting job states until Close: at once when a
// backlog waits, else at most every applyPace.
func (s *Local) applyLoop() {
	defer close(s.applierDone)
	var last time.Time
	for {
		select {
		case <-s.unapplied.wake:
		case <-s.stop:
			return
		}
		if wait := applyPace - time.Since(last); wait > 0 && s.unapplied.len() < applyBatch {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.unapplied.full:
			case <-s.stop:
				t.Stop()
				return
			}
			t.Stop()
		}
		last = time.Now()
		// A failed apply keeps its states waiting: untake wakes this
		// loop to try again, and reads report the error meanwhile.
		_ = s.applyJobs()
	}
}
