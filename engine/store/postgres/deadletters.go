package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/livehook/livehook/engine/store"
)

// jobJSON reads a job's record, kept as JSON text in a bytea, as jsonb.
const jobJSON = `convert_from(job, 'UTF8')::jsonb`

// deadWhere is the condition selecting the dead letters f selects, its
// Limit and Before aside, with its arguments.
func deadWhere(f store.DeadFilter) (string, []any) {
	where := []string{"state = 'dead'"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Action != "" {
		where = append(where, "action = "+arg([]byte(f.Action)))
	}
	if f.Error != "" {
		where = append(where, "coalesce("+jobJSON+"->>'last_error', '') = "+arg(f.Error))
	}
	if !f.From.IsZero() {
		where = append(where, "("+jobJSON+"->>'created')::timestamptz >= "+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "("+jobJSON+"->>'created')::timestamptz < "+arg(f.To))
	}
	return strings.Join(where, " AND "), args
}

// DeadGroups implements store.Store.
func (s *Store) DeadGroups(ctx context.Context, f store.DeadFilter) ([]store.DeadGroup, error) {
	where, args := deadWhere(f)
	rows, err := s.pool.Query(ctx, `SELECT convert_from(action, 'UTF8'), coalesce(j->'attempts'->-1->>'outcome', ''),
			coalesce(j->>'last_error', ''), count(*), max((j->>'created')::timestamptz)
		FROM (SELECT action, `+jobJSON+` AS j FROM livehook_jobs WHERE `+where+`) dead
		GROUP BY 1, 2, 3`, args...)
	if err != nil {
		return nil, fmt.Errorf("group dead letters: %w", err)
	}
	out := []store.DeadGroup{}
	err = forEach(rows, func(r pgx.Rows) error {
		var g store.DeadGroup
		if err := r.Scan(&g.Action, &g.Class, &g.Error, &g.Count, &g.Newest); err != nil {
			return err
		}
		g.Newest = g.Newest.UTC()
		out = append(out, g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("group dead letters: %w", err)
	}
	store.SortDeadGroups(out)
	return out, nil
}

// DeleteDeadLetters implements store.Store. A job being replayed is
// locked by the replay: the delete waits and then finds it pending. The
// jobs' trigger counts no deletes (pruning deletes events with their
// jobs), so the events' dead counts are lowered in the same statement.
func (s *Store) DeleteDeadLetters(ctx context.Context, ids []string) (int, error) {
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = []byte(id)
	}
	var n int
	err := s.pool.QueryRow(ctx, `WITH gone AS (
			DELETE FROM livehook_jobs WHERE id = ANY($1) AND state = 'dead' RETURNING event_id
		), counted AS (
			UPDATE livehook_events e SET dead = e.dead - c.n
			FROM (SELECT event_id, count(*)::int AS n FROM gone GROUP BY event_id) c
			WHERE e.id = c.event_id
		)
		SELECT count(*) FROM gone`, keys).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("delete dead letters: %w", err)
	}
	return n, nil
}

// OldestPending implements store.Store. It reads every pending job's
// record: it serves the status page, not the delivery path.
func (s *Store) OldestPending(ctx context.Context) (*store.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT id, job FROM livehook_jobs WHERE state = 'pending'
		ORDER BY (`+jobJSON+`->>'created')::timestamptz, id LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oldest pending job: %w", err)
	}
	return j, nil
}
