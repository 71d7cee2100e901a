package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/store"
)

// A Simulation runs the engine on a virtual clock, for rule tests. It
// starts neither the evaluator's loop nor the runner: the caller accepts
// events at the clock's time and moves the clock, and the simulation
// evaluates what was accepted before the clock moves, runs each timer at
// its due time on the way, and takes the deliveries the evaluator
// committed instead of running them. The rest is what serve runs: a Local
// store, Accept with the source's dedupe identity, match, correlate,
// throttle, plan and commit, and restarts on the same store with overdue
// timers fired late or discarded.
//
// A Simulation is not safe for concurrent use.
type Simulation struct {
	opts    SimOptions
	now     time.Time // the virtual clock
	local   *store.Local
	st      *plannedStore
	e       *Engine
	m       rules.Matcher
	next    time.Time // when the next timer comes due; zero if none
	settled bool      // nothing accepted is waiting to be evaluated
	fired   []SimFiring
	temp    string // the temporary directory to remove, if the simulation made one
}

// SimOptions configure a Simulation. Durations left zero take serve's
// defaults.
type SimOptions struct {
	RulesPath string
	Registry  func() (*actionapi.Registry, error) // default actionapi.Default()
	Sources   *sourceapi.Registry                 // default sourceapi.Default()
	// Dir holds the store: a directory of the caller's, empty or from an
	// earlier simulation of the same rules. Empty: a temporary directory,
	// in memory where the system has one (/dev/shm), removed by Close.
	Dir   string
	Start time.Time // where the clock starts
	// Zone is what digest buckets align to; default Start's location.
	Zone                     *time.Location
	StateOutageTolerance     time.Duration
	StateMaxKeys             int
	FileDedupe, StatusDedupe time.Duration
	Logger                   *slog.Logger // default: discard
	// HTTP is the actions' client; a simulation only renders, so it is
	// never used to send.
	HTTP *actionapi.HTTP
}

// SimFiring is one match or firing of a rule: what it would deliver, one
// rendered step per action, or nothing for a rule in shadow mode.
type SimFiring struct {
	At   time.Time // the clock when it was planned: the event's arrival, or a timer's due time
	Rule string
	// Event is the event its deliveries belong to: the match, the
	// expectation's trigger, the first event a session or digest gathered.
	Event *event.Event
	Key   map[string]string // a rule over time's key; nil for a single-event rule
	Count int
	Late  bool
	// Causes are the ids of the events behind it: Event's, and those a
	// session or digest gathered.
	Causes     []string
	Suppressed int  // matches its throttle held back before it
	Shadow     bool // a rule in shadow mode: recorded, nothing planned
	Steps      []SimStep
}

// SimStep is one planned delivery of a firing.
type SimStep struct {
	Action string
	Type   string
	JobID  string
	Plan   *actionapi.Plan // as the runner would render it; nil if rendering failed
	Error  string
}

