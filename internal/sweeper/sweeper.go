// Package sweeper reads back the callbacks livehook never received. Aliyun
// Live keeps a 7-day record of the recording and stream callbacks it sent
// (DescribeLiveRecordNotifyRecords, DescribeLiveStreamsNotifyRecords); a
// sweep lists them through the official SDK, decodes each as intake would
// have, and hands the engine every callback livehook does not already
// have, marked reconciled. It runs on request (livehook reconcile) and,
// when `sweeper:` sets an interval, periodically.
package sweeper

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/store"
)

// ReportSource is the source of the event a sweep reports itself with,
// when it added or failed anything: rules can alert on it.
const ReportSource = "livehook_reconcile"

// Engine is what a sweep needs of the engine.
type Engine interface {
	// Accept records ev, giving it its id, and returns that id; for a
	// callback it already has under dedupeKey, the first copy's id.
	Accept(ctx context.Context, ev *event.Event, dedupeKey string) (string, error)
	// Events lists stored events, newest first.
	Events(f store.EventFilter) ([]*store.EventRecord, error)
}

// Options configure a Sweeper.
type Options struct {
	Engine Engine
	// Config is the current rules' `sweeper:`; nil when there is none.
	Config func() *rules.Sweeper
	// Sources decode the records as intake decodes callbacks; default
	// sourceapi.Default().
	Sources *sourceapi.Registry
	// Retention is how long the store keeps events. A sweep tells what
	// livehook has from them, so it looks back no further.
	Retention time.Duration
	// Transport carries the API calls; default http.DefaultTransport.
	Transport http.RoundTripper
	Timeout   time.Duration // one API call; default 10s
	PageSize  int           // records per page; default and at most MaxPageSize
	// CallRate bounds API calls a second; default 10, a tenth of what
	// Aliyun allows an account.
	CallRate float64
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	Now      func() time.Time
}

// Sweeper runs sweeps, one at a time.
type Sweeper struct {
	opts    Options
	log     *slog.Logger
	limit   *rate.Limiter
	metrics *metrics
	mu      sync.Mutex // one sweep at a time: two would add a callback twice
}

