package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

const eventColumns = `id, event, dedupe_key, matched, outcome, replays, shadow, pending, delivered, dead, duplicates, last_duplicate`

func scanEvent(row pgx.Row) (*store.EventRecord, error) {
	var id string
	var body, key, out []byte
	var matched, shadow [][]byte
	var replays int
	var sum store.Summary
	var last *time.Time
	if err := row.Scan(&id, &body, &key, &matched, &out, &replays, &shadow,
		&sum.Deliveries.Pending, &sum.Deliveries.Delivered, &sum.Deliveries.Dead, &sum.Duplicates, &last); err != nil {
		return nil, err
	}
	sum.Outcome = sum.Deliveries.Outcome()
	if last != nil {
		sum.LastDuplicate = last.UTC()
	}
	rec := &store.EventRecord{DedupeKey: string(key), Replays: replays, Matched: make([]string, len(matched)), Summary: sum}
	for i, m := range matched {
		rec.Matched[i] = string(m)
	}
	rec.Event = &event.Event{}
	if err := event.UnmarshalStored(body, rec.Event); err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	var o outcome
	if err := json.Unmarshal(out, &o); err != nil {
		return nil, fmt.Errorf("event %s: outcome: %w", id, err)
	}
	rec.Throttled, rec.Fed, rec.Errors = o.Throttled, o.Fed, o.Errors
	for _, b := range shadow {
		var sh store.Shadow
		if err := json.Unmarshal(b, &sh); err != nil {
			return nil, fmt.Errorf("event %s: shadow record: %w", id, err)
		}
		rec.Shadow = append(rec.Shadow, sh)
	}
	return rec, nil
}

func scanJob(row pgx.Row) (*store.Job, error) {
	var id, body []byte
	if err := row.Scan(&id, &body); err != nil {
		return nil, err
	}
	var j store.Job
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	return &j, nil
}

// Event implements store.Store.
func (s *Store) Event(ctx context.Context, id string) (*store.EventDetail, error) {
	var d *store.EventDetail
	// One snapshot for the event and its jobs.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rec, err := scanEvent(tx.QueryRow(ctx, `SELECT `+eventColumns+` FROM livehook_events WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("event %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, job FROM livehook_jobs WHERE event_id = $1 ORDER BY id`, id)
		if err != nil {
			return err
		}
		d = &store.EventDetail{EventRecord: rec, Jobs: []*store.Job{}}
		return forEach(rows, func(r pgx.Rows) error {
			j, err := scanJob(r)
			if err == nil {
				d.Jobs = append(d.Jobs, j)
			}
			return err
		})
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("read event %s: %w", id, err)
	}
	return d, nil
}

// Job implements store.Store.
func (s *Store) Job(ctx context.Context, id string) (*store.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT id, job FROM livehook_jobs WHERE id = $1`, []byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	return j, nil
}

// Events implements store.Store. Event ids are ULIDs, so id order is
// time order.
func (s *Store) Events(ctx context.Context, f store.EventFilter) ([]*store.EventRecord, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Before != "" {
		where = append(where, "id < "+arg(f.Before))
	}
	if !f.To.IsZero() {
		where = append(where, "id < "+arg(store.FirstIDAt(f.To)))
	}
	if !f.From.IsZero() {
		where = append(where, "id >= "+arg(store.FirstIDAt(f.From)))
	}
	if f.Source != "" {
		where = append(where, "source = "+arg(f.Source))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg([]byte(f.Kind)))
	}
	if f.Stream != "" {
		lo, hi := prefixRange(f.Stream)
		where = append(where, "stream >= "+arg(lo))
		if hi != nil {
			where = append(where, "stream < "+arg(hi))
		}
	}
	if f.Rule != "" {
		where = append(where, "matched @> ARRAY["+arg([]byte(f.Rule))+"::bytea]")
	}
	switch f.Outcome {
	case "":
	case store.OutcomeDuplicate:
		where = append(where, "duplicates > 0")
	default:
		where = append(where, "delivery = "+arg(f.Outcome))
	}
	q := `SELECT ` + eventColumns + ` FROM livehook_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(f.Limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	out := []*store.EventRecord{}
	err = forEach(rows, func(r pgx.Rows) error {
		rec, err := scanEvent(r)
		if err == nil {
			out = append(out, rec)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}

// DeadLetters implements store.Store.
func (s *Store) DeadLetters(ctx context.Context, f store.DeadFilter) ([]*store.Job, error) {
	where, args := deadWhere(f)
	if f.Before != "" {
		args = append(args, []byte(f.Before))
		where += " AND id < $" + strconv.Itoa(len(args))
	}
	args = append(args, f.Limit)
	rows, err := s.pool.Query(ctx, `SELECT id, job FROM livehook_jobs WHERE `+where+` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := []*store.Job{}
	err = forEach(rows, func(r pgx.Rows) error {
		j, err := scanJob(r)
		if err == nil {
			out = append(out, j)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// pruneBatch is how many events one pruning transaction deletes, so that
// a large backlog of finished events is never one long transaction.
const pruneBatch = 1000

// Prune implements store.Store. One process prunes at a time (a session
// advisory lock); a process that finds another pruning leaves it to it.
func (s *Store) Prune(ctx context.Context, cutoff, now time.Time) (int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	defer conn.Release()
	key := lockKey(s.schema, "prune")
	var mine bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockSpace, key).Scan(&mine); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	if !mine {
		return 0, nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, lockSpace, key)
	}()
	pruned := 0
	for {
		// Events whose jobs are all delivered, and the jobs; an event being
		// replayed (its row locked) waits for the next round.
		var n int
		err := conn.QueryRow(ctx, `WITH doomed AS (
				SELECT e.id FROM livehook_events e
				WHERE e.received_at < $1
					AND NOT EXISTS (SELECT 1 FROM livehook_jobs j WHERE j.event_id = e.id AND j.state <> 'delivered')
				ORDER BY e.received_at LIMIT $2
				FOR UPDATE SKIP LOCKED),
			jobs AS (DELETE FROM livehook_jobs WHERE event_id IN (SELECT id FROM doomed)),
			events AS (DELETE FROM livehook_events WHERE id IN (SELECT id FROM doomed) RETURNING 1)
			SELECT count(*) FROM events`, cutoff, pruneBatch).Scan(&n)
		if err != nil {
			return pruned, fmt.Errorf("prune events: %w", err)
		}
		pruned += n
		if n < pruneBatch {
			break
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM livehook_dedupe WHERE expires <= $1`, now); err != nil {
		return pruned, fmt.Errorf("prune identities: %w", err)
	}
	// An entry with a timer still to run is kept, expired or not. A commit
	// that read an entry pruned here finds it gone and conflicts.
	if _, err := conn.Exec(ctx, `DELETE FROM livehook_state WHERE expires <= $1 AND due IS NULL`, now); err != nil {
		return pruned, fmt.Errorf("prune state: %w", err)
	}
	return pruned, nil
}