// NewSimulation opens the store in o.Dir and starts an engine on it at
// o.Start.
func NewSimulation(o SimOptions) (*Simulation, error) {
	if o.Start.IsZero() {
		return nil, errors.New("simulation: a start time is required")
	}
	if o.Zone == nil {
		o.Zone = o.Start.Location()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Simulation{opts: o, now: o.Start, settled: true}
	if s.opts.Dir == "" {
		dir, err := tempDir()
		if err != nil {
			return nil, fmt.Errorf("simulation: %w", err)
		}
		s.opts.Dir, s.temp = dir, dir
	}
	if err := s.open(); err != nil {
		return nil, errors.Join(err, s.removeTemp())
	}
	return s, nil
}

// tempDir makes a directory for a simulation's store. Every commit of a
// store flushes to disk, which costs most of a simulation's time on a
// disk and nothing in memory; a simulated store need not survive a power
// cut.
func tempDir() (string, error) {
	if dir, err := os.MkdirTemp("/dev/shm", "livehook-sim-"); err == nil {
		return dir, nil
	}
	return os.MkdirTemp("", "livehook-sim-")
}

func (s *Simulation) removeTemp() error {
	if s.temp == "" {
		return nil
	}
	return os.RemoveAll(s.temp)
}

// open starts an engine on the store, as serve starts: timers due before
// now came due while it was down.
func (s *Simulation) open() error {
	local, err := store.Open(s.opts.Dir, store.Options{})
	if err != nil {
		return err
	}
	o := s.opts
	st := &plannedStore{Store: local}
	e, err := New(Options{
		RulesPath: o.RulesPath, Registry: o.Registry, Store: st, Sources: o.Sources,
		Deps:   actionapi.Deps{Logger: o.Logger, HTTP: o.HTTP, Now: s.clock},
		Logger: o.Logger, FileDedupe: o.FileDedupe, StatusDedupe: o.StatusDedupe,
		StateOutageTolerance: o.StateOutageTolerance, StateMaxKeys: o.StateMaxKeys, Zone: o.Zone,
	})
	if err != nil {
		return errors.Join(err, local.Close())
	}
	e.evaluator.started = s.now
	s.local, s.st, s.e = local, st, e
	return s.runDue()
}

func (s *Simulation) clock() time.Time { return s.now }

// Now is the virtual clock.
func (s *Simulation) Now() time.Time { return s.now }

// Engine is the engine running now (a restart replaces it): for its
// rules and its state.
func (s *Simulation) Engine() *Engine { return s.e }

// Accept takes ev as intake would a callback at the clock's time, with
// its source's dedupe identity: the event's id, and whether it was a
// retry of one already accepted. Rules run before the clock moves.
func (s *Simulation) Accept(ev *event.Event, dedupeKey string) (id string, duplicate bool, err error) {
	ev.ID, ev.ReceivedAt = "", s.now.UTC()
	if id, err = s.e.Accept(context.Background(), ev, dedupeKey); err != nil {
		return "", false, err
	}
	s.settled = false
	return id, id != ev.ID, nil
}

// Advance moves the clock to t, first evaluating what was accepted, and
// runs every timer that comes due on the way at its due time, in order.
func (s *Simulation) Advance(t time.Time) error {
	if err := s.settle(); err != nil {
		return err
	}
	for !s.next.IsZero() && !s.next.After(t) {
		s.now = later(s.now, s.next)
		if err := s.runDue(); err != nil {
			return err
		}
	}
	s.now = later(s.now, t)
	return s.runDue()
}

// later is the later of two times: the clock never goes back.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// NextTimer is when the next timer comes due, after what was accepted is
// evaluated; zero if none is pending.
func (s *Simulation) NextTimer() (time.Time, error) {
	if err := s.settle(); err != nil {
		return time.Time{}, err
	}
	return s.next, nil
}

// Restart stops the engine, closes the store, lets down pass with
// nothing running, and starts a new engine on the same store, which fires
// the timers that came due meanwhile (late) or discards them (beyond the
// outage tolerance), as serve does on start.
func (s *Simulation) Restart(down time.Duration) error {
	if err := s.settle(); err != nil {
		return err
	}
	if err := s.stop(); err != nil {
		return err
	}
	s.now = s.now.Add(down)
	return s.open()
}

// Firings takes what fired since the last call, in order.
func (s *Simulation) Firings() ([]SimFiring, error) {
	if err := s.settle(); err != nil {
		return nil, err
	}
	out := s.fired
	s.fired = nil
	return out, nil
}

// Close stops the engine and closes the store. A directory of the
// caller's stays; a temporary one is removed.
func (s *Simulation) Close() error {
	var err error
	if s.e != nil {
		err = s.stop()
	}
	return errors.Join(err, s.removeTemp())
}

func (s *Simulation) stop() error {
	err := errors.Join(s.e.Stop(context.Background()), s.local.Close())
	s.e = nil
	return err
}

// settle evaluates what was accepted, in batches, as the ingest loop does.
func (s *Simulation) settle() error {
	if s.settled {
		return nil
	}
	done, cancel := context.WithCancel(context.Background())
	cancel() // the store hands over what it has without waiting
	ctx := context.Background()
	for {
		batch, err := s.local.Unevaluated(done, ingestBatch)
		if len(batch) == 0 {
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("simulation: read events to evaluate: %w", err)
			}
			break
		}
		if err := s.commit(ctx, func() ([]*store.Evaluation, error) { return s.e.evaluator.evaluate(ctx, &s.m, batch) }); err != nil {
			return err
		}
	}
	s.settled = true
	// What was evaluated may have set a timer sooner than the one known.
	return s.runDue()
}

// runDue runs the timers due at the clock's time, as the ingest loop
// does when it wakes for them.
func (s *Simulation) runDue() error {
	ctx := context.Background()
	for {
		due, next, err := s.local.DueTimers(ctx, s.now, ingestBatch)
		if err != nil {
			return fmt.Errorf("simulation: read due timers: %w", err)
		}
		s.next = next
		if len(due) == 0 {
			return nil
		}
		if err := s.commit(ctx, func() ([]*store.Evaluation, error) { return s.e.evaluator.evaluateTimers(ctx, due) }); err != nil {
			return err
		}
	}
}

// commit is the evaluator's commit without its patience: a simulation's
// store has no one to wait for, so a failure ends the simulation.
func (s *Simulation) commit(ctx context.Context, evaluate func() ([]*store.Evaluation, error)) error {
	evals, err := evaluate()
	if err == nil {
		err = s.st.Commit(ctx, evals)
	}
	if err != nil {
		return fmt.Errorf("simulation: evaluate and commit: %w", err)
	}
	return s.take(ctx)
}