// New returns a Sweeper.
func New(o Options) *Sweeper {
	if o.Sources == nil {
		o.Sources = sourceapi.Default()
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.PageSize <= 0 || o.PageSize > MaxPageSize {
		o.PageSize = MaxPageSize
	}
	if o.CallRate <= 0 {
		o.CallRate = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Sweeper{opts: o, log: o.Logger, limit: rate.NewLimiter(rate.Limit(o.CallRate), 1), metrics: newMetrics(o.Metrics)}
}

// Report is what one sweep found.
type Report struct {
	From  time.Time `json:"from"`  // the callbacks looked for were sent from
	Until time.Time `json:"until"` // until here
	Counts
	Sources map[string]*Counts `json:"sources"`
	// Errors says what failed, at most maxErrors of it.
	Errors []string `json:"errors,omitempty"`
	// Added are the ids of the events added, at most maxAdded of them.
	Added []string `json:"added,omitempty"`
	// EventID is the id of the event the sweep reported itself with, if
	// it did (it added or failed something).
	EventID string `json:"event_id,omitempty"`
}

// Counts are a sweep's figures.
type Counts struct {
	Records    int `json:"records"`    // records Aliyun listed, retries included
	Callbacks  int `json:"callbacks"`  // the callbacks they are
	Skipped    int `json:"skipped"`    // callbacks livehook had
	Reconciled int `json:"reconciled"` // callbacks it did not have, now added
	Failed     int `json:"failed"`     // records or listings that could not be read, callbacks that could not be added
}

const (
	maxErrors = 20
	maxAdded  = 100
)

// Refusal is a sweep that was not started, and why: the caller asked for
// something that cannot be done.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason }

// Sweep reads back the callbacks sent in the last lookBack (0: the
// configured look-back) but the last rules.SweepSettle, and adds those
// livehook does not have. A failed listing or record is in the report; an
// error is a sweep that could not start (a *Refusal) or was cut short.
func (s *Sweeper) Sweep(ctx context.Context, lookBack time.Duration) (*Report, error) {
	cfg := s.opts.Config()
	if cfg == nil {
		return nil, &Refusal{"no sweeper: in the rules: it says which domains to read back and how to sign in"}
	}
	if lookBack == 0 {
		lookBack = cfg.LookBack
	}
	if err := s.checkLookBack(lookBack); err != nil {
		return nil, err
	}
	api, err := newLiveAPI(cfg, &s.opts, s.limit)
	if err != nil {
		return nil, &Refusal{err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now().UTC()
	rep := &Report{From: now.Add(-lookBack), Until: now.Add(-rules.SweepSettle), Sources: map[string]*Counts{}}
	// A callback's retries start up to SweepSettle before its first
	// record in the window; reading them tells a retry from a callback.
	listFrom := rep.From.Add(-rules.SweepSettle)
	if oldest := now.Add(-rules.MaxLookBack + time.Minute); listFrom.Before(oldest) {
		listFrom = oldest
	}
	var found []*callback
	for _, src := range rules.SweptSources {
		if len(cfg.Domains[src]) == 0 {
			continue
		}
		counts := &Counts{}
		rep.Sources[src] = counts
		var recs []record
		for _, domain := range cfg.Domains[src] {
			err := api.list(ctx, src, domain, listFrom, rep.Until, func(r record) { recs = append(recs, r) })
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("sweep cut short: %w", context.Cause(ctx))
				}
				counts.Failed++
				rep.fail(s.log, src, err)
			}
		}
		cbs := s.callbacks(recs, rep.From, counts, rep)
		found = append(found, cbs...)
	}
	if len(found) > 0 {
		h, err := s.history(ctx, rep.From.Add(-2*rules.SweepSettle))
		if err != nil {
			return nil, err
		}
		for _, c := range found {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sweep cut short: %w", context.Cause(ctx))
			}
			s.settle(ctx, c, h, rep)
		}
	}
	for _, c := range rep.Sources {
		rep.Records += c.Records
		rep.Callbacks += c.Callbacks
		rep.Skipped += c.Skipped
		rep.Reconciled += c.Reconciled
		rep.Failed += c.Failed
	}
	s.finish(ctx, rep)
	return rep, nil
}

func (s *Sweeper) checkLookBack(lookBack time.Duration) error {
	switch {
	case lookBack <= rules.SweepSettle:
		return &Refusal{fmt.Sprintf("look back %v: want more than %v, which a sweep leaves for Aliyun's retries", lookBack, rules.SweepSettle)}
	case lookBack > rules.MaxLookBack:
		return &Refusal{fmt.Sprintf("look back %v: Aliyun keeps 7 days (168h) of records", lookBack)}
	case s.opts.Retention > 0 && lookBack > s.opts.Retention-2*rules.SweepSettle:
		// Beyond it, events livehook received have been pruned and would
		// be added again.
		return &Refusal{fmt.Sprintf("look back %v: livehook keeps events for %v (--retention), so it can tell what it received for at most %v",
			lookBack, s.opts.Retention, s.opts.Retention-2*rules.SweepSettle)}
	}
	return nil
}

// settle decides one callback: had, added, or failed.
func (s *Sweeper) settle(ctx context.Context, c *callback, h *history, rep *Report) {
	counts := rep.Sources[c.ev.Source]
	if h.had(c) {
		counts.Skipped++
		return
	}
	ev := c.ev
	ev.Reconciled = true
	id, err := s.opts.Engine.Accept(ctx, ev, c.keys[0])
	switch {
	case err != nil:
		counts.Failed++
		rep.fail(s.log, ev.Source, fmt.Errorf("%s/%s/%s %s sent %s: not accepted: %w", ev.Domain, ev.App, ev.Stream, c.typ, c.rawTime, err))
	case id != ev.ID: // a copy arrived meanwhile, or was still being evaluated
		counts.Skipped++
	default:
		counts.Reconciled++
		s.metrics.reconciled.WithLabelValues(ev.Source).Inc()
		if len(rep.Added) < maxAdded {
			rep.Added = append(rep.Added, id)
		}
		s.log.Info("missed callback reconciled", "source", ev.Source, "event_id", id, "domain", ev.Domain, "app", ev.App,
			"stream", ev.Stream, "kind", ev.Kind, "event", ev.Event, "notify_type", c.typ, "notify_time", c.rawTime, "notify_result", c.result)
	}
}

func (r *Report) fail(log *slog.Logger, source string, err error) {
	log.Warn("sweep: "+err.Error(), "source", source)
	if len(r.Errors) < maxErrors {
		r.Errors = append(r.Errors, source+": "+err.Error())
	}
}

// finish logs and counts the sweep and, when it added or failed anything,
// reports it as an event.
func (s *Sweeper) finish(ctx context.Context, rep *Report) {
	for src, c := range rep.Sources {
		s.metrics.skipped.WithLabelValues(src).Add(float64(c.Skipped))
		s.metrics.failed.WithLabelValues(src).Add(float64(c.Failed))
	}
	outcome := "ok"
	if rep.Failed > 0 {
		outcome = "failed"
	} else {
		s.metrics.lastOK.Set(float64(s.opts.Now().Unix()))
	}
	s.metrics.sweeps.WithLabelValues(outcome).Inc()
	if rep.Reconciled > 0 || rep.Failed > 0 {
		if id, err := s.opts.Engine.Accept(ctx, reportEvent(rep), ""); err == nil {
			rep.EventID = id
		} else {
			s.log.Warn("sweep: cannot record its report as an event", "err", err)
		}
	}
	level := slog.LevelInfo
	if rep.Failed > 0 {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "sweep done", "from", rep.From, "until", rep.Until, "records", rep.Records, "callbacks", rep.Callbacks,
		"skipped", rep.Skipped, "reconciled", rep.Reconciled, "failed", rep.Failed, "report_event_id", rep.EventID)
}

// reportEvent is the report as a generic event: event "reconcile", the
// figures in its payload.
func reportEvent(rep *Report) *event.Event {
	b, _ := json.Marshal(struct { // plain values: cannot fail
		Event string `json:"event"`
		*Report
	}{"reconcile", rep})
	ev, err := event.DecodeGeneric(ReportSource, b)
	if err != nil { // the report is ours and well formed; keep the figures anyway
		ev = &event.Event{Source: ReportSource, Kind: event.KindEvent, Event: "reconcile"}
	}
	return ev
}

// Run sweeps every configured interval until ctx ends, reading the
// configuration again each time, so a reload that sets, changes or removes
// the interval applies within a minute.
func (s *Sweeper) Run(ctx context.Context) {
	const recheck = time.Minute
	// The first sweep waits a little: events a previous run left are
	// evaluated by then, so the sweep sees them.
	start := s.opts.Now()
	var last time.Time
	var every time.Duration // the interval last seen, to log a change
	for {
		wait := recheck
		cfg := s.opts.Config()
		if interval := intervalOf(cfg); interval != every {
			every = interval
			if interval == 0 {
				s.log.Info("periodic sweep off: livehook reconcile still sweeps on request")
			} else {
				s.log.Info("periodic sweep of Aliyun's callback records", "interval", interval, "look_back", cfg.LookBack, "domains", cfg.Domains)
			}
		}
		if cfg != nil && cfg.Interval > 0 {
			due := last.Add(cfg.Interval)
			if last.IsZero() {
				due = start.Add(min(cfg.Interval, rules.SweepSettle))
			}
			if !s.opts.Now().Before(due) {
				last = s.opts.Now()
				if _, err := s.Sweep(ctx, 0); err != nil && ctx.Err() == nil {
					s.metrics.sweeps.WithLabelValues("failed").Inc()
					s.log.Warn("sweep: " + err.Error())
				}
				due = last.Add(cfg.Interval)
			}
			wait = min(recheck, due.Sub(s.opts.Now()))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func intervalOf(cfg *rules.Sweeper) time.Duration {
	if cfg == nil {
		return 0
	}
	return cfg.Interval
}
