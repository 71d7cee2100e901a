package engine

import (
	"context"
	"fmt"

	"github.com/livehook/livehook/engine/store"
)

// StatusReport is what the store holds, for the status page.
type StatusReport struct {
	store.Stats
	// OldestPending is the pending delivery created earliest; nil when
	// none is pending.
	OldestPending *store.Job
}

// Status reads the store's counts and its oldest pending delivery.
func (e *Engine) Status(ctx context.Context) (StatusReport, error) {
	st, err := e.store.Stats(ctx)
	if err != nil {
		return StatusReport{}, fmt.Errorf("store stats: %w", err)
	}
	oldest, err := e.store.OldestPending(ctx)
	if err != nil {
		return StatusReport{}, err
	}
	return StatusReport{Stats: st, OldestPending: oldest}, nil
}
