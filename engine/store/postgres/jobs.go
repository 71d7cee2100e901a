package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// ClaimJobs implements store.Store. Claims run one at a time across every
// process, under an advisory lock held by the claim's transaction: the
// live leases it counts against an action's limit are then all there
// are, so delivery.concurrency holds across processes. A claim is short
// (a few index lookups per action), so the lock is held briefly.
//
// A lease is live until its time, or until the process that took it is
// no longer seen (the grace period), whichever comes first: the jobs a
// dead process was running pass to the others without waiting out a
// lease long enough for the slowest delivery.
func (s *Store) ClaimJobs(ctx context.Context, c store.Claim) ([]store.Claimed, time.Time, error) {
	var out []store.Claimed
	var bad []error
	var next time.Time
	err := s.claim(ctx, &s.unsure.jobs, func(tx pgx.Tx, took func(undo)) error {
		out, bad, next = nil, nil, time.Time{}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockSpace, lockKey(s.schema, "claim")); err != nil {
			return err
		}
		// Each action with pending jobs, and its live leases. The actions
		// are found by skipping through the due index, one probe each.
		rows, err := tx.Query(ctx, `WITH RECURSIVE acts(action) AS (
				(SELECT action FROM livehook_jobs WHERE state = 'pending' ORDER BY action LIMIT 1)
				UNION ALL
				SELECT (SELECT j.action FROM livehook_jobs j WHERE j.state = 'pending' AND j.action > a.action ORDER BY j.action LIMIT 1)
				FROM acts a WHERE a.action IS NOT NULL)
			SELECT a.action, (SELECT count(*) FROM livehook_jobs h
				WHERE h.action = a.action AND h.lease_until > $1 AND h.lease_process IN `+liveOwners("$2")+`)
			FROM acts a WHERE a.action IS NOT NULL`, c.Now, s.opts.Grace.Seconds())
		if err != nil {
			return err
		}
		var actions [][]byte
		var free []int32
		err = forEach(rows, func(r pgx.Rows) error {
			var action []byte
			var held int
			if err := r.Scan(&action, &held); err != nil {
				return err
			}
			limit, listed := c.Limits[string(action)]
			if !listed {
				limit = c.Other
			}
			if n := limit - held; n > 0 {
				actions, free = append(actions, action), append(free, int32(n))
			}
			return nil
		})
		if err != nil {
			return err
		}
		taken := map[string]int32{}
		if len(actions) > 0 {
			rows, err := tx.Query(ctx, `WITH pick AS (
					SELECT c.id FROM unnest($1::bytea[], $2::int[]) AS s(action, free)
					CROSS JOIN LATERAL (
						SELECT j.id FROM livehook_jobs j
						WHERE j.state = 'pending' AND j.action = s.action AND j.next_at <= $3
							AND (j.lease_until IS NULL OR j.lease_until <= $3 OR j.lease_process NOT IN `+liveOwners("$7")+`)
						ORDER BY j.next_at, j.id LIMIT s.free
						FOR UPDATE SKIP LOCKED) c),
				leased AS (
					UPDATE livehook_jobs j SET lease_owner = $4, lease_until = $5, lease_process = $6
					FROM pick WHERE j.id = pick.id
					RETURNING j.id, j.action, j.event_id, j.next_at, j.job)
				SELECT l.id, l.action, l.job, e.event FROM leased l LEFT JOIN livehook_events e ON e.id = l.event_id
				ORDER BY l.next_at, l.id`, actions, free, c.Now, c.Owner, c.Now.Add(c.Lease), s.owner, s.opts.Grace.Seconds())
			if err != nil {
				return err
			}
			byEvent := map[string]*event.Event{}
			var ids [][]byte
			err = forEach(rows, func(r pgx.Rows) error {
				var id, action, body, evBody []byte
				if err := r.Scan(&id, &action, &body, &evBody); err != nil {
					return err
				}
				ids = append(ids, id)
				taken[string(action)]++
				var j store.Job
				if err := json.Unmarshal(body, &j); err != nil {
					// Left out and left leased: it is tried again when the
					// lease ends, and the error says which.
					bad = append(bad, fmt.Errorf("job %s: %w", id, err))
					return nil
				}
				ev, seen := byEvent[j.EventID]
				if !seen && evBody != nil {
					ev = &event.Event{}
					if err := event.UnmarshalStored(evBody, ev); err != nil {
						bad = append(bad, fmt.Errorf("event %s of job %s: %w", j.EventID, id, err))
						return nil
					}
					byEvent[j.EventID] = ev
				}
				out = append(out, store.Claimed{Job: &j, Event: ev})
				return nil
			})
			took(undo{`UPDATE livehook_jobs SET lease_owner = NULL, lease_process = NULL, lease_until = NULL
				WHERE id = ANY($1) AND lease_owner = $2 AND lease_until = $3`, []any{ids, c.Owner, c.Now.Add(c.Lease)}})
			if err != nil {
				return err
			}
		}
		// The next time the same claim would take something: a job of an
		// action with slots left coming due, or a lease ending. Another
		// process's lease may also end with that process: it is looked at
		// again within the grace period.
		var open [][]byte
		for i, a := range actions {
			if free[i] > taken[string(a)] {
				open = append(open, a)
			}
		}
		var at *time.Time
		err = tx.QueryRow(ctx, `SELECT least(
				(SELECT min(n.next_at) FROM unnest($1::bytea[]) AS s(action) CROSS JOIN LATERAL (
					SELECT j.next_at FROM livehook_jobs j
					WHERE j.state = 'pending' AND j.action = s.action
						AND (j.lease_until IS NULL OR j.lease_until <= $2 OR j.lease_process NOT IN `+liveOwners("$3")+`)
					ORDER BY j.next_at LIMIT 1) n),
				(SELECT min(CASE WHEN lease_process = $4 THEN lease_until ELSE least(lease_until, $5) END)
					FROM livehook_jobs WHERE lease_until > $2 AND lease_process IN `+liveOwners("$3")+`))`,
			open, c.Now, s.opts.Grace.Seconds(), s.owner, c.Now.Add(s.opts.Grace)).Scan(&at)
		if err != nil {
			return err
		}
		if at != nil {
			next = *at
		}
		return nil
	})
	if err != nil {
		// Nothing was leased: the transaction is undone whole.
		return nil, time.Time{}, fmt.Errorf("claim jobs: %w", err)
	}
	if len(bad) > 0 {
		return out, next, fmt.Errorf("claim jobs: left out what cannot be read: %w", errors.Join(bad...))
	}
	return out, next, nil
}

