package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// The delivery stages: the runner claims due jobs from the store within
// each action instance's concurrency, attempt renders and sends one,
// classify decides what the result means for the job, and settle takes
// the follow-up events and records the job's new state, which the store
// turns into "run again at", "done" or "dead letter".

// claimLease is how long a claimed job is its runner's before the store
// may hand it to another: longer than any attempt takes (HTTP actions
// retry within seconds, the slowest action bounds its own timeout), so
// only a runner that died loses its jobs.
const claimLease = 15 * time.Minute

// saveTimeout bounds one try at saving a job's new state.
const saveTimeout = 30 * time.Second

// maxAttempt bounds one attempt, well inside claimLease: an action whose
// own timeout is longer (exec, plugins) is cut off there and retried.
const maxAttempt = claimLease - time.Minute

// claimOther is how many jobs of actions no longer in the rules a claim
// takes at once: they are settled as dead letters without running.
const claimOther = 64

// runner runs delivery jobs when they are due, at most Concurrency at a
// time per action instance, and records every attempt before the next.
type runner struct {
	deps  runnerDeps
	owner string // this process, as the store's leases name it

	ctx           context.Context // ends when no new attempt may start
	cancel        context.CancelFunc
	deliverCtx    context.Context // ends when in-flight attempts must give up
	cancelDeliver context.CancelFunc

	mu      sync.Mutex
	idle    *sync.Cond
	running int
	started bool
	done    chan struct{} // closed when the claim loop has returned

	limitsOf *rules.Set // the set limits was computed from
	limits   map[string]int
}

// runnerDeps is what the deliver stages need of the rest of the engine.
type runnerDeps struct {
	store   store.Store
	now     func() time.Time
	rules   func() *rules.Set // the current set, acquired: Release it
	accept  func(*event.Event) (string, error)
	log     *slog.Logger
	metrics *metrics
}

func newRunner(deps runnerDeps) *runner {
	r := &runner{deps: deps, owner: "local-" + ulid.Make().String(), done: make(chan struct{})}
	r.idle = sync.NewCond(&r.mu)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.deliverCtx, r.cancelDeliver = context.WithCancel(context.Background())
	return r
}

func (r *runner) start() {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	go r.loop()
}