// take renders the deliveries the last commit planned, as the runner
// would attempt them, and records the firings, those of rules in shadow
// mode with nothing planned.
func (s *Simulation) take(ctx context.Context) error {
	planned := s.st.planned
	s.st.planned = nil
	set := s.e.acquire()
	defer set.Release()
	var last *store.Job // the job before, of the same firing if it is the same rule and event
	for _, p := range planned {
		if sh := p.shadow; sh != nil {
			d, err := s.local.Event(ctx, sh.EventID)
			if err != nil {
				return fmt.Errorf("simulation: the event of a shadow firing of %s: %w", sh.Rule, err)
			}
			f, err := simFiring(s.now, sh.Rule, d.Event, sh.Firing)
			if err != nil {
				return err
			}
			f.Shadow = true
			s.fired = append(s.fired, f)
			last = nil
			continue
		}
		j := p.job
		d, err := s.local.Event(ctx, j.EventID)
		if err != nil {
			return fmt.Errorf("simulation: the event of delivery %s: %w", j.ID, err)
		}
		if last == nil || j.Rule != last.Rule || j.EventID != last.EventID || j.Step <= last.Step {
			f, err := simFiring(s.now, j.Rule, d.Event, j.Firing)
			if err != nil {
				return err
			}
			f.Suppressed = j.Suppressed
			s.fired = append(s.fired, f)
		}
		last = j
		f := &s.fired[len(s.fired)-1]
		step := SimStep{Action: j.Action, Type: j.Type, JobID: j.ID}
		if st := set.Step(j.Rule, j.Step); st == nil {
			step.Error = "the step is gone from the rules"
		} else if in, err := inputFor(j, d.Event); err != nil {
			step.Error = err.Error()
		} else if plan, problem := planStep(set, st, in); plan == nil {
			step.Error = "render: " + problem
		} else {
			step.Plan = plan
		}
		f.Steps = append(f.Steps, step)
	}
	return nil
}

// simFiring reads what a rule fired with (nil for a single-event match).
func simFiring(at time.Time, rule string, ev *event.Event, enc json.RawMessage) (SimFiring, error) {
	f := SimFiring{At: at, Rule: rule, Event: ev, Causes: []string{ev.ID}}
	if len(enc) == 0 {
		return f, nil
	}
	var fr firing
	if err := json.Unmarshal(enc, &fr); err != nil {
		return f, fmt.Errorf("simulation: what %s fired with: %w", rule, err)
	}
	f.Key, f.Count, f.Late = fr.Key, fr.Count, fr.Late
	for _, g := range fr.Events {
		if g.ID != ev.ID {
			f.Causes = append(f.Causes, g.ID)
		}
	}
	return f, nil
}

// plannedStore keeps the jobs each commit records, and the firings of
// rules in shadow mode, for the simulation to take instead of the runner.
type plannedStore struct {
	store.Store
	planned []planned
}

// planned is a job, or a shadow firing.
type planned struct {
	job    *store.Job
	shadow *store.Shadow
}

func (p *plannedStore) Commit(ctx context.Context, evals []*store.Evaluation) error {
	if err := p.Store.Commit(ctx, evals); err != nil {
		return err
	}
	for _, e := range evals {
		for _, j := range e.Jobs {
			p.planned = append(p.planned, planned{job: j})
		}
		for i := range e.Shadow {
			p.planned = append(p.planned, planned{shadow: &e.Shadow[i]})
		}
	}
	return nil
}

// SimKeyState is one key's state, as StateReport shows it, with the
// times a count holds.
type SimKeyState struct {
	StateReport
	// Times are a count's matches (or, with distinct, each value's last
	// time), oldest first, those outside the window included.
	Times []time.Time `json:"times,omitempty"`
}

// State is every key's state of the rules over time at the clock's time,
// after what was accepted is evaluated.
func (s *Simulation) State() ([]SimKeyState, error) {
	if err := s.settle(); err != nil {
		return nil, err
	}
	set := s.e.acquire()
	defer set.Release()
	var out []SimKeyState
	for _, r := range set.Rules {
		t := r.Temporal
		if t == nil {
			continue
		}
		for after := ""; ; {
			entries, err := s.local.ListState(context.Background(), statePrefix(r.Name, t.Hash), after, 1000)
			if err != nil {
				return nil, fmt.Errorf("simulation: rule state: %w", err)
			}
			for _, en := range entries {
				var st keyState
				if err := json.Unmarshal(en.Value, &st); err != nil {
					return nil, fmt.Errorf("simulation: rule %s: state %q: %w", r.Name, en.Key, err)
				}
				_, _, values, _ := parseStateKey(en.Key)
				ks := SimKeyState{StateReport: report(r, values, &st, en), Times: st.Times}
				for _, at := range st.Values {
					ks.Times = append(ks.Times, at)
				}
				slices.SortFunc(ks.Times, time.Time.Compare)
				out = append(out, ks)
			}
			if len(entries) < 1000 {
				break
			}
			after = entries[len(entries)-1].Key
		}
	}
	return out, nil
}
