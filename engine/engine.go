// Package engine runs livehook: it accepts events durably, evaluates each
// once against the current rule set, and turns every matching rule's steps
// into persisted delivery jobs that run until they succeed, fail for good
// or run out of attempts. It knows action types only through the registry.
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

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/yamlconf"
)

// ErrStopped means the engine is shutting down.
var ErrStopped = errors.New("engine: stopped")

// Default windows for recognising Aliyun's retries of a callback.
const (
	// A recording file is generated once: a file event's identity holds a day.
	DefaultFileDedupe = 24 * time.Hour
	// Status events have no time of their own, and two genuine record_error
	// events for one stream can be identical: remember them only a little
	// longer than Aliyun's retries last (5 tries, at most seconds apart).
	DefaultStatusDedupe = 5 * time.Minute
	DefaultRetention    = 7 * 24 * time.Hour
)

// Options configure an Engine.
type Options struct {
	RulesPath string
	// Registry returns the action types for each load, so types found at
	// run time (plugins) are rescanned on reload. Default: actionapi.Default().
	Registry func() (*actionapi.Registry, error)
	Store    store.Store // required: where accepted events and jobs live
	// Sources are the kinds of callback, for their dedupe windows and
	// metric labels. Default: sourceapi.Default().
	Sources *sourceapi.Registry
	Deps    actionapi.Deps
	Logger  *slog.Logger
	Metrics prometheus.Registerer

	FileDedupe   time.Duration // default DefaultFileDedupe
	StatusDedupe time.Duration // default DefaultStatusDedupe
	Retention    time.Duration // finished events are pruned after this; default DefaultRetention
	// StateOutageTolerance is how overdue a timer of a rule over time may
	// be after the daemon was down and still fire (late); default
	// DefaultStateOutageTolerance.
	StateOutageTolerance time.Duration
	// Zone is the clock digest buckets align to; default time.Local.
	Zone *time.Location
	// StateMaxKeys bounds the keys all rules over time keep state for;
	// default DefaultStateMaxKeys.
	StateMaxKeys int
}

// ReloadStatus is the outcome of the last load, shown by /api/rules.
type ReloadStatus struct {
	OK          bool                  `json:"ok"`
	At          time.Time             `json:"at"`
	Hash        string                `json:"hash,omitempty"`
	Error       string                `json:"error,omitempty"`
	Diagnostics []yamlconf.Diagnostic `json:"diagnostics,omitempty"`
}

// Engine evaluates events against the current rule set and delivers.
// Its work is split in stages: accept (intake → store; here), evaluate
// (match, throttle, plan, commit; ingest.go, throttle.go) and deliver
// (claim, attempt, classify, record, report; jobs.go). Everything durable
// is the store's; the Engine wires the stages and swaps rule sets.
type Engine struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	store   store.Store
	current atomic.Pointer[rules.Set]
	status  atomic.Pointer[ReloadStatus]
	// The stages, each with only what it needs.
	evaluator *evaluator
	runner    *runner
	matches   *matchCounts

	reloadMu    sync.Mutex // one reload at a time
	mu          sync.RWMutex
	stopped     bool
	done        chan struct{} // closed when background work has stopped
	stopBg      context.CancelFunc
	stopIngest  context.CancelFunc // no more events will be accepted: evaluate what is left
	abortIngest context.CancelFunc // the shutdown timeout has passed: leave the rest to the store
}

