package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	pace      time.Duration  // ingestPace; tests on a virtual clock set 0
	zone      *time.Location // digest buckets align to its clock
	tolerance time.Duration  // how overdue a timer may fire after an outage
	keys      *stateKeys     // the keys with state, for the caps
	matches   *matchCounts   // what matched, for the rules page
	started   time.Time      // timers due before this came due while livehook was down
}

// ingestLoop evaluates accepted events, oldest first, and commits each
// batch with its jobs as one unit. Once ingest ends (no more events will
// be accepted) it evaluates what is left and returns; commit ending means
// the shutdown timeout has passed, and what is left stays in the store.
func (v *evaluator) ingestLoop(ingest, commit context.Context) {
	var m rules.Matcher
	next := v.now() // when the next timer comes due: at once, for those due while livehook was down
	for commit.Err() == nil {
		wait, cancel := context.WithTimeout(ingest, max(next.Sub(v.now()), 0))
		if next.IsZero() {
			wait, cancel = ingest, func() {}
		}
		batch, err := v.store.Unevaluated(wait, ingestBatch)
		cancel()
		timerDue := false
		if err != nil {
			switch {
			case ingest.Err() != nil:
				return // stopping, and nothing is left
			case wait.Err() != nil:
				timerDue = true
			default:
				v.metrics.storeErrors.Inc()
				v.log.Error("cannot read events to evaluate", "err", err)
				sleepCtx(commit, time.Second)
				continue
			}
		}
		start := time.Now()
		// Events first: those accepted before a timer's due time must
		// change their key's state before the timer fires.
		if len(batch) > 0 {
			evals, ok := v.commit(commit, len(batch), func(ctx context.Context) ([]*store.Evaluation, error) {
				return v.evaluate(ctx, &m, batch)
			})
			if !ok {
				return // still in the store: the next start evaluates them
			}
			v.matches.add(evals, v.now())
			for _, ev := range evals {
				v.log.Debug("event processed", "event_id", ev.EventID, "rules_matched", len(ev.Matched))
			}
		}
		now := v.now()
		if timerDue && next.After(now) {
			// The wait was measured on the real clock; a clock that does
			// not move by itself (tests) has reached the due time too.
			now = next
		}
		var ok bool
		if next, ok = v.runTimers(commit, &m, now); !ok {
			return
		}
		if len(batch) == ingestBatch || ingest.Err() != nil || len(batch) == 0 {
			continue // a backlog, stopping, or only timers: no commit to space out
		}
		sleepCtx(ingest, v.pace-time.Since(start)) // at once if the commit took longer
	}
}

// runTimers evaluates every timer due at now and returns when the next
// one comes due; false if the commit context ended first.
func (v *evaluator) runTimers(ctx context.Context, m *rules.Matcher, now time.Time) (time.Time, bool) {
	for {
		due, next, err := v.store.DueTimers(ctx, now, ingestBatch)
		if err != nil {
			v.metrics.storeErrors.Inc()
			v.log.Error("cannot read due timers", "err", err)
			return now.Add(time.Second), ctx.Err() == nil
		}
		if len(due) == 0 {
			return next, true
		}
		if _, ok := v.commit(ctx, len(due), func(context.Context) ([]*store.Evaluation, error) {
			// Read again on every try: a conflict means an entry changed
			// since it was taken (fired inline by an event, dropped by a
			// reload), and its new state decides.
			fresh, err := v.stillDue(ctx, due, now)
			if err != nil {
				return nil, err
			}
			return v.evaluateTimers(ctx, fresh)
		}); !ok {
			return next, false
		}
		if len(due) < ingestBatch {
			return next, true
		}
	}
}

// stillDue keeps the taken timers whose entries are as they were taken.
func (v *evaluator) stillDue(ctx context.Context, due []store.StateEntry, now time.Time) ([]store.StateEntry, error) {
	keys := make([]string, len(due))
	for i, d := range due {
		keys[i] = d.Key
	}
	cur, err := v.store.State(ctx, keys, now)
	if err != nil {
		return nil, fmt.Errorf("read due timers again: %w", err)
	}
	out := due[:0:0]
	for _, d := range due {
		if c, ok := cur[d.Key]; ok && c.Version == d.Version && !c.Due.IsZero() && !c.Due.After(now) {
			out = append(out, d)
		} else if ok && c.Value == nil && c.Version == d.Version {
			out = append(out, d) // expired while due: still this timer's to settle
		}
	}
	return out, nil
}

