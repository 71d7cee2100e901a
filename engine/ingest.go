package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// ingestBatch bounds how many events share one state commit.
const ingestBatch = 256

// ingestPace spaces the ingester's state commits while it keeps up. Each
// bbolt commit costs two fsyncs on the disk the journal fsyncs on; spaced
// out, they batch many events and stay out of the way of the request
// path's fsync, at the price of evaluating an event up to this much later
// (it is already durable in the journal). A full batch means a backlog,
// and then the ingester does not wait at all.
const ingestPace = 50 * time.Millisecond

// evaluator runs the evaluate stages: match, throttle, plan, commit.
type evaluator struct {
	store   store.Store
	now     func() time.Time
	rules   func() *rules.Set // the current set, acquired: Release it
	log     *slog.Logger
	metrics *metrics
}

// ingestLoop evaluates accepted events, oldest first, and commits each
// batch with its jobs as one unit. Once ingest ends (no more events will
// be accepted) it evaluates what is left and returns; commit ending means
// the shutdown timeout has passed, and what is left stays in the store.
func (v *evaluator) ingestLoop(ingest, commit context.Context) {
	var m rules.Matcher
	for commit.Err() == nil {
		batch, err := v.store.Unevaluated(ingest, ingestBatch)
		if err != nil {
			if ingest.Err() == nil {
				v.metrics.storeErrors.Inc()
				v.log.Error("cannot read events to evaluate", "err", err)
				sleepCtx(commit, time.Second)
				continue
			}
			return // stopping, and nothing is left
		}
		start := time.Now()
		// The events are safe in the store, so a failed evaluation or
		// commit is tried again rather than dropped; a restart would
		// evaluate them again too.
		var evals []*store.Evaluation
		for attempt := 1; ; attempt++ {
			if evals, err = v.evaluate(commit, &m, batch); err == nil {
				if err = v.store.Commit(commit, evals); err == nil {
					break
				}
			}
			if errors.Is(err, store.ErrStateConflict) {
				continue // another evaluator changed a throttle window: decide again
			}
			v.metrics.storeErrors.Inc()
			v.log.Error("cannot evaluate and save events; retrying", "events", len(batch), "attempt", attempt, "err", err)
			if !sleepCtx(commit, min(time.Duration(attempt)*100*time.Millisecond, 5*time.Second)) {
				return // still in the store: the next start evaluates them
			}
		}
		for _, ev := range evals {
			v.log.Debug("event processed", "event_id", ev.EventID, "rules_matched", len(ev.Matched))
		}
		if len(batch) == ingestBatch || ingest.Err() != nil {
			continue // a backlog, or stopping: commits are as large as they get already
		}
		sleepCtx(ingest, ingestPace-time.Since(start)) // at once if the commit took longer
	}
}

// sleepCtx waits d, or less if ctx ends; false if it ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// evaluate runs the stages of an evaluation over a batch: match every
// event against the rules, throttle the matches, and plan a job per step
// of each admitted one.
func (v *evaluator) evaluate(ctx context.Context, m *rules.Matcher, batch []*store.Accepted) ([]*store.Evaluation, error) {
	set := v.rules()
	defer set.Release()
	now := v.now().UTC()
	evals := make([]*store.Evaluation, 0, len(batch))
	var ms []match
	for _, a := range batch {
		ev := a.Event
		out := &store.Evaluation{EventID: ev.ID, Matched: []string{}}
		matched, errs := m.Match(set, ev)
		for _, err := range errs {
			v.metrics.ruleErrors.WithLabelValues(err.Rule.Name).Inc()
			msg := set.Secrets.Redact(err.Error())
			out.Errors = append(out.Errors, msg)
			v.log.Warn("rule condition failed", "event_id", ev.ID, "rule", err.Rule.Name, "err", msg)
		}
		for _, r := range matched {
			out.Matched = append(out.Matched, r.Name)
			ms = append(ms, match{out: out, ev: ev, rule: r})
		}
		evals = append(evals, out)
	}
	admitted, err := v.throttle(ctx, ms, now)
	if err != nil {
		return nil, err
	}
	for i, mt := range ms {
		r, ev := mt.rule, mt.ev
		v.metrics.ruleMatches.WithLabelValues(r.Name).Inc()
		suppressed, run := admitted[i]
		if !run {
			v.metrics.throttled.WithLabelValues(r.Name).Inc()
			mt.out.Throttled = append(mt.out.Throttled, r.Name)
			v.log.Debug("rule throttled", "event_id", ev.ID, "rule", r.Name)
			continue
		}
		v.log.Info("rule matched", "event_id", ev.ID, "rule", r.Name, "source", ev.Source, "kind", ev.Kind)
		mt.out.Jobs = append(mt.out.Jobs, newJobs(ev.ID, r, suppressed, now, 0)...)
	}
	return evals, nil
}

// newJobs plans one job per step of r, for an event's evaluation (replay
// 0) or its nth replay.
func newJobs(eventID string, r *rules.Rule, suppressed int, now time.Time, replay int) []*store.Job {
	jobs := make([]*store.Job, 0, len(r.Steps))
	for _, s := range r.Steps {
		jobs = append(jobs, &store.Job{
			ID:      store.JobID(eventID, r.Name, s.Index, replay),
			EventID: eventID, Rule: r.Name, Step: s.Index, Action: s.Action, Type: s.Type,
			Suppressed: suppressed, State: store.Pending, Created: now, NextAt: now,
			Attempts: []store.Attempt{},
		})
	}
	return jobs
}