// loop claims what is due and can start, then waits until the next job
// comes due or the store has news (new jobs, a slot freed).
func (r *runner) loop() {
	defer close(r.done)
	d := r.deps
	var dueBy time.Time // the due time a timer last fired for
	for r.ctx.Err() == nil {
		now := d.now()
		if dueBy.After(now) {
			// The timer measured the wait on the real clock; a clock that
			// does not move by itself (tests) has reached its due time too.
			now = dueBy
		}
		claimed, next, err := d.store.ClaimJobs(r.ctx, store.Claim{
			Owner: r.owner, Now: now, Lease: claimLease, Limits: r.concurrency(), Other: claimOther,
		})
		if err != nil {
			d.metrics.storeErrors.Inc()
			d.log.Error("cannot claim due deliveries", "err", err)
			if len(claimed) == 0 {
				next = now.Add(time.Second)
			}
		}
		for _, c := range claimed {
			r.begin()
			go r.run(c)
		}
		dueBy = time.Time{}
		var timer *time.Timer
		var fired <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(max(next.Sub(d.now()), 0))
			fired = timer.C
		}
		select {
		case <-r.ctx.Done():
		case <-d.store.Wake():
		case <-fired:
			dueBy = next
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// concurrency is each action instance's delivery concurrency under the
// current rules, computed once per rule set.
func (r *runner) concurrency() map[string]int {
	set := r.deps.rules()
	defer set.Release()
	if set == r.limitsOf { // only the loop's goroutine calls this
		return r.limits
	}
	limits := map[string]int{}
	for _, rule := range set.Rules {
		for _, st := range rule.Steps {
			limits[st.Action] = st.Delivery.Concurrency
		}
	}
	r.limitsOf, r.limits = set, limits
	return limits
}

func (r *runner) begin() {
	r.mu.Lock()
	r.running++
	r.mu.Unlock()
}

func (r *runner) end() {
	r.mu.Lock()
	if r.running--; r.running == 0 {
		r.idle.Broadcast()
	}
	r.mu.Unlock()
}

// run makes one attempt at a claimed job and settles it.
func (r *runner) run(c store.Claimed) {
	j := c.Job
	defer r.end()
	set := r.deps.rules()
	defer set.Release()
	step := set.Step(j.Rule, j.Step)
	ev := c.Event
	if ev == nil {
		ev = firingEvent(j) // pruned while the rule over time waited: its firing kept a copy
	}
	switch {
	case ev == nil:
		// Nothing to render it from: a dead letter that says so.
		r.settle(j, actionapi.Failed(actionapi.Permanent, fmt.Errorf("its event %s is gone from the store", j.EventID)),
			actionapi.Alerting, 0, set.Secrets.Redact)
	case step == nil || step.Action != j.Action || step.Type != j.Type:
		// The rules changed before this delivery ran: running another
		// action under this delivery's id would be wrong.
		r.settle(j, actionapi.Failed(actionapi.Permanent,
			fmt.Errorf("rule %q step %d is no longer %s (%s): the rules changed before this delivery ran", j.Rule, j.Step, j.Action, j.Type)),
			actionapi.Alerting, 0, set.Secrets.Redact)
	default:
		start := time.Now()
		res := r.attempt(step, j, ev, set.Secrets.Redact)
		r.settle(j, res, step.Delivery, time.Since(start), set.Secrets.Redact)
	}
}

// attempt renders and sends one delivery. A panicking action (a service
// reply it did not expect) fails that delivery, not the daemon.
func (r *runner) attempt(step *rules.Step, j *store.Job, ev *event.Event, redact func(string) string) (res actionapi.Result) {
	defer func() {
		if p := recover(); p != nil {
			r.deps.log.Error("action panicked", "job", j.ID, "action", j.Action, "panic", redact(fmt.Sprint(p)), "stack", redact(string(debug.Stack())))
			res = actionapi.Failed(actionapi.Permanent, fmt.Errorf("the %s action failed unexpectedly: %v", j.Type, p))
		}
	}()
	in, err := inputFor(j, ev)
	if err != nil {
		return actionapi.Failed(actionapi.Permanent, err)
	}
	plan, err := step.Step.Plan(in)
	if err != nil {
		return actionapi.Failed(actionapi.Permanent, fmt.Errorf("render: %w", err))
	}
	// An attempt ends before its claim's lease does, or the job could be
	// claimed again and run twice at once.
	ctx, cancel := context.WithTimeout(r.deliverCtx, maxAttempt)
	defer cancel()
	return step.Step.Do(ctx, plan)
}

// firingEvent is the event a firing's job belongs to, as the firing kept
// it; nil for other jobs.
func firingEvent(j *store.Job) *event.Event {
	var f firing
	if len(j.Firing) == 0 || json.Unmarshal(j.Firing, &f) != nil {
		return nil
	}
	if f.Trigger != nil {
		return f.Trigger
	}
	if len(f.Events) > 0 {
		return f.Events[0]
	}
	return f.Prev
}

// inputFor builds what a job's step renders from: its event and, for a
// rule over time, what it fired with.
func inputFor(j *store.Job, ev *event.Event) (actionapi.Input, error) {
	in := actionapi.Input{Event: ev, Rule: j.Rule, DeliveryID: j.ID, Suppressed: j.Suppressed}
	if len(j.Firing) > 0 {
		var f firing
		if err := json.Unmarshal(j.Firing, &f); err != nil {
			return in, fmt.Errorf("read what the rule fired with: %w", err)
		}
		in.Temporal = f.templateData()
	}
	return in, nil
}

// classify appends the attempt to j and decides the job's next state.
func classify(j *store.Job, res actionapi.Result, p actionapi.DeliveryPolicy, now time.Time, took time.Duration, detail string) {
	j.Attempts = append(j.Attempts, store.Attempt{At: now, Outcome: res.Outcome.String(), Detail: detail, IDs: res.IDs, Duration: took})
	switch {
	case res.Outcome == actionapi.Delivered:
		j.State, j.LastError = store.Delivered, ""
	case res.Outcome == actionapi.Permanent:
		j.State, j.LastError = store.Dead, detail
	case j.Tries() >= p.MaxAttempts:
		j.State, j.LastError = store.Dead, fmt.Sprintf("gave up after %d attempts: %s", j.Tries(), detail)
	case now.Sub(j.Created) >= p.MaxAge:
		j.State, j.LastError = store.Dead, fmt.Sprintf("gave up after %s: %s", p.MaxAge, detail)
	default:
		j.State, j.LastError = store.Pending, detail
		j.NextAt = now.Add(retryDelay(p, j.Tries(), res.RetryAfter))
	}
}

// settle classifies an attempt's result, records it and reports it.
func (r *runner) settle(j *store.Job, res actionapi.Result, p actionapi.DeliveryPolicy, took time.Duration, redact func(string) string) {
	detail := redact(res.Detail)
	classify(j, res, p, r.deps.now().UTC(), took, detail)
	log := r.deps.log.With("event_id", j.EventID, "rule", j.Rule, "action", j.Action, "type", j.Type, "job", j.ID)
	r.record(j, res, log)
	r.report(j, res, took, detail, log)
}

// record takes the follow-up events the attempt reported, then saves the
// job's new state, which the store turns into "run again at", "done" or
// "dead letter".
func (r *runner) record(j *store.Job, res actionapi.Result, log *slog.Logger) {
	// Follow-ups first: once the job is saved as done, a crash must not
	// have lost what it reported.
	for _, f := range res.Events {
		if id, err := r.deps.accept(f); err != nil {
			log.Error("follow-up event lost", "source", f.Source, "err", err)
		} else {
			log.Info("follow-up event accepted", "follow_up_id", id, "source", f.Source)
		}
	}
	// Saved while the job still holds its slot, so a crash can repeat at
	// most the deliveries in flight. A failed save (the database cut off)
	// is tried again until it works: given up, the job would keep its
	// lease, and with it a slot of its action's concurrency, until the
	// lease ends.
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.deliverCtx), saveTimeout)
		err := r.deps.store.Finish(ctx, r.owner, j)
		cancel()
		switch {
		case err == nil:
			return
		case errors.Is(err, store.ErrLeaseLost):
			// Another runner took the job over: its record decides.
			log.Warn("delivery state not saved: the job is no longer this runner's", "err", err)
			return
		}
		r.deps.metrics.storeErrors.Inc()
		log.Error("cannot save delivery state; retrying", "attempt", attempt, "err", err)
		if !sleepCtx(r.deliverCtx, storeRetryPause(attempt)) {
			// Shutting down: the attempt happened, and not recording it
			// means it runs again once the lease ends, which
			// at-least-once allows.
			log.Error("delivery state not saved at shutdown: the delivery runs again", "err", err)
			return
		}
	}
}