// New loads the rules and the store's state and returns an engine ready to
// Start. Rules that do not load are an error: the daemon refuses to start.
func New(o Options) (*Engine, error) {
	if o.Store == nil {
		return nil, errors.New("engine: a store is required")
	}
	if o.Registry == nil {
		o.Registry = func() (*actionapi.Registry, error) { return actionapi.Default(), nil }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Sources == nil {
		o.Sources = sourceapi.Default()
	}
	if o.Deps.Logger == nil {
		o.Deps.Logger = o.Logger
	}
	if p, ok := o.Store.(store.Pacer); ok && o.Deps.Pacer == nil {
		// A chat service's limit covers every replica sending to it: the
		// store they share keeps the slots.
		o.Deps.Pacer = p
	}
	o.Deps = o.Deps.WithDefaults()
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	o.FileDedupe = cmpOr(o.FileDedupe, DefaultFileDedupe)
	o.StatusDedupe = cmpOr(o.StatusDedupe, DefaultStatusDedupe)
	o.Retention = cmpOr(o.Retention, DefaultRetention)
	o.StateOutageTolerance = cmpOr(o.StateOutageTolerance, DefaultStateOutageTolerance)
	if o.Zone == nil {
		o.Zone = time.Local
	}
	if o.StateMaxKeys <= 0 {
		o.StateMaxKeys = DefaultStateMaxKeys
	}
	e := &Engine{opts: o, log: o.Logger, store: o.Store, done: make(chan struct{}), matches: newMatchCounts()}
	e.metrics = newMetrics(o.Metrics, o.Store)
	e.evaluator = &evaluator{store: o.Store, now: o.Deps.Now, rules: e.acquire, log: o.Logger, metrics: e.metrics,
		pace: ingestPace, zone: o.Zone, tolerance: o.StateOutageTolerance, keys: newStateKeys(o.StateMaxKeys), matches: e.matches}
	if err := e.evaluator.keys.load(context.Background(), o.Store); err != nil {
		return nil, fmt.Errorf("engine: read rule state: %w", err)
	}
	o.Metrics.MustRegister(stateKeysCollector{e.evaluator.keys})
	e.runner = newRunner(runnerDeps{store: o.Store, now: o.Deps.Now, rules: e.acquire, accept: e.acceptFollowUp,
		log: o.Logger, metrics: e.metrics})
	if err := e.Reload(); err != nil {
		return nil, fmt.Errorf("load rules %s:\n%w", o.RulesPath, err)
	}
	return e, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
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
	e.mu.RLock()
	stopped := e.stopped && e.current.Load() != nil
	e.mu.RUnlock()
	if stopped {
		return ErrStopped // nothing would retire the new set
	}
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
	// Before the swap: the new rules must not see state kept under a
	// definition they changed.
	if err := e.reconcileState(set); err != nil {
		e.metrics.storeErrors.Inc()
		e.log.Error("rules: cannot reconcile rule state; keeping the old rules", "err", err)
		set.Retire()
		return err
	}
	old := e.current.Swap(set)
	e.metrics.reloads.WithLabelValues("success").Inc()
	e.metrics.lastReloadOK.Set(1)
	e.metrics.lastReload.Set(float64(now.Unix()))
	if old == nil || old.Hash != set.Hash {
		e.metrics.rulesInfo.Reset() // one series: the rules in force
		e.metrics.rulesInfo.WithLabelValues(set.Hash).Set(1)
	}
	e.status.Store(&ReloadStatus{OK: true, At: now, Hash: set.Hash})
	if old == nil || old.Hash != set.Hash {
		e.matches.loaded(now)
	}
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

// Accept records ev durably and returns its id; rules run after Accept
// returns, never before. dedupeKey (see event.DedupeKey) identifies
// Aliyun's retries of one callback: a retry gets the first one's id and is
// not processed again. An error means the event was not taken.
func (e *Engine) Accept(ctx context.Context, ev *event.Event, dedupeKey string) (string, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		return "", ErrStopped
	}
	return e.accept(ctx, ev, dedupeKey)
}

// acceptFollowUp takes an event an action reported. Unlike Accept it works
// while stopping: the delivery that produced it may finish in the grace
// period, and the journal keeps the event for the next start.
func (e *Engine) acceptFollowUp(ev *event.Event) (string, error) {
	return e.accept(context.Background(), ev, "")
}

func (e *Engine) accept(ctx context.Context, ev *event.Event, dedupeKey string) (string, error) {
	ev.ID = ulid.Make().String()
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = e.opts.Deps.Now().UTC()
	}
	set := e.Rules()
	set.MapDomain(ev)
	// A callback that asks a question (on-demand recording) is answered
	// from the rules now, before the reply; the answer is kept with it.
	answer, asks, answerErr := set.Answer(ev)
	if asks {
		ev.Answer = answer
		if answerErr != nil {
			e.metrics.ruleErrors.WithLabelValues(answerErr.Rule.Name).Inc()
			e.log.Warn("answer rule failed: answered the default", "rule", answerErr.Rule.Name,
				"err", set.Secrets.Redact(answerErr.Err.Error()), "source", ev.Source)
		}
	}
	in := &store.Incoming{Event: ev, DedupeKey: dedupeKey}
	src, known := e.opts.Sources.Lookup(ev.Source)
	if dedupeKey != "" {
		in.DedupeTTL = e.opts.FileDedupe
		if known {
			in.DedupeTTL = src.DedupeWindow(ev, sourceapi.Windows{File: e.opts.FileDedupe, Status: e.opts.StatusDedupe})
		}
	}
	got, err := e.store.Accept(ctx, in)
	if err != nil {
		if ctx.Err() == nil {
			e.metrics.storeErrors.Inc()
		}
		return "", err
	}
	if got.Duplicate {
		label := "other" // bounded whatever callers name their sources
		if known {
			label = src.MetricLabel()
		}
		e.metrics.duplicates.WithLabelValues(label).Inc()
		e.log.Info("duplicate callback: answered with the first one's id", "event_id", got.ID, "source", ev.Source)
		// A retried question gets the first copy's answer once that is
		// evaluated; until then the one decided again, the same unless
		// the rules changed in between.
		if asks {
			if d, err := e.store.Event(ctx, got.ID); err == nil {
				ev.Answer = d.Event.Answer
			} else {
				e.log.Info("retried question: the first copy is not evaluated yet, answered as decided again", "event_id", got.ID)
			}
		}
	}
	return got.ID, nil
}

