// Package engine runs livehook: it accepts events, evaluates them against
// the current rule set and delivers each matching rule's actions. It knows
// action types only through the action registry.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/action"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/yamlconf"
)

// ErrBusy means the engine cannot take another event right now; intake
// answers 503 so Aliyun retries.
var ErrBusy = errors.New("engine: queue full")

// ErrStopped means the engine is shutting down.
var ErrStopped = errors.New("engine: stopped")

// Options configure an Engine.
type Options struct {
	RulesPath string
	// Registry returns the action types for each load, so types found at
	// run time (plugins) are rescanned on reload. Default: action.Default().
	Registry func() (*action.Registry, error)
	Deps      action.Deps
	Logger    *slog.Logger
	Metrics   prometheus.Registerer
	Workers   int // events processed at once; default 16
	QueueSize int // accepted events waiting; default 10000
}

// ReloadStatus is the outcome of the last load, shown by /api/rules.
type ReloadStatus struct {
	OK          bool                  `json:"ok"`
	At          time.Time             `json:"at"`
	Hash        string                `json:"hash,omitempty"`
	Error       string                `json:"error,omitempty"`
	Diagnostics []yamlconf.Diagnostic `json:"diagnostics,omitempty"`
}

// Engine evaluates events against the current rule set.
type Engine struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	current  atomic.Pointer[rules.Set]
	status   atomic.Pointer[ReloadStatus]
	throttle *throttle

	reloadMu sync.Mutex // one reload at a time
	mu       sync.RWMutex
	queue    chan *event.Event
	pending  atomic.Int64 // events accepted and not yet processed
	stopped  bool
	workers  sync.WaitGroup
}

// New loads the rules and returns an engine ready to Start. A rules file
// that does not load is an error: the daemon refuses to start on it.
func New(o Options) (*Engine, error) {
	if o.Registry == nil {
		o.Registry = func() (*action.Registry, error) { return action.Default(), nil }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Deps.Logger == nil {
		o.Deps.Logger = o.Logger
	}
	if o.Deps.HTTP == nil {
		o.Deps.HTTP = action.NewHTTP(nil)
	}
	if o.Deps.Now == nil {
		o.Deps.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	e := &Engine{opts: o, log: o.Logger, queue: make(chan *event.Event, o.QueueSize)}
	e.metrics = newMetrics(o.Metrics, func() float64 { return float64(len(e.queue)) })
	e.throttle = newThrottle(o.Deps.Now)
	if err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Rules returns the current rule set.
func (e *Engine) Rules() *rules.Set { return e.current.Load() }

// LastReload returns the outcome of the most recent load.
func (e *Engine) LastReload() ReloadStatus { return *e.status.Load() }

// Reload loads the rules again and swaps them in atomically. On failure
// the previous rules stay in force and every problem is logged.
func (e *Engine) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	now := e.opts.Deps.Now()
	reg, err := e.opts.Registry()
	var set *rules.Set
	if err == nil {
		set, err = rules.Load(e.opts.RulesPath, rules.Options{Registry: reg, Deps: e.opts.Deps})
	}
	if err != nil {
		e.metrics.reloads.WithLabelValues("error").Inc()
		e.metrics.lastReloadOK.Set(0)
		st := &ReloadStatus{At: now, Error: err.Error(), Diagnostics: yamlconf.Diagnostics(err)}
		if old := e.current.Load(); old != nil {
			st.Hash = old.Hash
		}
		e.status.Store(st)
		for _, d := range st.Diagnostics {
			e.log.Error("rules: "+d.Msg, "file", d.File, "line", d.Line, "col", d.Col)
		}
		if st.Diagnostics == nil {
			e.log.Error("rules: load failed", "err", err)
		}
		return err
	}
	old := e.current.Swap(set)
	e.metrics.reloads.WithLabelValues("success").Inc()
	e.metrics.lastReloadOK.Set(1)
	e.metrics.lastReload.Set(float64(now.Unix()))
	e.status.Store(&ReloadStatus{OK: true, At: now, Hash: set.Hash})
	switch {
	case old == nil:
		e.log.Info("rules loaded", "path", set.Path, "summary", set.Summary(), "hash", set.Hash)
	case old.Hash == set.Hash:
		e.log.Debug("rules unchanged", "hash", set.Hash)
	default:
		e.log.Info("rules reloaded", "path", set.Path, "summary", set.Summary(), "hash", set.Hash)
	}
	if old != nil {
		old.Retire() // its instances close once in-flight deliveries finish
	}
	return nil
}

// Accept takes an event for processing and returns its id. The event is
// processed after Accept returns, never before.
func (e *Engine) Accept(_ context.Context, ev *event.Event) (string, error) {
	ev.ID = ulid.Make().String()
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = e.opts.Deps.Now().UTC()
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		return "", ErrStopped
	}
	e.pending.Add(1)
	select {
	case e.queue <- ev:
		return ev.ID, nil
	default:
		e.pending.Add(-1)
		return "", ErrBusy
	}
}

// Start runs the workers until Stop.
func (e *Engine) Start() {
	for range e.opts.Workers {
		e.workers.Add(1)
		go func() {
			defer e.workers.Done()
			var m rules.Matcher
			for ev := range e.queue {
				e.process(&m, ev)
				e.pending.Add(-1)
			}
		}()
	}
}

// Stop refuses new events, lets the workers finish what was accepted
// until ctx ends, and closes the rules' instances.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		close(e.queue)
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop: %d event(s) not processed: %w", len(e.queue), ctx.Err())
	}
	if set := e.current.Load(); set != nil {
		set.Retire()
	}
	return nil
}

