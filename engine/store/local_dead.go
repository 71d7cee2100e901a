package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// DeadGroups implements Store.
func (s *Local) DeadGroups(ctx context.Context, f DeadFilter) ([]DeadGroup, error) {
	var out []DeadGroup
	if err := s.settle(); err != nil {
		return nil, fmt.Errorf("group dead letters: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		var bad error
		out = groupDead(func(yield func(*Job) bool) {
			c := tx.Bucket(bucketDead).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				var j Job
				if err := json.Unmarshal(jobs.Get(k), &j); err != nil {
					bad = fmt.Errorf("job %s: %w", k, err)
					return
				}
				if f.Selects(&j) && !yield(&j) {
					return
				}
			}
		})
		return bad
	})
	if err != nil {
		return nil, fmt.Errorf("group dead letters: %w", err)
	}
	return out, nil
}

// DeleteDeadLetters implements Store. It takes the replay lock, so a job
// is either replayed or deleted, never both.
func (s *Local) DeleteDeadLetters(ctx context.Context, ids []string) (int, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	if err := s.settle(); err != nil {
		return 0, fmt.Errorf("delete dead letters: %w", err)
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		jobs, dead := tx.Bucket(bucketJobs), tx.Bucket(bucketDead)
		n = 0
		for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
			k := []byte(id)
			if dead.Get(k) == nil {
				continue
			}
			var j Job
			if err := json.Unmarshal(jobs.Get(k), &j); err != nil {
				return fmt.Errorf("job %s: %w", id, err)
			}
			if err := errors.Join(jobs.Delete(k), dead.Delete(k)); err != nil {
				return err
			}
			// Its event no longer has this dead letter: its outcome moves.
			if _, err := changeSummary(tx, j.EventID, func(s *Summary) { s.Deliveries.Dead-- }); err != nil {
				return err
			}
			n++
		}
		return addCount(tx, keyDead, -int64(n))
	})
	if err != nil {
		return 0, fmt.Errorf("delete dead letters: %w", err)
	}
	s.dead.Add(-int64(n))
	return n, nil
}

// OldestPending implements Store. Pending jobs are keyed by id, and an
// id begins with its event's ULID, whose time is at or before the job's
// creation (a job is planned, or replayed, after its event arrived): the
// scan in id order stops at the first job whose event is younger than
// the oldest creation found, so it reads the jobs of the events older
// than the answer, not every pending job.
func (s *Local) OldestPending(ctx context.Context) (*Job, error) {
	var oldest *Job
	if err := s.settle(); err != nil {
		return nil, fmt.Errorf("oldest pending job: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketPending).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if oldest != nil && len(k) >= ulid.EncodedSize {
				if id, err := ulid.ParseStrict(string(k[:ulid.EncodedSize])); err == nil && ulid.Time(id.Time()).After(oldest.Created) {
					break
				}
			}
			var j Job
			if err := json.Unmarshal(jobs.Get(k), &j); err != nil {
				return fmt.Errorf("job %s: %w", k, err)
			}
			if oldest == nil || j.Created.Before(oldest.Created) {
				oldest = &j
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("oldest pending job: %w", err)
	}
	return oldest, nil
}