// Start runs the evaluator, the job runner and the pruner until Stop. What
// a previous run left (events not evaluated, jobs pending) is the store's,
// and is taken up like new work.
func (e *Engine) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	ingestCtx, stopIngest := context.WithCancel(context.Background())
	commitCtx, abort := context.WithCancel(context.Background())
	e.stopBg, e.stopIngest, e.abortIngest = cancel, stopIngest, abort
	if st, err := e.store.Stats(ctx); err == nil && (st.Unevaluated > 0 || st.Pending > 0) {
		e.log.Info("resuming work a previous run left", "unevaluated_events", st.Unevaluated, "pending_deliveries", st.Pending)
	}
	e.evaluator.started = e.opts.Deps.Now()
	var wg sync.WaitGroup
	wg.Go(func() { e.evaluator.ingestLoop(ingestCtx, commitCtx) })
	wg.Go(func() { e.pruneLoop(ctx) })
	e.runner.start()
	go func() { wg.Wait(); close(e.done) }()
	return nil
}

// Stop refuses new events, evaluates what was accepted, lets in-flight
// deliveries finish until ctx ends, and leaves every other job pending for
// the next start. The caller closes the store afterwards.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	already := e.stopped
	e.stopped = true
	e.mu.Unlock()
	if already {
		return nil
	}
	if e.stopBg != nil {
		e.stopIngest()
		e.stopBg()
		select {
		case <-e.done:
		case <-ctx.Done():
			// Events not yet evaluated stay in the store for the next start.
			e.abortIngest()
			<-e.done
		}
	}
	err := e.runner.stop(ctx)
	if set := e.current.Load(); set != nil {
		set.Retire()
	}
	return err
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

// pruneLoop deletes finished events after the retention period.
func (e *Engine) pruneLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		now := e.opts.Deps.Now()
		if n, err := e.store.Prune(ctx, now.Add(-e.opts.Retention), now); err != nil {
			e.log.Warn("prune store", "err", err)
		} else if n > 0 {
			e.log.Info("pruned finished events", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
