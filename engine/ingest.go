package engine

import (
	"context"
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

// ingestLoop evaluates accepted events, oldest first, and commits each
// batch with its jobs as one unit. Once ingest ends (no more events will
// be accepted) it evaluates what is left and returns; commit ending means
// the shutdown timeout has passed, and what is left stays in the store.
func (e *Engine) ingestLoop(ingest, commit context.Context) {
	var m rules.Matcher
	for commit.Err() == nil {
		batch, err := e.store.Unevaluated(ingest, ingestBatch)
		if err != nil {
			if ingest.Err() == nil {
				e.metrics.storeErrors.Inc()
				e.log.Error("cannot read events to evaluate", "err", err)
				sleepCtx(commit, time.Second)
				continue
			}
			return // stopping, and nothing is left
		}
		start := time.Now()
		evals := e.evaluate(&m, batch)
		// The events are safe in the store, so a failed commit is retried
		// rather than dropped; a restart would evaluate them again too.
		for attempt := 1; ; attempt++ {
			err := e.store.Commit(commit, evals)
			if err == nil {
				break
			}
			e.metrics.storeErrors.Inc()
			e.log.Error("cannot save evaluated events; retrying", "events", len(evals), "attempt", attempt, "err", err)
			if !sleepCtx(commit, min(time.Duration(attempt)*100*time.Millisecond, 5*time.Second)) {
				return // still in the store: the next start evaluates them
			}
		}
		for _, ev := range evals {
			e.log.Debug("event processed", "event_id", ev.EventID, "rules_matched", len(ev.Matched))
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

// evaluate runs the rules once per event and plans a job per step of
// every matching rule that its throttle lets through.
func (e *Engine) evaluate(m *rules.Matcher, batch []*store.Accepted) []*store.Evaluation {
	set := e.acquire()
	defer set.Release()
	now := e.opts.Deps.Now().UTC()
	evals := make([]*store.Evaluation, 0, len(batch))
	for _, a := range batch {
		ev := a.Event
		out := &store.Evaluation{EventID: ev.ID, Matched: []string{}}
		matched, errs := m.Match(set, ev)
		for _, err := range errs {
			e.metrics.ruleErrors.WithLabelValues(err.Rule.Name).Inc()
			msg := set.Secrets.Redact(err.Error())
			out.Errors = append(out.Errors, msg)
			e.log.Warn("rule condition failed", "event_id", ev.ID, "rule", err.Rule.Name, "err", msg)
		}
		for _, r := range matched {
			e.metrics.ruleMatches.WithLabelValues(r.Name).Inc()
			out.Matched = append(out.Matched, r.Name)
			suppressed, run := e.throttle.admit(r, ev)
			if !run {
				e.metrics.throttled.WithLabelValues(r.Name).Inc()
				out.Throttled = append(out.Throttled, r.Name)
				e.log.Debug("rule throttled", "event_id", ev.ID, "rule", r.Name)
				continue
			}
			e.log.Info("rule matched", "event_id", ev.ID, "rule", r.Name, "source", ev.Source, "kind", ev.Kind)
			out.Jobs = append(out.Jobs, newJobs(ev.ID, r, suppressed, now, 0)...)
		}
		evals = append(evals, out)
	}
	return evals
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