// commit evaluates and commits until it works. What is evaluated is safe
// in the store, so a failure is tried again rather than dropped (a
// restart would evaluate it again too); false once ctx ends.
func (v *evaluator) commit(ctx context.Context, n int, evaluate func(context.Context) ([]*store.Evaluation, error)) ([]*store.Evaluation, bool) {
	for attempt := 1; ; attempt++ {
		evals, err := evaluate(ctx)
		if err == nil {
			if err = v.store.Commit(ctx, evals); err == nil {
				return evals, true
			}
		}
		if errors.Is(err, store.ErrStateConflict) {
			// The state read changed meanwhile: decide again, backing off
			// if it keeps changing.
			if attempt > 3 && !sleepCtx(ctx, min(time.Duration(attempt)*10*time.Millisecond, time.Second)) {
				return nil, false
			}
			continue
		}
		if errors.Is(err, store.ErrNotTaken) {
			// Another evaluator has the batch (this one was taken for gone)
			// and evaluates it: trying again would never succeed.
			v.log.Warn("evaluated events were no longer this process's to commit; left to the evaluator that has them", "items", n, "err", err)
			return nil, true
		}
		v.metrics.storeErrors.Inc()
		v.log.Error("cannot evaluate and save; retrying", "items", n, "attempt", attempt, "err", err)
		if !sleepCtx(ctx, storeRetryPause(attempt)) {
			return nil, false
		}
	}
}

// storeRetryPause is the wait before trying a failed store write again:
// growing, so that a database that is down is not hammered, and capped,
// so that work resumes soon after it is back.
func storeRetryPause(attempt int) time.Duration {
	return min(time.Duration(attempt)*100*time.Millisecond, 5*time.Second)
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
// event against the single-event rules, correlate it with the rules over
// time, throttle what matched or fired, and plan a job per step of each
// admitted one.
func (v *evaluator) evaluate(ctx context.Context, m *rules.Matcher, batch []*store.Accepted) ([]*store.Evaluation, error) {
	set := v.rules()
	defer set.Release()
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
	fs, err := v.correlate(ctx, m, set, batch, evals)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		ms = append(ms, match{out: f.out, ev: f.ev, rule: f.rule, firing: f.firing})
	}
	if err := v.plan(ctx, ms); err != nil {
		return nil, err
	}
	return evals, nil
}

// evaluateTimers runs due timers through the correlate, throttle and plan
// stages.
func (v *evaluator) evaluateTimers(ctx context.Context, due []store.StateEntry) ([]*store.Evaluation, error) {
	set := v.rules()
	defer set.Release()
	evals, fs := v.timers(due, set, v.now())
	var ms []match
	for _, f := range fs {
		ms = append(ms, match{out: f.out, ev: f.ev, rule: f.rule, firing: f.firing})
	}
	if err := v.plan(ctx, ms); err != nil {
		return nil, err
	}
	return evals, nil
}

// plan throttles the matches and firings and plans the jobs of those let
// through, in their evaluations.
func (v *evaluator) plan(ctx context.Context, ms []match) error {
	now := v.now().UTC()
	ms, err := v.shadow(ms, now)
	if err != nil {
		return err
	}
	admitted, err := v.throttle(ctx, ms, now)
	if err != nil {
		return err
	}
	for i, mt := range ms {
		r, ev := mt.rule, mt.ev
		if mt.firing == nil {
			v.metrics.ruleMatches.WithLabelValues(r.Name, "live").Inc()
		} else {
			v.metrics.ruleFirings.WithLabelValues(r.Name).Inc()
		}
		suppressed, run := admitted[i]
		if !run {
			v.metrics.throttled.WithLabelValues(r.Name).Inc()
			mt.out.Throttled = append(mt.out.Throttled, r.Name)
			v.log.Debug("rule throttled", "event_id", ev.ID, "rule", r.Name)
			continue
		}
		jobs := newJobs(ev.ID, r, suppressed, now, 0)
		if mt.firing != nil {
			enc, err := json.Marshal(mt.firing)
			if err != nil {
				return fmt.Errorf("encode firing of %s: %w", r.Name, err)
			}
			for _, j := range jobs {
				j.Firing = enc
			}
			v.log.Info("rule fired", "event_id", ev.ID, "rule", r.Name, "key", mt.firing.Key, "late", mt.firing.Late)
		} else {
			v.log.Info("rule matched", "event_id", ev.ID, "rule", r.Name, "source", ev.Source, "kind", ev.Kind)
		}
		mt.out.Jobs = append(mt.out.Jobs, jobs...)
	}
	return nil
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