// Finish implements store.Store: the job is written only while owner
// holds its lease. A claim that took the job over after the lease ended
// holds the row's lock or has changed its owner, so the update waits for
// it and then finds the lease lost. A retry of a Finish whose reply was
// lost (the connection cut after the commit) finds the job as it wrote
// it, unleased, and succeeds.
func (s *Store) Finish(ctx context.Context, owner string, j *store.Job) error {
	body, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", j.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE livehook_jobs SET state = $2, next_at = $3, job = $4, lease_owner = NULL, lease_process = NULL, lease_until = NULL
		WHERE id = $1 AND (lease_owner = $5 OR (lease_owner IS NULL AND job = $4))`, []byte(j.ID), j.State, j.NextAt, body, owner)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", j.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish job %s: %w", j.ID, store.ErrLeaseLost)
	}
	s.jobsChanged() // a slot is free, and the job may be due again
	return nil
}

// Wake implements store.Store: this process's own changes, the other
// processes' notifications, and a poll while they cannot be heard.
func (s *Store) Wake() <-chan struct{} { return s.sig.jobs }

// jobsChanged wakes this process's runner, and the others.
func (s *Store) jobsChanged() {
	signal(s.sig.jobs)
	s.notes.notify(s.chans.jobs)
}

// ReplayJob implements store.Store.
func (s *Store) ReplayJob(ctx context.Context, id string, now time.Time) (*store.Job, error) {
	var j store.Job
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var body []byte
		err := tx.QueryRow(ctx, `SELECT job FROM livehook_jobs WHERE id = $1 FOR UPDATE`, []byte(id)).Scan(&body)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("job %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		j = store.Job{}
		if err := json.Unmarshal(body, &j); err != nil {
			return fmt.Errorf("job %s: %w", id, err)
		}
		if j.State != store.Dead {
			return fmt.Errorf("job %s is %s: %w", id, j.State, store.ErrNotDead)
		}
		j.State, j.LastError, j.Since, j.Created, j.NextAt = store.Pending, "", len(j.Attempts), now, now
		return putJobs(ctx, tx, []*store.Job{&j})
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotDead) {
			return nil, err
		}
		return nil, fmt.Errorf("replay job %s: %w", id, err)
	}
	s.jobsChanged()
	return &j, nil
}

// ReplayEvent implements store.Store. The event's row is locked while the
// replay is planned, so two replays of one event are numbered apart.
func (s *Store) ReplayEvent(ctx context.Context, id string, plan func(*event.Event, int) ([]*store.Job, error)) ([]*store.Job, error) {
	var jobs []*store.Job
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var body []byte
		var replays int
		err := tx.QueryRow(ctx, `SELECT event, replays FROM livehook_events WHERE id = $1 FOR UPDATE`, id).Scan(&body, &replays)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("event %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var ev event.Event
		if err := event.UnmarshalStored(body, &ev); err != nil {
			return fmt.Errorf("event %s: %w", id, err)
		}
		if jobs, err = plan(&ev, replays+1); err != nil {
			return &planError{err}
		}
		if err := putJobs(ctx, tx, jobs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE livehook_events SET replays = $2 WHERE id = $1`, id, replays+1)
		return err
	})
	var pe *planError
	switch {
	case errors.As(err, &pe):
		return nil, pe.err
	case errors.Is(err, store.ErrNotFound):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("replay event %s: %w", id, err)
	}
	s.jobsChanged()
	return jobs, nil
}

