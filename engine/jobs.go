package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livehook/livehook/engine/action"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// runner runs delivery jobs when they are due, at most Concurrency at a
// time per action instance, and records every attempt before the next.
type runner struct {
	e *Engine

	ctx           context.Context // ends when no new attempt may start
	cancel        context.CancelFunc
	deliverCtx    context.Context // ends when in-flight attempts must give up
	cancelDeliver context.CancelFunc

	mu       sync.Mutex
	idle     *sync.Cond
	running  int
	stopping bool
	sems     map[string]chan struct{} // per action instance and concurrency

	pending atomic.Int64
	dead    atomic.Int64
}

func newRunner(e *Engine) *runner {
	r := &runner{e: e, sems: map[string]chan struct{}{}}
	r.idle = sync.NewCond(&r.mu)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.deliverCtx, r.cancelDeliver = context.WithCancel(context.Background())
	return r
}

// resume schedules every job a previous run left pending.
func (r *runner) resume() error {
	jobs, err := r.e.store.PendingJobs()
	if err != nil {
		return err
	}
	events := map[string]*store.EventRecord{}
	for _, j := range jobs {
		rec, ok := events[j.EventID]
		if !ok {
			rec, _, err = r.e.store.Event(j.EventID)
			if errors.Is(err, store.ErrNotFound) {
				// Nothing to render it from: a dead letter that says so,
				// rather than a daemon that cannot start.
				j.State, j.LastError = store.Dead, "its event is gone from the store"
				if err := r.e.store.PutJobs(j); err != nil {
					return fmt.Errorf("job %s: %w", j.ID, err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("job %s: event: %w", j.ID, err)
			}
			events[j.EventID] = rec
		}
		r.add(j, rec)
	}
	dead, err := r.e.store.DeadCount()
	if err != nil {
		return err
	}
	r.dead.Store(int64(dead))
	if len(jobs) > 0 {
		r.e.log.Info("resumed pending deliveries", "jobs", len(jobs))
	}
	return nil
}

// add takes a new pending job.
func (r *runner) add(j *store.Job, rec *store.EventRecord) {
	r.pending.Add(1)
	r.schedule(j, rec)
}

func (r *runner) schedule(j *store.Job, rec *store.EventRecord) {
	time.AfterFunc(max(j.NextAt.Sub(r.e.opts.Deps.Now()), 0), func() { r.run(j, rec) })
}

// begin registers a running job; false once stopping.
func (r *runner) begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.running++
	return true
}

func (r *runner) end() {
	r.mu.Lock()
	r.running--
	if r.running == 0 {
		r.idle.Broadcast()
	}
	r.mu.Unlock()
}

func (r *runner) sem(name string, n int) chan struct{} {
	key := fmt.Sprintf("%s\x00%d", name, n)
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sems[key]
	if !ok {
		s = make(chan struct{}, n)
		r.sems[key] = s
	}
	return s
}

// run makes one attempt at j. A job left unstarted at shutdown stays
// pending in the store for the next start.
func (r *runner) run(j *store.Job, rec *store.EventRecord) {
	if !r.begin() {
		return
	}
	defer r.end()
	e := r.e
	set := e.acquire()
	defer set.Release()
	step := set.Step(j.Rule, j.Step)
	if step == nil || step.Action != j.Action || step.Type != j.Type {
		// The rules changed before this delivery ran: running another
		// action under this delivery's id would be wrong.
		r.settle(j, rec, action.Failed(action.Permanent,
			fmt.Errorf("rule %q step %d is no longer %s (%s): the rules changed before this delivery ran", j.Rule, j.Step, j.Action, j.Type)),
			action.Alerting, 0, func(s string) string { return s })
		return
	}
	sem := r.sem(step.Action, step.Delivery.Concurrency)
	select {
	case sem <- struct{}{}:
	case <-r.ctx.Done():
		return
	}
	defer func() { <-sem }()
	start := time.Now()
	res := r.attempt(step, j, rec)
	r.settle(j, rec, res, step.Delivery, time.Since(start), set.Secrets.Redact)
}

// attempt renders and sends one delivery. A panicking action (a service
// reply it did not expect) fails that delivery, not the daemon.
func (r *runner) attempt(step *rules.Step, j *store.Job, rec *store.EventRecord) (res action.Result) {
	defer func() {
		if p := recover(); p != nil {
			r.e.log.Error("action panicked", "job", j.ID, "action", j.Action, "panic", p, "stack", string(debug.Stack()))
			res = action.Failed(action.Permanent, fmt.Errorf("the %s action failed unexpectedly: %v", j.Type, p))
		}
	}()
	plan, err := step.Step.Plan(inputFor(j, rec))
	if err != nil {
		return action.Failed(action.Permanent, fmt.Errorf("render: %w", err))
	}
	return step.Step.Do(r.deliverCtx, plan)
}

// settle records an attempt's result and decides what comes next.
func (r *runner) settle(j *store.Job, rec *store.EventRecord, res action.Result, p action.DeliveryPolicy, took time.Duration, redact func(string) string) {
	e := r.e
	now := e.opts.Deps.Now().UTC()
	detail := redact(res.Detail)
	j.Attempts = append(j.Attempts, store.Attempt{At: now, Outcome: res.Outcome.String(), Detail: detail, IDs: res.IDs, Duration: took})
	switch {
	case res.Outcome == action.Delivered:
		j.State, j.LastError = store.Delivered, ""
	case res.Outcome == action.Permanent:
		j.State, j.LastError = store.Dead, detail
	case j.Tries() >= p.MaxAttempts:
		j.State, j.LastError = store.Dead, fmt.Sprintf("gave up after %d attempts: %s", j.Tries(), detail)
	case now.Sub(j.Created) >= p.MaxAge:
		j.State, j.LastError = store.Dead, fmt.Sprintf("gave up after %s: %s", p.MaxAge, detail)
	default:
		j.State, j.LastError = store.Pending, detail
		j.NextAt = now.Add(retryDelay(p, j.Tries(), res.RetryAfter))
	}
	log := e.log.With("event_id", j.EventID, "rule", j.Rule, "action", j.Action, "type", j.Type, "job", j.ID)
	// Follow-ups first: once the job is saved as done, a crash must not
	// have lost what it reported.
	for _, f := range res.Events {
		if id, err := e.acceptFollowUp(f); err != nil {
			log.Error("follow-up event lost", "source", f.Source, "err", err)
		} else {
			log.Info("follow-up event accepted", "follow_up_id", id, "source", f.Source)
		}
	}
	if err := e.store.PutJobs(j); err != nil {
		// The attempt happened; not recording it means it may run again
		// after a restart, which at-least-once allows.
		e.metrics.storeErrors.Inc()
		e.log.Error("cannot save delivery state", "job", j.ID, "err", err)
	}
	e.metrics.deliveries.WithLabelValues(j.Action, j.Type, res.Outcome.String()).Inc()
	e.metrics.deliveryTime.WithLabelValues(j.Action, j.Type).Observe(took.Seconds())
	attrs := []any{"result", res.Outcome.String(), "attempt", j.Tries(), "duration", took.Round(time.Millisecond)}
	for k, v := range res.IDs {
		attrs = append(attrs, k, v)
	}
	switch j.State {
	case store.Delivered:
		r.pending.Add(-1)
		log.Info("delivered", attrs...)
	case store.Dead:
		r.dead.Add(1)
		r.pending.Add(-1)
		log.Error("delivery failed for good: dead letter", append(attrs, "detail", j.LastError)...)
	default:
		e.metrics.retries.WithLabelValues(j.Action, j.Type).Inc()
		log.Warn("delivery failed; will retry", append(attrs, "detail", detail, "next_at", j.NextAt)...)
		r.schedule(j, rec)
	}
}

// retryDelay is the wait before the next attempt: exponential from the
// policy's backoff with jitter, capped, and never shorter than the
// service asked for.
func retryDelay(p action.DeliveryPolicy, tries int, retryAfter time.Duration) time.Duration {
	d := p.MaxBackoff
	if shift := tries - 1; shift < 63 && p.Backoff <= p.MaxBackoff>>shift {
		d = p.Backoff << shift // cannot overflow: it is at most MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// stop lets running attempts finish until ctx ends, then cancels them.
// Jobs not started stay pending in the store.
func (r *runner) stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	r.cancel()
	finished := make(chan struct{})
	go func() {
		r.mu.Lock()
		for r.running > 0 {
			r.idle.Wait()
		}
		r.mu.Unlock()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
	}
	// Out of time: cancel what is in flight and give it a moment to record
	// its attempt, so the next start knows it happened.
	r.cancelDeliver()
	select {
	case <-finished:
	case <-time.After(2 * time.Second):
	}
	return fmt.Errorf("stop: in-flight deliveries cancelled at the shutdown timeout: %w", ctx.Err())
}