// report counts the attempt and logs it.
func (r *runner) report(j *store.Job, res actionapi.Result, took time.Duration, detail string, log *slog.Logger) {
	m := r.deps.metrics
	m.deliveries.WithLabelValues(j.Action, j.Type, res.Outcome.String()).Inc()
	m.deliveryTime.WithLabelValues(j.Action, j.Type).Observe(took.Seconds())
	attrs := []any{"result", res.Outcome.String(), "attempt", j.Tries(), "duration", took.Round(time.Millisecond)}
	for k, v := range res.IDs {
		attrs = append(attrs, k, v)
	}
	switch j.State {
	case store.Delivered:
		log.Info("delivered", attrs...)
	case store.Dead:
		log.Error("delivery failed for good: dead letter", append(attrs, "detail", j.LastError)...)
	default:
		m.retries.WithLabelValues(j.Action, j.Type).Inc()
		log.Warn("delivery failed; will retry", append(attrs, "detail", detail, "next_at", j.NextAt)...)
	}
}

// retryDelay is the wait before the next attempt: exponential from the
// policy's backoff with jitter, capped, and never shorter than the
// service asked for.
func retryDelay(p actionapi.DeliveryPolicy, tries int, retryAfter time.Duration) time.Duration {
	d := p.MaxBackoff
	if shift := tries - 1; shift < 63 && p.Backoff <= p.MaxBackoff>>shift {
		d = p.Backoff << shift // cannot overflow: it is at most MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// stop ends claiming and lets running attempts finish until ctx ends,
// then cancels them. Jobs not started stay pending in the store.
func (r *runner) stop(ctx context.Context) error {
	r.cancel()
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		if started {
			<-r.done
		}
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