// planError carries a replay plan's own error out of the transaction,
// unwrapped, as the caller gave it.
type planError struct{ err error }

func (e *planError) Error() string { return e.err.Error() }
func (e *planError) Unwrap() error { return e.err }

// putJobs writes jobs, each as a whole, with no lease; of two with one id
// the later wins, as if written one after the other.
func putJobs(ctx context.Context, tx pgx.Tx, jobs []*store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	last := map[string]int{}
	for i, j := range jobs {
		last[j.ID] = i
	}
	var ids, actions, bodies [][]byte
	var events, states []string
	var nexts []time.Time
	for i, j := range jobs {
		if last[j.ID] != i {
			continue
		}
		body, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("job %s: %w", j.ID, err)
		}
		ids, actions, bodies = append(ids, []byte(j.ID)), append(actions, []byte(j.Action)), append(bodies, body)
		events, states, nexts = append(events, j.EventID), append(states, j.State), append(nexts, j.NextAt)
	}
	_, err := tx.Exec(ctx, `INSERT INTO livehook_jobs (id, event_id, action, state, next_at, job)
		SELECT * FROM unnest($1::bytea[], $2::text[], $3::bytea[], $4::text[], $5::timestamptz[], $6::bytea[])
		ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id, action = excluded.action, state = excluded.state,
			next_at = excluded.next_at, job = excluded.job, lease_owner = NULL, lease_process = NULL, lease_until = NULL`,
		ids, events, actions, states, nexts, bodies)
	return err
}

// forEach calls fn for each row and closes rows.
func forEach(rows pgx.Rows, fn func(pgx.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
