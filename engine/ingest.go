package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/livehook/livehook/engine/action"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// queue hands accepted events to the ingester. It is unbounded on purpose:
// an event in it is already durable, and refusing it would be worse than
// holding it in memory; the journal bounds what a crash can replay.
type queue struct {
	mu     sync.Mutex
	items  []*store.Accepted
	wake   chan struct{}
	closed bool
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

func (q *queue) push(a *store.Accepted) {
	q.mu.Lock()
	q.items = append(q.items, a)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// take waits for items and returns up to max of them; nil once closed and empty.
func (q *queue) take(max int) []*store.Accepted {
	for {
		q.mu.Lock()
		if n := min(len(q.items), max); n > 0 {
			batch := q.items[:n:n]
			q.items = q.items[n:]
			q.mu.Unlock()
			return batch
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil
		}
		<-q.wake
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// ingestBatch bounds how many events share one state commit.
const ingestBatch = 256

// ingestPace spaces the ingester's state commits while it keeps up. Each
// bbolt commit costs two fsyncs on the disk the journal fsyncs on; spaced
// out, they batch many events and stay out of the way of the request
// path's fsync, at the price of evaluating an event up to this much later
// (it is already durable in the journal). A full batch means a backlog,
// and then the ingester does not wait at all.
const ingestPace = 50 * time.Millisecond

// watermark tracks the journal position below which every event is
// applied. Concurrent requests reach the queue in a different order than
// the journal numbered them, so the position advances only over a dense
// run; events applied beyond it are replayed after a crash and skipped
// then, because the store already has them.
type watermark struct {
	next  uint64          // the lowest seq not yet applied; set at start from the store
	ahead map[uint64]bool // applied seqs above next
}

// advance records batch as applied and returns the new position: every
// seq up to it is applied.
func (w *watermark) advance(batch []*store.Accepted) uint64 {
	if w.ahead == nil {
		w.ahead = map[uint64]bool{}
	}
	for _, a := range batch {
		if a.Seq >= w.next {
			w.ahead[a.Seq] = true
		}
	}
	for w.ahead[w.next] {
		delete(w.ahead, w.next)
		w.next++
	}
	return w.next - 1
}

// ingestLoop evaluates accepted events, in the order they were accepted,
// and commits each batch with its jobs in one transaction. It runs until
// the queue is closed and drained.
func (e *Engine) ingestLoop(ctx context.Context) {
	var m rules.Matcher
	for ctx.Err() == nil {
		batch := e.ingest.take(ingestBatch)
		if batch == nil {
			return
		}
		start := time.Now()
		records, jobs := e.evaluate(&m, batch)
		dedupe := map[string]store.DedupeEntry{}
		for _, a := range batch {
			if a.DedupeKey != "" {
				dedupe[a.DedupeKey] = store.DedupeEntry{ID: a.Event.ID, Expires: a.Event.ReceivedAt.Add(a.DedupeTTL)}
			}
		}
		seq := e.watermark.advance(batch)
		// The events are safe in the journal, so a failed commit is retried
		// rather than dropped; a restart would replay them too.
		for attempt := 1; ; attempt++ {
			err := e.store.Apply(records, jobs, dedupe, seq)
			if err == nil {
				break
			}
			e.metrics.storeErrors.Inc()
			e.log.Error("cannot save evaluated events; retrying", "events", len(records), "attempt", attempt, "err", err)
			select {
			case <-time.After(min(time.Duration(attempt)*100*time.Millisecond, 5*time.Second)):
			case <-ctx.Done():
				return // still in the journal: the next start evaluates them
			}
		}
		e.dedupe.sweep(e.opts.Deps.Now())
		byID := make(map[string]*store.EventRecord, len(records))
		for _, rec := range records {
			rec.Encoded = nil // stored; the runner keeps the record for as long as its jobs run
			byID[rec.Event.ID] = rec
			e.log.Debug("event processed", "event_id", rec.Event.ID, "rules_matched", len(rec.Matched))
		}
		for _, j := range jobs {
			e.runner.add(j, byID[j.EventID])
		}
		e.unevaluated.Add(-int64(len(batch)))
		if len(batch) == ingestBatch {
			continue // a backlog: commits are as large as they get already
		}
		select {
		case <-time.After(ingestPace - time.Since(start)): // at once if the commit took longer
		case <-ctx.Done():
		}
	}
}

// evaluate runs the rules once per event and makes a job per step of every
// matching rule that its throttle lets through.
func (e *Engine) evaluate(m *rules.Matcher, batch []*store.Accepted) ([]*store.EventRecord, []*store.Job) {
	set := e.acquire()
	defer set.Release()
	now := e.opts.Deps.Now().UTC()
	var records []*store.EventRecord
	var jobs []*store.Job
	for _, a := range batch {
		ev := a.Event
		rec := &store.EventRecord{Event: ev, DedupeKey: a.DedupeKey, Matched: []string{}, Encoded: a.Encoded}
		matched, errs := m.Match(set, ev)
		for _, err := range errs {
			e.metrics.ruleErrors.WithLabelValues(err.Rule.Name).Inc()
			msg := set.Secrets.Redact(err.Error())
			rec.Errors = append(rec.Errors, msg)
			e.log.Warn("rule condition failed", "event_id", ev.ID, "rule", err.Rule.Name, "err", msg)
		}
		for _, r := range matched {
			e.metrics.ruleMatches.WithLabelValues(r.Name).Inc()
			rec.Matched = append(rec.Matched, r.Name)
			suppressed, run := e.throttle.admit(r, ev)
			if !run {
				e.metrics.throttled.WithLabelValues(r.Name).Inc()
				rec.Throttled = append(rec.Throttled, r.Name)
				e.log.Debug("rule throttled", "event_id", ev.ID, "rule", r.Name)
				continue
			}
			e.log.Info("rule matched", "event_id", ev.ID, "rule", r.Name, "source", ev.Source, "kind", ev.Kind)
			jobs = append(jobs, newJobs(ev.ID, r, suppressed, now, "")...)
		}
		records = append(records, rec)
	}
	return records, jobs
}

// newJobs makes one job per step of r. Job ids are stable per (event, rule,
// step), so they double as the deliveries' idempotency keys; a replay adds
// a suffix, because it is a new, deliberate delivery.
func newJobs(eventID string, r *rules.Rule, suppressed int, now time.Time, suffix string) []*store.Job {
	jobs := make([]*store.Job, 0, len(r.Steps))
	for _, s := range r.Steps {
		jobs = append(jobs, &store.Job{
			ID:      fmt.Sprintf("%s.%s.%d%s", eventID, r.Name, s.Index, suffix),
			EventID: eventID, Rule: r.Name, Step: s.Index, Action: s.Action, Type: s.Type,
			Suppressed: suppressed, State: store.Pending, Created: now, NextAt: now,
			Attempts: []store.Attempt{},
		})
	}
	return jobs
}

// inputFor builds what a job's step renders from.
func inputFor(j *store.Job, rec *store.EventRecord) action.Input {
	return action.Input{Event: rec.Event, Rule: j.Rule, DeliveryID: j.ID, Suppressed: j.Suppressed}
}
