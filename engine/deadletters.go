package engine

import (
	"context"
	"errors"

	"github.com/livehook/livehook/engine/store"
)

// DeadGroups counts the dead letters f selects by action and error.
func (e *Engine) DeadGroups(f store.DeadFilter) ([]store.DeadGroup, error) {
	return e.store.DeadGroups(context.Background(), f)
}

// ReplayDeadLetters replays each of ids that is still a dead letter, as
// ReplayDeadLetter does, and says how many it replayed; the others (gone,
// or replayed meanwhile) are skipped.
func (e *Engine) ReplayDeadLetters(ids []string) (int, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		return 0, ErrStopped
	}
	now := e.opts.Deps.Now().UTC()
	n := 0
	for _, id := range ids {
		_, err := e.store.ReplayJob(context.Background(), id, now)
		switch {
		case err == nil:
			n++
		case errors.Is(err, store.ErrNotDead) || errors.Is(err, store.ErrNotFound):
		default:
			return n, err
		}
	}
	e.log.Info("dead letters replayed", "replayed", n, "asked", len(ids))
	return n, nil
}

// DeleteDeadLetters deletes each of ids that is still a dead letter and
// says how many it deleted.
func (e *Engine) DeleteDeadLetters(ids []string) (int, error) {
	n, err := e.store.DeleteDeadLetters(context.Background(), ids)
	if err != nil {
		return 0, err
	}
	e.log.Info("dead letters deleted", "deleted", n, "asked", len(ids))
	return n, nil
}
