package postgres

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
)

// A claim (events to evaluate, due timers, jobs to run) marks rows as
// this process's in a transaction. When the connection is cut while that
// transaction commits, the claim fails without knowing whether it
// committed; if it did, its rows stay marked with a live owner while no
// one works on them: events and timers until this process stops, jobs,
// and the slots of their action's concurrency, until their lease ends.
// So a failed claim leaves what would undo it, and the next claim of the
// same kind undoes it in its own transaction, before it takes anything.
// Claims of a kind take turns in a process, so no claim of that kind has
// succeeded since the failed one: an undo, which matches only the rows
// the failed claim returned and only while they carry its marks, cannot
// release what a successful claim handed out.

// undo is a statement that releases what a claim may have committed.
type undo struct {
	sql  string
	args []any
}

// unsure makes the claims of one kind take turns and holds the undos of
// those that failed.
type unsure struct {
	mu    sync.Mutex
	undos []undo
}

// claim runs fn in a transaction, after the undos of the claims of u's
// kind that failed before. fn calls took with the undo of what it
// marked; if the transaction then fails, that undo is kept for the next
// claim, along with those it did not get to run.
func (s *Store) claim(ctx context.Context, u *unsure, fn func(tx pgx.Tx, took func(undo)) error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	before := u.undos
	var mine []undo
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, do := range before {
			if _, err := tx.Exec(ctx, do.sql, do.args...); err != nil {
				return err
			}
		}
		return fn(tx, func(do undo) { mine = append(mine, do) })
	})
	if err != nil {
		u.undos = append(before, mine...)
		return err
	}
	u.undos = nil
	return nil
}
