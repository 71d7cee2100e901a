package engine

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"

	"github.com/livehook/livehook/internal/testwait"
)

// recorder is an action type for tests: every delivery is sent on a
// channel, and Do blocks while the test holds gate.
type recorder struct {
	deliveries chan actionapi.Input
	entered    chan struct{} // if set, told when Do starts, before the gate
	gate       sync.RWMutex
	closed     atomic.Int32
	outcome    actionapi.Outcome
}

func (r *recorder) registry(t *testing.T) *actionapi.Registry {
	reg := actionapi.NewRegistry()
	if err := reg.Add(actionapi.Type{Name: "record", Open: func(actionapi.Settings) (actionapi.Instance, error) { return r, nil }}); err != nil {
		t.Fatal(err)
	}
	return reg
}

func (r *recorder) Step(actionapi.Params) (actionapi.Step, error) { return r, nil }
func (r *recorder) Close() error                                  { r.closed.Add(1); return nil }
func (r *recorder) Plan(in actionapi.Input) (actionapi.Plan, error) {
	return actionapi.Plan{Target: "recorder", Payload: in}, nil
}
func (r *recorder) Do(_ context.Context, p actionapi.Plan) actionapi.Result {
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	r.gate.RLock()
	defer r.gate.RUnlock()
	r.deliveries <- p.Payload.(actionapi.Input)
	return actionapi.Result{Outcome: r.outcome, Detail: "recorded"}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestEngine(t *testing.T, rulesYAML string, rec *recorder, clock *fakeClock) (*Engine, *prometheus.Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{
		RulesPath: path, Registry: func() (*actionapi.Registry, error) { return rec.registry(t), nil },
		Store: st, Metrics: reg, Logger: slog.New(slog.DiscardHandler),
		Deps: actionapi.Deps{Now: clock.Now},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Stop(context.Background())
		st.Close()
	})
	return e, reg, path
}

func accept(t *testing.T, e *Engine, stream string) {
	t.Helper()
	if _, err := e.Accept(context.Background(), &event.Event{Source: "test", Kind: event.KindStatus,
		Domain: "d", App: "live", Stream: stream, Event: "record_error"}, ""); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, rec *recorder) actionapi.Input {
	t.Helper()
	select {
	case in := <-rec.deliveries:
		return in
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
		return actionapi.Input{}
	}
}

// drained waits until the engine has processed everything accepted.
func drained(t *testing.T, e *Engine) {
	t.Helper()
	var st store.Stats
	if !testwait.Within(5*time.Second, func() bool {
		var err error
		if st, err = e.store.Stats(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st.Unevaluated == 0 && st.Pending == 0
	}) {
		t.Fatalf("engine did not drain within 5s: %+v", st)
	}
}

func TestThrottleHoldsBackRepeatsPerKey(t *testing.T) {
	rec := &recorder{deliveries: make(chan actionapi.Input, 100)}
	clock := &fakeClock{now: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}
	e, reg, _ := newTestEngine(t, `
rules:
  - name: failed
    when: event == "record_error"
    throttle: { by: [domain, app, stream], window: 10m }
    do:
      - type: record
`, rec, clock)

	for range 5 {
		accept(t, e, "room1")
	}
	accept(t, e, "room2")
	drained(t, e)
	// The two keys' deliveries run side by side: in either order.
	first, second := next(t, rec), next(t, rec)
	if first.Event.Stream > second.Event.Stream {
		first, second = second, first
	}
	if first.Event.Stream != "room1" || second.Event.Stream != "room2" || first.Suppressed != 0 || second.Suppressed != 0 {
		t.Fatalf("deliveries %s(%d), %s(%d): want room1 and room2 once each", first.Event.Stream, first.Suppressed, second.Event.Stream, second.Suppressed)
	}
	if len(rec.deliveries) != 0 {
		t.Fatalf("%d more deliveries: a burst of one key must deliver once", len(rec.deliveries))
	}
	if got := testutil.ToFloat64(e.metrics.throttled.WithLabelValues("failed")); got != 4 {
		t.Errorf("livehook_rule_throttled_total = %v, want 4", got)
	}

	clock.Add(9 * time.Minute) // still inside the window
	accept(t, e, "room1")
	drained(t, e)
	if len(rec.deliveries) != 0 {
		t.Fatal("a match inside the window was delivered")
	}

	clock.Add(2 * time.Minute) // the window has passed
	accept(t, e, "room1")
	if in := next(t, rec); in.Event.Stream != "room1" || in.Suppressed != 5 {
		t.Errorf("after the window: delivery for %s with suppressed=%d, want room1 with 5", in.Event.Stream, in.Suppressed)
	}
	if n, err := testutil.GatherAndCount(reg, "livehook_rule_throttled_total"); err != nil || n != 1 {
		t.Errorf("throttled metric series: %d, %v", n, err)
	}
}

func TestDeliveriesAreCountedByResult(t *testing.T) {
	rec := &recorder{deliveries: make(chan actionapi.Input, 10), outcome: actionapi.Permanent}
	clock := &fakeClock{now: time.Now()}
	e, _, _ := newTestEngine(t, `
actions:
  pager: { type: record }
rules:
  - name: failed
    do:
      - action: pager
`, rec, clock)
	accept(t, e, "room1")
	next(t, rec)
	drained(t, e)
	if got := testutil.ToFloat64(e.metrics.deliveries.WithLabelValues("pager", "record", "permanent")); got != 1 {
		t.Errorf("livehook_deliveries_total{result=permanent} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.metrics.ruleMatches.WithLabelValues("failed", "live")); got != 1 {
		t.Errorf("livehook_rule_matches_total = %v, want 1", got)
	}
}

func TestReloadClosesOldInstancesAfterInFlightDeliveries(t *testing.T) {
	rec := &recorder{deliveries: make(chan actionapi.Input, 10), entered: make(chan struct{}, 1)}
	clock := &fakeClock{now: time.Now()}
	e, _, path := newTestEngine(t, "actions:\n  a: { type: record }\nrules:\n  - name: v1\n    do: [ { action: a } ]\n", rec, clock)

	rec.gate.Lock() // hold the delivery in flight
	accept(t, e, "room1")
	select {
	case <-rec.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the delivery did not start")
	}
	if err := os.WriteFile(path, []byte("actions:\n  a: { type: record }\nrules:\n  - name: v2\n    do: [ { action: a } ]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.Rules().Rules[0].Name != "v2" {
		t.Fatal("the new rules are not in force")
	}
	if n := rec.closed.Load(); n != 0 {
		t.Fatalf("old instance closed %d time(s) while its delivery was in flight", n)
	}
	rec.gate.Unlock()
	if in := next(t, rec); in.Rule != "v1" {
		t.Errorf("the in-flight event finished under rule %q, want v1: one event, one rule set", in.Rule)
	}
	drained(t, e)
	if n := rec.closed.Load(); n != 1 {
		t.Errorf("old instance closed %d time(s) after the delivery, want 1", n)
	}
}
