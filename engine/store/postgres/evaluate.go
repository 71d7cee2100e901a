package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// Accept implements store.Store in one statement, so one commit: the
// identity's row and the event's. A retry of a callback whose first copy
// is still being written waits on the identity's unique index for that
// write, then finds the identity held. The write is not cancelled by a
// caller that hangs up: it finishes, and the caller's retry is answered
// as a duplicate of it.
func (s *Store) Accept(ctx context.Context, in *store.Incoming) (store.Acceptance, error) {
	ev := in.Event
	body, err := event.AppendJSON(nil, ev)
	if err != nil {
		return store.Acceptance{}, fmt.Errorf("accept event: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if in.DedupeKey == "" {
		_, err := s.pool.Exec(ctx, `INSERT INTO livehook_inbox (id, source, received_at, event, stream, kind) VALUES ($1, $2, $3, $4, $5, $6)`,
			ev.ID, ev.Source, ev.ReceivedAt, body, []byte(ev.Stream), []byte(ev.Kind))
		if err != nil {
			return store.Acceptance{}, fmt.Errorf("accept event: %w", err)
		}
		s.accepted()
		return store.Acceptance{ID: ev.ID}, nil
	}
	key := []byte(in.DedupeKey)
	for range 3 {
		var id string
		err := s.pool.QueryRow(ctx, `WITH identity AS (
				INSERT INTO livehook_dedupe AS d (key, event_id, expires) VALUES ($5, $1, $6)
				ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, expires = excluded.expires
					WHERE d.expires <= $3
				RETURNING event_id)
			INSERT INTO livehook_inbox (id, source, received_at, dedupe_key, event, stream, kind)
			SELECT $1, $2, $3, $5, $4, $7, $8 FROM identity
			RETURNING id`,
			ev.ID, ev.Source, ev.ReceivedAt, body, key, ev.ReceivedAt.Add(in.DedupeTTL), []byte(ev.Stream), []byte(ev.Kind)).Scan(&id)
		if err == nil {
			s.accepted()
			return store.Acceptance{ID: ev.ID}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.Acceptance{}, fmt.Errorf("accept event: %w", err)
		}
		// The identity is held. Its holder is read in a new snapshot: the
		// statement's own predates a first copy that committed while it
		// waited.
		err = s.pool.QueryRow(ctx, `SELECT event_id FROM livehook_dedupe WHERE key = $1 AND expires > $2`, key, ev.ReceivedAt).Scan(&id)
		if err == nil {
			s.countDuplicate(ctx, id, ev.ReceivedAt)
			return store.Acceptance{ID: id, Duplicate: true}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.Acceptance{}, fmt.Errorf("accept event: read the first copy's id: %w", err)
		}
		// Expired or pruned in between: try again to be the first.
	}
	return store.Acceptance{}, errors.New("accept event: its identity changed hands three times while accepting it")
}

// countDuplicate counts a retry on the event it duplicates: in the inbox
// while it waits for evaluation, else on its row (a commit that moved it
// meanwhile has committed by the time the inbox's row is found gone). A
// count that cannot be written must not turn the retry away, which would
// only bring more.
func (s *Store) countDuplicate(ctx context.Context, id string, at time.Time) {
	tag, err := s.pool.Exec(ctx, `UPDATE livehook_inbox SET duplicates = duplicates + 1, last_duplicate = greatest(last_duplicate, $2)
		WHERE id = $1`, id, at)
	if err == nil && tag.RowsAffected() == 0 {
		_, _ = s.pool.Exec(ctx, `UPDATE livehook_events SET duplicates = duplicates + 1, last_duplicate = greatest(last_duplicate, $2)
			WHERE id = $1`, id, at)
	}
}

// accepted tells this process's evaluator, and the others, that there is
// an event to evaluate.
func (s *Store) accepted() {
	signal(s.sig.events)
	s.notes.notify(s.chans.events)
}

// Unevaluated implements store.Store: it claims events for this process
// that no live process has claimed, and waits for a notification (or the
// poll) while there are none. It returns early, with nothing, when a
// timer no one holds comes due before ctx's deadline (see timerSooner).
func (s *Store) Unevaluated(ctx context.Context, max int) ([]*store.Accepted, error) {
	poll := time.NewTimer(s.opts.Poll)
	defer poll.Stop()
	for {
		// Once ctx has ended, one last look: the contract hands out what
		// there is.
		qctx, cancel := s.opCtx(ctx)
		got, err := s.takeEvents(qctx, max)
		cancel()
		if err != nil || len(got) > 0 {
			return got, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-s.sig.events:
		case <-s.sig.timers:
			if s.timerSooner(ctx) {
				return nil, nil
			}
		case <-poll.C:
			poll.Reset(s.opts.Poll)
			if s.timerSooner(ctx) {
				return nil, nil
			}
		case <-ctx.Done():
		}
	}
}

// timerMargin is how much sooner than the caller's deadline a timer must
// come due to end its wait early: the deadline is the caller's own next
// timer, measured on its clock, and the same timer read back must not
// end every wait a moment before it.
const timerMargin = 50 * time.Millisecond

// timerSooner reports whether a timer no live process holds comes due
// before ctx's deadline, or at all if ctx has none: then the caller's
// last DueTimers did not know of it (another process set it, or the one
// that took it died), and it is to ask again. A failed look says no: the
// next poll looks again.
func (s *Store) timerSooner(ctx context.Context) bool {
	var due *time.Time
	err := s.pool.QueryRow(ctx, `SELECT min(due) FROM livehook_state
		WHERE due IS NOT NULL AND (taken_by IS NULL OR taken_by NOT IN `+liveOwners("$1")+`)`, s.opts.Grace.Seconds()).Scan(&due)
	if err != nil || due == nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || due.Before(deadline.Add(-timerMargin))
}

func (s *Store) takeEvents(ctx context.Context, max int) ([]*store.Accepted, error) {
	var out []*store.Accepted
	var bad []error
	err := s.claim(ctx, &s.unsure.events, func(tx pgx.Tx, took func(undo)) error {
		out, bad = nil, nil
		rows, err := tx.Query(ctx, `UPDATE livehook_inbox SET claimed_by = $1
			WHERE id IN (
				SELECT id FROM livehook_inbox
				WHERE claimed_by IS NULL OR claimed_by NOT IN `+liveOwners("$3")+`
				ORDER BY id LIMIT $2
				FOR UPDATE SKIP LOCKED)
			RETURNING id, event, dedupe_key`, s.owner, max, s.opts.Grace.Seconds())
		if err != nil {
			return err
		}
		var ids []string
		err = forEach(rows, func(r pgx.Rows) error {
			var id string
			var body, key []byte
			if err := r.Scan(&id, &body, &key); err != nil {
				return err
			}
			ids = append(ids, id)
			var ev event.Event
			if err := event.UnmarshalStored(body, &ev); err != nil {
				// Left claimed: it stays counted as unevaluated, and says so.
				bad = append(bad, fmt.Errorf("event %s: %w", id, err))
				return nil
			}
			out = append(out, &store.Accepted{Event: &ev, DedupeKey: string(key)})
			return nil
		})
		took(undo{`UPDATE livehook_inbox SET claimed_by = NULL WHERE id = ANY($1) AND claimed_by = $2`, []any{ids, s.owner}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("take events to evaluate: %w", err)
	}
	slices.SortFunc(out, func(a, b *store.Accepted) int { return cmpString(a.Event.ID, b.Event.ID) })
	if len(out) == 0 && len(bad) > 0 {
		return nil, fmt.Errorf("take events to evaluate: cannot read: %w", errors.Join(bad...))
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// outcome is what an event's row holds of its evaluation besides the
// matched rules.
type outcome struct {
	Throttled []string `json:"throttled,omitempty"`
	Fed       []string `json:"fed,omitempty"`
	Errors    []string `json:"errors,omitempty"`
}

// Commit implements store.Store in one transaction: the state rows the
// evaluations read are locked and their versions checked, the events move
// from the inbox (only if this process holds their claims) to the events
// table with their outcomes, and the jobs are written.
func (s *Store) Commit(ctx context.Context, evals []*store.Evaluation) error {
	// The matched rules and shadow records go as flat columns, (event
	// id, element) in order, gathered per event on the server: a
	// bytea[][] must be rectangular, and JSON or text cannot carry every
	// name.
	var ids []string
	var outcomes [][]byte
	var matched, shadow, earlier flatColumn // earlier: shadow records of events committed before
	jobs := []*store.Job{}
	for _, e := range evals {
		jobs = append(jobs, e.Jobs...)
		for _, sh := range e.Shadow {
			body, err := json.Marshal(sh)
			if err != nil {
				return fmt.Errorf("commit evaluations: %w", err)
			}
			if e.EventID != "" && sh.EventID == e.EventID {
				shadow.add(sh.EventID, body)
			} else {
				earlier.add(sh.EventID, body)
			}
		}
		if e.EventID == "" {
			continue
		}
		o, err := json.Marshal(outcome{Throttled: e.Throttled, Fed: e.Fed, Errors: e.Errors})
		if err != nil {
			return fmt.Errorf("commit evaluations: %w", err)
		}
		ids, outcomes = append(ids, e.EventID), append(outcomes, o)
		for _, r := range e.Matched {
			matched.add(e.EventID, []byte(r))
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.putState(ctx, tx, evals); err != nil {
			return err
		}
		if len(ids) > 0 {
			var moved int
			err := tx.QueryRow(ctx, `WITH taken AS (
					DELETE FROM livehook_inbox WHERE id = ANY($1) AND claimed_by = $2
					RETURNING id, source, received_at, dedupe_key, event, stream, kind, duplicates, last_duplicate),
				moved AS (
					INSERT INTO livehook_events (id, source, received_at, dedupe_key, event, stream, kind, duplicates, last_duplicate,
						matched, outcome, shadow)
					SELECT t.id, t.source, t.received_at, t.dedupe_key, t.event, t.stream, t.kind, t.duplicates, t.last_duplicate,
						ARRAY(SELECT m.v FROM unnest($4::text[], $5::bytea[]) WITH ORDINALITY AS m(id, v, n)
							WHERE m.id = t.id ORDER BY m.n),
						o.outcome,
						ARRAY(SELECT m.v FROM unnest($6::text[], $7::bytea[]) WITH ORDINALITY AS m(id, v, n)
							WHERE m.id = t.id ORDER BY m.n)
					FROM taken t JOIN unnest($1::text[], $3::bytea[]) AS o(id, outcome) ON o.id = t.id
					RETURNING 1)
				SELECT count(*) FROM moved`, ids, s.owner, outcomes, matched.ids, matched.values, shadow.ids, shadow.values).Scan(&moved)
			if err != nil {
				return err
			}
			if moved != len(ids) {
				return s.notTaken(ctx, tx, ids)
			}
		}
		if len(earlier.ids) > 0 {
			// An event pruned meanwhile takes none: the firing was logged
			// and counted.
			if _, err := tx.Exec(ctx, `UPDATE livehook_events e SET shadow = e.shadow || x.add
				FROM (SELECT m.id, array_agg(m.v ORDER BY m.n) AS add
					FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS m(id, v, n) GROUP BY m.id) x
				WHERE e.id = x.id`, earlier.ids, earlier.values); err != nil {
				return err
			}
		}
		return putJobs(ctx, tx, jobs)
	})
	if err != nil {
		if conflict(err) {
			return fmt.Errorf("commit evaluations: %w", store.ErrStateConflict)
		}
		return fmt.Errorf("commit evaluations: %w", err)
	}
	if len(jobs) > 0 {
		s.jobsChanged()
	}
	if setsTimer(evals) {
		signal(s.sig.timers)
		s.notes.notify(s.chans.timers)
	}
	return nil
}

func setsTimer(evals []*store.Evaluation) bool {
	for _, e := range evals {
		for _, c := range e.State {
			if !c.Due.IsZero() {
				return true
			}
		}
	}
	return false
}

// flatColumn is a list of (event id, value) pairs, in order, as two
// columns of an unnest.
type flatColumn struct {
	ids    []string
	values [][]byte
}

func (c *flatColumn) add(id string, v []byte) {
	c.ids, c.values = append(c.ids, id), append(c.values, v)
}

// notTaken names the events of a commit that this process does not hold.
func (s *Store) notTaken(ctx context.Context, tx pgx.Tx, ids []string) error {
	var held []string
	rows, err := tx.Query(ctx, `SELECT id FROM livehook_inbox WHERE id = ANY($1) AND claimed_by = $2`, ids, s.owner)
	if err == nil {
		held, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !slices.Contains(held, id) {
			return fmt.Errorf("event %s: %w", id, store.ErrNotTaken)
		}
	}
	return store.ErrNotTaken
}

// conflict reports whether a commit failed because another evaluator
// changed state it read: a version that moved or a key written meanwhile
// (both found by putState), or two commits' locks meeting in a deadlock
// or a serialization failure, which PostgreSQL resolves by failing one.
func conflict(err error) bool {
	if errors.Is(err, store.ErrStateConflict) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// stateWrite is the net effect of a commit on one state key.
type stateWrite struct {
	key     []byte
	read    uint64 // what its first change read
	value   []byte // nil: delete
	expires time.Time
	due     time.Time
}

// putState locks the state rows the evaluations change, checks that each
// key's first change read the version it has, and writes the last change
// of each key with a new version.
func (s *Store) putState(ctx context.Context, tx pgx.Tx, evals []*store.Evaluation) error {
	var order []string
	writes := map[string]*stateWrite{}
	for _, e := range evals {
		for _, c := range e.State {
			w, seen := writes[c.Key]
			if !seen {
				w = &stateWrite{key: []byte(c.Key), read: c.Read}
				writes[c.Key] = w
				order = append(order, c.Key)
			}
			w.value, w.expires, w.due = c.Value, c.Expires, c.Due
		}
	}
	if len(order) == 0 {
		return nil
	}
	slices.Sort(order) // rows are locked in key order, so two commits cannot deadlock on them
	keys := make([][]byte, len(order))
	for i, k := range order {
		keys[i] = []byte(k)
	}
	rows, err := tx.Query(ctx, `SELECT key, version FROM livehook_state WHERE key = ANY($1) ORDER BY key FOR UPDATE`, keys)
	if err != nil {
		return err
	}
	have := map[string]uint64{}
	for rows.Next() {
		var k []byte
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return err
		}
		have[string(k)] = uint64(v)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var upd, ins stateRows
	var del [][]byte
	for _, k := range order {
		w := writes[k]
		v, exists := have[k]
		if v != w.read {
			return store.ErrStateConflict
		}
		switch {
		case w.value == nil && exists:
			del = append(del, w.key)
		case w.value == nil: // deleting what does not exist
		case exists:
			upd.add(w)
		default:
			ins.add(w)
		}
	}
	if len(del) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM livehook_state WHERE key = ANY($1)`, del); err != nil {
			return err
		}
	}
	if len(upd.keys) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE livehook_state s
			SET value = c.value, version = nextval('livehook_state_version'), expires = c.expires, due = c.due, taken_by = NULL
			FROM unnest($1::bytea[], $2::bytea[], $3::timestamptz[], $4::timestamptz[]) AS c(key, value, expires, due)
			WHERE s.key = c.key`, upd.keys, upd.values, upd.expires, upd.dues); err != nil {
			return err
		}
	}
	if len(ins.keys) > 0 {
		// A key absent when read and written by another commit since is a
		// conflict, not something to write over: ON CONFLICT DO NOTHING
		// and count.
		tag, err := tx.Exec(ctx, `INSERT INTO livehook_state (key, value, version, expires, due)
			SELECT c.key, c.value, nextval('livehook_state_version'), c.expires, c.due
			FROM unnest($1::bytea[], $2::bytea[], $3::timestamptz[], $4::timestamptz[]) AS c(key, value, expires, due)
			ON CONFLICT (key) DO NOTHING`, ins.keys, ins.values, ins.expires, ins.dues)
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(ins.keys) {
			return store.ErrStateConflict
		}
	}
	return nil
}

// stateRows are state writes as the columns of an unnest.
type stateRows struct {
	keys, values [][]byte
	expires      []time.Time
	dues         []*time.Time
}

func (r *stateRows) add(w *stateWrite) {
	r.keys, r.values, r.expires = append(r.keys, w.key), append(r.values, w.value), append(r.expires, w.expires)
	var due *time.Time
	if !w.due.IsZero() {
		due = &w.due
	}
	r.dues = append(r.dues, due)
}

// State implements store.Store.
func (s *Store) State(ctx context.Context, keys []string, now time.Time) (map[string]store.State, error) {
	ks := make([][]byte, len(keys))
	for i, k := range keys {
		ks[i] = []byte(k)
	}
	rows, err := s.pool.Query(ctx, `SELECT key, value, version, expires, due FROM livehook_state WHERE key = ANY($1)`, ks)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	out := make(map[string]store.State, len(keys))
	for rows.Next() {
		e, err := scanState(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read state: %w", err)
		}
		if now.Before(e.Expires) {
			out[e.Key] = e.State
		} else { // expired: no value, but a version to write over
			out[e.Key] = store.State{Version: e.Version}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return out, nil
}

func scanState(rows pgx.Rows) (store.StateEntry, error) {
	var key, value []byte
	var version int64
	var expires time.Time
	var due *time.Time
	if err := rows.Scan(&key, &value, &version, &expires, &due); err != nil {
		return store.StateEntry{}, err
	}
	if value == nil {
		value = []byte{}
	}
	e := store.StateEntry{Key: string(key), State: store.State{Value: value, Version: uint64(version)}, Expires: expires}
	if due != nil {
		e.Due = *due
	}
	return e, nil
}

// DueTimers implements store.Store: it takes due timers for this process
// that no live process has taken.
func (s *Store) DueTimers(ctx context.Context, now time.Time, max int) ([]store.StateEntry, time.Time, error) {
	var due []store.StateEntry
	var next *time.Time
	err := s.claim(ctx, &s.unsure.timers, func(tx pgx.Tx, took func(undo)) error {
		due = nil
		rows, err := tx.Query(ctx, `UPDATE livehook_state SET taken_by = $1
			WHERE key IN (
				SELECT key FROM livehook_state
				WHERE due <= $2 AND (taken_by IS NULL OR taken_by NOT IN `+liveOwners("$4")+`)
				ORDER BY due, key LIMIT $3
				FOR UPDATE SKIP LOCKED)
			RETURNING key, value, version, expires, due`, s.owner, now, max, s.opts.Grace.Seconds())
		if err != nil {
			return err
		}
		for rows.Next() {
			e, err := scanState(rows)
			if err != nil {
				rows.Close()
				return err
			}
			due = append(due, e)
		}
		keys := make([][]byte, len(due))
		for i, e := range due {
			keys[i] = []byte(e.Key)
		}
		took(undo{`UPDATE livehook_state SET taken_by = NULL WHERE key = ANY($1) AND taken_by = $2`, []any{keys, s.owner}})
		if err := rows.Err(); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT min(due) FROM livehook_state
			WHERE due IS NOT NULL AND (taken_by IS NULL OR taken_by NOT IN `+liveOwners("$1")+`)`,
			s.opts.Grace.Seconds()).Scan(&next)
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("take due timers: %w", err)
	}
	slices.SortFunc(due, func(a, b store.StateEntry) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return cmpString(a.Key, b.Key)
	})
	if next == nil {
		return due, time.Time{}, nil
	}
	return due, *next, nil
}

// ListState implements store.Store.
func (s *Store) ListState(ctx context.Context, prefix, after string, limit int) ([]store.StateEntry, error) {
	lo, hi := prefixRange(prefix)
	if after > prefix {
		lo = []byte(after)
	}
	rows, err := s.pool.Query(ctx, `SELECT key, value, version, expires, due FROM livehook_state
		WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) AND key <> $3
		ORDER BY key LIMIT $4`, lo, hi, []byte(after), limit)
	if err != nil {
		return nil, fmt.Errorf("list state: %w", err)
	}
	var out []store.StateEntry
	for rows.Next() {
		e, err := scanState(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list state: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list state: %w", err)
	}
	return out, nil
}

// prefixRange is the range of keys that start with prefix: [lo, hi), hi
// nil for no upper bound.
func prefixRange(prefix string) (lo, hi []byte) {
	lo = []byte(prefix)
	hi = []byte(prefix)
	for i := len(hi) - 1; i >= 0; i-- {
		if hi[i] < 0xff {
			hi[i]++
			return lo, hi[:i+1]
		}
	}
	return lo, nil
}

// DropState implements store.Store. A commit that read a dropped entry
// finds it gone and conflicts.
func (s *Store) DropState(ctx context.Context, prefix string) (int, error) {
	lo, hi := prefixRange(prefix)
	tag, err := s.pool.Exec(ctx, `DELETE FROM livehook_state WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2)`, lo, hi)
	if err != nil {
		return 0, fmt.Errorf("drop state %q: %w", prefix, err)
	}
	return int(tag.RowsAffected()), nil
}
