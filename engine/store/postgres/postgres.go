// Package postgres is a store.Store on PostgreSQL, for several livehook
// processes sharing one database: each accepted event is evaluated by one
// of them, each job is run under a lease by one of them, and dedupe
// identities, throttle windows and timers are the database's, not any
// process's.
//
// How the contract maps onto the database:
//   - Accept inserts the event and its identity in one statement; the
//     identity's unique index makes a concurrent retry wait for the first
//     copy and answer its id.
//   - Unevaluated and DueTimers claim rows with FOR UPDATE SKIP LOCKED for
//     this process (an owner row it keeps alive with a heartbeat); the
//     claims of an owner not seen for the grace period are free again, and
//     Close frees this process's own.
//   - Commit records outcomes, jobs and state in one transaction, locking
//     the state rows it read and refusing versions that moved.
//   - ClaimJobs leases jobs under an advisory lock, so the live leases it
//     counts against each action's limit are those of every process.
//   - Wake and Unevaluated's wait are LISTEN/NOTIFY, with polling while
//     the listening connection is down.
//
// Times of events, jobs and leases are the caller's, as the contract
// says; only owner liveness is measured on the database's clock, the one
// clock every process shares.
package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/livehook/livehook/engine/store"
)

// Options tune a Store; the zero value is the default.
type Options struct {
	// Grace is how long an owner may go unseen before what it took for
	// evaluation is free again: longer than a database failover, so that a
	// process that rides one out keeps its claims. Default 15s.
	Grace time.Duration
	// Poll is how often waits look at the database without being told:
	// for events whose evaluator died, and for everything while the
	// listening connection is down. Default 2s.
	Poll time.Duration
	// Timeout bounds a call that runs on after its caller's context ends
	// (Accept, the last look of Unevaluated, Close). Default 5s.
	Timeout time.Duration
	// Name is what the owner row says of this process (host and pid by
	// default), for an operator looking at the database.
	Name string
}

func (o *Options) defaults() {
	if o.Grace <= 0 {
		o.Grace = 15 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
}

// defaultMaxConns is the pool's size when the DSN does not set
// pool_max_conns: accepts commit concurrently, one connection each, and
// PostgreSQL's group commit shares a WAL flush among those in flight.
// With 64 callers, 16 connections made about half the accepts of 32, and
// 64 no more than 32 (BenchmarkAccept64).
const defaultMaxConns = 32

// Store is the PostgreSQL store.
type Store struct {
	pool   *pgxpool.Pool
	opts   Options
	schema string
	owner  int64 // this process's row in livehook_owners
	chans  channels
	sig    *signals                              // wakes this process's waiters
	notes  *notifier                             // tells the other processes
	listen *listener                             // hears the other processes
	unsure struct{ events, timers, jobs unsure } // claims take turns; what failed ones may have committed

	stop      context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open connects to the database dsn names, migrates its schema to this
// build's version, and registers this process as an owner. The schema is
// the DSN's search_path's first (public by default). No error quotes the
// DSN's secrets.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	o.defaults()
	pool, schema, err := connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := migrate(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, scrubErr(fmt.Errorf("open store: %w", err), dsn)
	}
	s := &Store{pool: pool, opts: o, schema: schema, chans: channelsFor(schema),
		sig: newSignals(), notes: newNotifier(pool)}
	if err := s.register(ctx); err != nil {
		pool.Close()
		return nil, scrubErr(fmt.Errorf("open store: %w", err), dsn)
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.listen = newListener(pool.Config().ConnConfig, s.chans, s.sig, o.Poll)
	s.bg.Go(func() { s.listen.run(bg) })
	s.bg.Go(func() { s.heartbeat(bg) })
	s.bg.Go(func() { s.notes.run(bg) })
	return s, nil
}

// Migrate brings the schema of the database dsn names to this build's
// version, as Open does, and returns that version.
func Migrate(ctx context.Context, dsn string) (int, error) {
	pool, schema, err := connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	v, err := migrate(ctx, pool, schema)
	return v, scrubErr(err, dsn)
}

// connect opens a pool and finds the schema the store lives in.
func connect(ctx context.Context, dsn string) (*pgxpool.Pool, string, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, "", err
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "livehook"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", scrubErr(fmt.Errorf("open store %s: %w", Redact(dsn), err), dsn)
	}
	var schema *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		pool.Close()
		return nil, "", scrubErr(fmt.Errorf("open store %s: %w", Redact(dsn), err), dsn)
	}
	if schema == nil {
		pool.Close()
		return nil, "", fmt.Errorf("open store %s: no schema of the search_path exists", Redact(dsn))
	}
	return pool, *schema, nil
}

// register adds this process's owner row, and forgets owners long dead
// (their claims are free either way).
func (s *Store) register(ctx context.Context) error {
	if err := s.pool.QueryRow(ctx, "INSERT INTO livehook_owners (name) VALUES ($1) RETURNING id", s.opts.Name).Scan(&s.owner); err != nil {
		return fmt.Errorf("register as an owner: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM livehook_owners WHERE seen_at < now() - interval '1 day'"); err != nil {
		return fmt.Errorf("forget dead owners: %w", err)
	}
	return nil
}

// heartbeat keeps this process's owner row seen. A row found missing (the
// process was silent for a day) is added again with its id, so claims
// still marked with it stay this process's.
func (s *Store) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.opts.Grace / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, s.opts.Grace/5)
		_, _ = s.pool.Exec(hctx, `INSERT INTO livehook_owners (id, name) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET seen_at = now()`, s.owner, s.opts.Name)
		cancel() // a failed beat is tried again at the next tick
	}
}

// liveOwners is the SQL set of owners whose claims hold, those seen within
// the grace period, which the parameter graceParam gives in seconds.
func liveOwners(graceParam string) string {
	return `(SELECT id FROM livehook_owners WHERE seen_at > now() - make_interval(secs => ` + graceParam + `))`
}

// opCtx is ctx without its cancellation, bounded by the store's timeout:
// for work that must finish or fail on its own terms once begun.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
}

// Stats implements store.Store, in one statement: one snapshot, so a
// move of work between the counts is never seen half done.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM livehook_inbox),
		(SELECT count(*) FROM livehook_jobs WHERE state = 'pending'),
		(SELECT count(*) FROM livehook_jobs WHERE state = 'dead'),
		(SELECT count(*) FROM livehook_state),
		(SELECT count(*) FROM livehook_state WHERE due IS NOT NULL),
		(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
			WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'livehook\_%')`,
	).Scan(&st.Unevaluated, &st.Pending, &st.Dead, &st.StateKeys, &st.Timers, &st.Bytes)
	if err != nil {
		return store.Stats{}, fmt.Errorf("store stats: %w", err)
	}
	return st, nil
}

// Ready reports whether the database answered a moment ago: a ping,
// bounded by the store's timeout.
func (s *Store) Ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	return s.pool.Ping(ctx) == nil
}

// Close implements store.Store: it frees what this process took for
// evaluation and did not commit, so another process (or the next start)
// takes it at once, and closes the connections. Job leases are left to
// expire: a delivery may still be running.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.bg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "UPDATE livehook_inbox SET claimed_by = NULL WHERE claimed_by = $1", s.owner); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "UPDATE livehook_state SET taken_by = NULL WHERE taken_by = $1", s.owner); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "DELETE FROM livehook_owners WHERE id = $1", s.owner)
			return err
		})
		if err != nil {
			s.closeErr = fmt.Errorf("close store: free the claims of this process: %w", err)
		}
		s.pool.Close()
	})
	return s.closeErr
}

// Schema is the schema the store lives in.
func (s *Store) Schema() string { return s.schema }
