package engine

import (
	"fmt"
	"slices"

	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// Events lists stored events, newest first.
func (e *Engine) Events(f store.EventFilter) ([]*store.EventRecord, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	return e.store.Events(f)
}

// Event returns one event with every delivery and its attempts.
func (e *Engine) Event(id string) (*store.EventDetail, error) {
	rec, jobs, err := e.store.Event(id)
	if err != nil {
		return nil, err
	}
	if jobs == nil {
		jobs = []*store.Job{}
	}
	return &store.EventDetail{EventRecord: rec, Jobs: jobs}, nil
}

// DeadLetters lists deliveries that failed for good, newest first.
func (e *Engine) DeadLetters(limit int) ([]*store.Job, error) {
	if limit <= 0 {
		limit = 100
	}
	return e.store.DeadLetters(limit)
}

// ReplayDeadLetter runs a dead letter again, with a fresh allowance of
// attempts and age, under the rules in force now.
func (e *Engine) ReplayDeadLetter(id string) (*store.Job, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		return nil, ErrStopped
	}
	e.replayMu.Lock()
	defer e.replayMu.Unlock()
	j, err := e.store.Job(id)
	if err != nil {
		return nil, err
	}
	if j.State != store.Dead {
		return nil, fmt.Errorf("job %s is %s: %w", id, j.State, store.ErrNotDead)
	}
	rec, _, err := e.store.Event(j.EventID)
	if err != nil {
		return nil, fmt.Errorf("job %s: event %s: %w", id, j.EventID, err)
	}
	now := e.opts.Deps.Now().UTC()
	j.State, j.LastError, j.Since, j.Created, j.NextAt = store.Pending, "", len(j.Attempts), now, now
	if err := e.store.PutJobs(j); err != nil {
		return nil, err
	}
	out := snapshot(j) // the runner owns j from here on
	e.runner.dead.Add(-1)
	e.runner.add(j, rec)
	e.log.Info("dead letter replayed", "job", j.ID, "event_id", j.EventID)
	return out, nil
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
	e.replayMu.Lock()
	defer e.replayMu.Unlock()
	rec, _, err := e.store.Event(id)
	if err != nil {
		return nil, err
	}
	set := e.acquire()
	defer set.Release()
	var m rules.Matcher
	matched, _ := m.Match(set, rec.Event)
	rec.Replays++
	now := e.opts.Deps.Now().UTC()
	jobs := []*store.Job{}
	for _, r := range matched {
		jobs = append(jobs, newJobs(id, r, 0, now, fmt.Sprintf(".r%d", rec.Replays))...)
	}
	// Jobs first: a pruner running in between sees pending work and keeps
	// the event.
	if err := e.store.PutJobs(jobs...); err != nil {
		return nil, err
	}
	if err := e.store.PutEvent(rec); err != nil {
		return nil, err
	}
	out := make([]*store.Job, len(jobs))
	for i, j := range jobs {
		out[i] = snapshot(j) // the runner owns j from here on
		e.runner.add(j, rec)
	}
	e.log.Info("event replayed", "event_id", id, "jobs", len(jobs))
	return out, nil
}

// snapshot copies a job for a caller while the runner goes on changing it.
func snapshot(j *store.Job) *store.Job {
	c := *j
	c.Attempts = slices.Clone(j.Attempts)
	return &c
}