// acquire returns the current set, marked in use.
func (e *Engine) acquire() *rules.Set {
	for {
		s := e.current.Load()
		if s.Acquire() {
			return s
		}
	}
}

func (e *Engine) process(m *rules.Matcher, ev *event.Event) {
	set := e.acquire()
	defer set.Release()
	matched, errs := m.Match(set, ev)
	for _, err := range errs {
		e.metrics.ruleErrors.WithLabelValues(err.Rule.Name).Inc()
		e.log.Warn("rule condition failed", "event_id", ev.ID, "rule", err.Rule.Name, "err", set.Secrets.Redact(err.Err.Error()))
	}
	for _, r := range matched {
		e.metrics.ruleMatches.WithLabelValues(r.Name).Inc()
		suppressed, run := e.throttle.admit(r, ev)
		if !run {
			e.metrics.throttled.WithLabelValues(r.Name).Inc()
			e.log.Debug("rule throttled", "event_id", ev.ID, "rule", r.Name)
			continue
		}
		e.log.Info("rule matched", "event_id", ev.ID, "rule", r.Name, "source", ev.Source, "kind", ev.Kind)
		for _, s := range r.Steps {
			in := action.Input{Event: ev, Rule: r.Name, Suppressed: suppressed,
				DeliveryID: fmt.Sprintf("%s.%s.%d", ev.ID, r.Name, s.Index)}
			e.deliver(set, s, in)
		}
	}
	e.log.Debug("event processed", "event_id", ev.ID, "rules_matched", len(matched))
}

func (e *Engine) deliver(set *rules.Set, s *rules.Step, in action.Input) {
	start := time.Now()
	log := e.log.With("event_id", in.Event.ID, "rule", in.Rule, "action", s.Action, "type", s.Type)
	var res action.Result
	if plan, err := s.Step.Plan(in); err != nil {
		res = action.Failed(action.Permanent, fmt.Errorf("render: %w", err))
	} else {
		res = s.Step.Do(context.Background(), plan)
	}
	e.metrics.deliveries.WithLabelValues(s.Action, s.Type, res.Outcome.String()).Inc()
	e.metrics.deliveryTime.WithLabelValues(s.Action, s.Type).Observe(time.Since(start).Seconds())
	attrs := []any{"result", res.Outcome.String(), "duration", time.Since(start).Round(time.Millisecond)}
	for k, v := range res.IDs {
		attrs = append(attrs, k, v)
	}
	for _, f := range res.Events {
		if id, err := e.Accept(context.Background(), f); err != nil {
			log.Error("follow-up event lost", "source", f.Source, "err", err)
		} else {
			log.Info("follow-up event accepted", "follow_up_id", id, "source", f.Source)
		}
	}
	if res.Outcome == action.Delivered {
		log.Info("delivered", attrs...)
		return
	}
	log.Warn("delivery failed", append(attrs, "detail", set.Secrets.Redact(res.Detail))...)
}
