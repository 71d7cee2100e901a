package engine

import (
	"context"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// Events lists stored events, newest first.
func (e *Engine) Events(f store.EventFilter) ([]*store.EventRecord, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	return e.store.Events(context.Background(), f)
}

// Event returns one event with every delivery and its attempts.
func (e *Engine) Event(id string) (*store.EventDetail, error) {
	return e.store.Event(context.Background(), id)
}

// DeadLetters lists deliveries that failed for good that f selects,
// newest first; f.Before continues a listing after its last job.
func (e *Engine) DeadLetters(f store.DeadFilter) ([]*store.Job, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return e.store.DeadLetters(context.Background(), f)
}

// ReplayDeadLetter runs a dead letter again, with a fresh allowance of
// attempts and age, under the rules in force now.
func (e *Engine) ReplayDeadLetter(id string) (*store.Job, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		return nil, ErrStopped
	}
	j, err := e.store.ReplayJob(context.Background(), id, e.opts.Deps.Now().UTC())
	if err != nil {
		return nil, err
	}
	e.log.Info("dead letter replayed", "job", j.ID, "event_id", j.EventID)
	return j, nil
}

// ReplayEvent evaluates a stored event again against the current rules
// and delivers every matching rule's steps anew. Throttles do not apply:
// a replay is an operator's deliberate act.
func (e *Engine) ReplayEvent(id string) ([]*store.Job, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		return nil, ErrStopped
	}
	set := e.acquire()
	defer set.Release()
	now := e.opts.Deps.Now().UTC()
	jobs, err := e.store.ReplayEvent(context.Background(), id, func(ev *event.Event, replay int) ([]*store.Job, error) {
		var m rules.Matcher
		matched, _ := m.Match(set, ev)
		jobs := []*store.Job{}
		for _, r := range matched {
			jobs = append(jobs, newJobs(id, r, 0, now, replay)...)
		}
		return jobs, nil
	})
	if err != nil {
		return nil, err
	}
	e.log.Info("event replayed", "event_id", id, "jobs", len(jobs))
	return jobs, nil
}
