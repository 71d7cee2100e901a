package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"

	"github.com/livehook/livehook/internal/testwait"
)

// These tests run two stores on one database, as two processes would:
// what the conformance suite cannot see with one handle.

func newEvent(at time.Time, stream string) *event.Event {
	return &event.Event{
		ID: ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(), Source: event.SourceRecord,
		Kind: event.KindFile, Domain: "d", App: "live", Stream: stream, ReceivedAt: at,
	}
}

func accept(t *testing.T, s store.Store, ev *event.Event, key string) store.Acceptance {
	t.Helper()
	a, err := s.Accept(t.Context(), &store.Incoming{Event: ev, DedupeKey: key, DedupeTTL: time.Hour})
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	return a
}

// takeNow takes what is waiting without waiting.
func takeNow(t *testing.T, s store.Store) []*store.Accepted {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got, err := s.Unevaluated(ctx, 1000)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Unevaluated: %v", err)
	}
	return got
}

// takeWithin waits up to d for events to evaluate.
func takeWithin(t *testing.T, s store.Store, d time.Duration) []*store.Accepted {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	got, err := s.Unevaluated(ctx, 1000)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Unevaluated: %v", err)
	}
	return got
}

func eventIDs(as []*store.Accepted) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.Event.ID)
	}
	slices.Sort(out)
	return out
}

func withJob(a *store.Accepted, action string) *store.Evaluation {
	return &store.Evaluation{EventID: a.Event.ID, Matched: []string{"r"}, Jobs: []*store.Job{{
		ID: store.JobID(a.Event.ID, "r", 0, 0), EventID: a.Event.ID, Rule: "r", Action: action, Type: "log",
		State: store.Pending, Created: base, NextAt: base, Attempts: []store.Attempt{},
	}}}
}

// Events accepted through two processes, each evaluating as fast as it
// can, are each evaluated once.
func TestEvaluatedOnceAcrossProcesses(t *testing.T) {
	dsn := pgtest.DSN(t)
	stores := []*postgres.Store{open(t, dsn, postgres.Options{}), open(t, dsn, postgres.Options{})}
	const n = 300
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	committed := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			for ctx.Err() == nil {
				batch, err := s.Unevaluated(ctx, 16)
				if err != nil {
					return
				}
				var evals []*store.Evaluation
				for _, a := range batch {
					evals = append(evals, &store.Evaluation{EventID: a.Event.ID})
				}
				if err := s.Commit(context.Background(), evals); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				mu.Lock()
				for _, e := range evals {
					committed[e.EventID]++
				}
				done := len(committed) == n
				mu.Unlock()
				if done {
					cancel()
				}
			}
		})
	}
	var senders sync.WaitGroup
	for i := range n {
		senders.Go(func() { accept(t, stores[i%2], newEvent(base, fmt.Sprint("room", i)), "") })
	}
	senders.Wait()
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Error("not every event was evaluated within 30s")
	}
	cancel()
	wg.Wait()
	for id, c := range committed {
		if c != 1 {
			t.Errorf("event %s evaluated %d times", id, c)
		}
	}
	if len(committed) != n {
		t.Errorf("%d events evaluated, want %d", len(committed), n)
	}
}

// The same callback accepted through two processes at once is one event.
func TestDedupeAcrossProcesses(t *testing.T) {
	dsn := pgtest.DSN(t)
	stores := []*postgres.Store{open(t, dsn, postgres.Options{}), open(t, dsn, postgres.Options{})}
	const copies = 32
	got := make([]store.Acceptance, copies)
	evs := make([]*event.Event, copies)
	var wg sync.WaitGroup
	for i := range copies {
		evs[i] = newEvent(base, "room1")
		wg.Go(func() { got[i] = accept(t, stores[i%2], evs[i], "same") })
	}
	wg.Wait()
	var first string
	for i, a := range got {
		if !a.Duplicate {
			if first != "" {
				t.Fatalf("two copies accepted as new: %s and %s", first, a.ID)
			}
			first = evs[i].ID
		}
	}
	for _, a := range got {
		if a.ID != first {
			t.Errorf("answered %s, want the first copy's %s", a.ID, first)
		}
	}
	if all := append(takeNow(t, stores[0]), takeNow(t, stores[1])...); !slices.Equal(eventIDs(all), []string{first}) {
		t.Errorf("to evaluate: %v, want only %s", eventIDs(all), first)
	}
}

// What a process took and never finished (it was killed) passes to
// another once the dead one has not been seen for the grace period:
// events taken for evaluation, a due timer, a leased job.
func TestDeadProcessClaimsPassOn(t *testing.T) {
	dsn := pgtest.DSN(t)
	opts := postgres.Options{Grace: time.Second, Poll: 50 * time.Millisecond}
	a, b := open(t, dsn, opts), open(t, dsn, opts)

	jobEvent := newEvent(base, "job")
	accept(t, a, jobEvent, "")
	taken := takeNow(t, a)
	if err := a.Commit(t.Context(), []*store.Evaluation{withJob(taken[0], "x")}); err != nil {
		t.Fatal(err)
	}
	timer := store.StateChange{Key: "t/1", Value: []byte("v"), Expires: base.Add(24 * time.Hour), Due: base}
	if err := a.Commit(t.Context(), []*store.Evaluation{{State: []store.StateChange{timer}}}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3 {
		ev := newEvent(base, fmt.Sprint("room", i))
		accept(t, a, ev, "")
		want = append(want, ev.ID)
	}
	slices.Sort(want)
	if got := takeNow(t, a); len(got) != 3 {
		t.Fatalf("a took %d events, want 3", len(got))
	}
	if due, _, err := a.DueTimers(t.Context(), base, 10); err != nil || len(due) != 1 {
		t.Fatalf("a took timers %v, %v; want t/1", due, err)
	}
	claim := store.Claim{Owner: "runner-a", Now: base, Lease: time.Hour, Other: 10}
	if got, _, err := a.ClaimJobs(t.Context(), claim); err != nil || len(got) != 1 {
		t.Fatalf("a claimed %d jobs, %v; want 1", len(got), err)
	}

	// While a lives, b gets nothing of it.
	claim.Owner = "runner-b"
	if got := takeNow(t, b); len(got) != 0 {
		t.Errorf("b took %v while a holds them", eventIDs(got))
	}
	if due, _, _ := b.DueTimers(t.Context(), base, 10); len(due) != 0 {
		t.Errorf("b took timer %v while a holds it", due)
	}
	got, next, err := b.ClaimJobs(t.Context(), claim)
	if err != nil || len(got) != 0 {
		t.Errorf("b claimed %d jobs, %v, while a's lease holds", len(got), err)
	}
	if next.IsZero() || next.After(base.Add(time.Second)) {
		t.Errorf("b's next claim at %v, want within the grace period of %v: a may die", next, base)
	}

	a.Abandon()
	// b's wait may also end early, with nothing, for a's timer: the
	// contract lets a shared store say so.
	var events []*store.Accepted
	for deadline := time.Now().Add(10 * time.Second); len(events) < 3 && time.Now().Before(deadline); {
		events = append(events, takeWithin(t, b, time.Until(deadline))...)
	}
	if !slices.Equal(eventIDs(events), want) {
		t.Errorf("b took %v after a died, want %v", eventIDs(events), want)
	}
	// The grace period has passed for a's events, and so for all of it.
	if due, _, err := b.DueTimers(t.Context(), base, 10); err != nil || len(due) != 1 || due[0].Key != "t/1" {
		t.Errorf("b's due timers after a died: %v, %v; want t/1", due, err)
	}
	got, _, err = b.ClaimJobs(t.Context(), claim)
	if err != nil || len(got) != 1 || got[0].Job.EventID != jobEvent.ID {
		t.Fatalf("b claimed %d jobs, %v, after a died; want a's", len(got), err)
	}
	got[0].Job.State = store.Delivered
	if err := b.Finish(t.Context(), "runner-b", got[0].Job); err != nil {
		t.Errorf("b's finish: %v", err)
	}
}

// A clean close frees what the process took at once: no grace period.
func TestCloseFreesClaims(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, dsn, postgres.Options{})
	b := open(t, dsn, postgres.Options{})
	ev := newEvent(base, "room1")
	accept(t, a, ev, "")
	if got := takeNow(t, a); len(got) != 1 {
		t.Fatalf("a took %d, want 1", len(got))
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := takeNow(t, b); !slices.Equal(eventIDs(got), []string{ev.ID}) {
		t.Errorf("b took %v after a closed, want %s", eventIDs(got), ev.ID)
	}
}

// delivery.concurrency holds across processes: four runners in two
// processes never hold more leases of an action than its limit.
func TestLimitHoldsAcrossProcesses(t *testing.T) {
	dsn := pgtest.DSN(t)
	stores := []*postgres.Store{open(t, dsn, postgres.Options{}), open(t, dsn, postgres.Options{})}
	const jobs, limit = 60, 3
	for i := range jobs {
		accept(t, stores[0], newEvent(base, fmt.Sprint("room", i)), "")
	}
	var evals []*store.Evaluation
	for _, a := range takeNow(t, stores[0]) {
		evals = append(evals, withJob(a, "slow"))
	}
	if err := stores[0].Commit(t.Context(), evals); err != nil {
		t.Fatal(err)
	}
	var inflight, most, finished atomic.Int64
	var wg sync.WaitGroup
	for r := range 4 {
		s := stores[r%2]
		owner := fmt.Sprint("runner-", r)
		wg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			for finished.Load() < jobs && time.Now().Before(deadline) {
				got, _, err := s.ClaimJobs(context.Background(), store.Claim{
					Owner: owner, Now: base, Lease: time.Hour, Limits: map[string]int{"slow": limit}})
				if err != nil {
					t.Error(err)
					return
				}
				n := inflight.Add(int64(len(got)))
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(time.Millisecond) // the deliveries take a moment
				// Counted out before the finish: until it commits the
				// lease is still held, so no claim can exceed the limit
				// in between.
				inflight.Add(-int64(len(got)))
				for _, c := range got {
					c.Job.State = store.Delivered
					if err := s.Finish(context.Background(), owner, c.Job); err != nil {
						t.Error(err)
					}
					finished.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if finished.Load() != jobs {
		t.Errorf("%d jobs finished, want %d", finished.Load(), jobs)
	}
	if most.Load() > limit {
		t.Errorf("%d jobs of the action ran at once, want at most its limit %d", most.Load(), limit)
	}
}

// A due timer is handed to one process only.
func TestTimerTakenOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn, postgres.Options{}), open(t, dsn, postgres.Options{})
	var changes []store.StateChange
	for i := range 50 {
		changes = append(changes, store.StateChange{Key: fmt.Sprint("t/", i), Value: []byte("v"), Expires: base.Add(time.Hour), Due: base})
	}
	if err := a.Commit(t.Context(), []*store.Evaluation{{State: changes}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range []*postgres.Store{a, b, a, b} {
		wg.Go(func() {
			for {
				due, _, err := s.DueTimers(context.Background(), base, 5)
				if err != nil {
					t.Error(err)
				}
				if len(due) == 0 {
					return
				}
				mu.Lock()
				for _, d := range due {
					seen[d.Key]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 50 {
		t.Errorf("%d timers handed out, want 50", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("timer %s handed out %d times", k, n)
		}
	}
}

// Two processes that read one state entry and both change it: one
// commit wins, the other is told to evaluate again. The same for a key
// that neither found.
func TestStateConflictAcrossProcesses(t *testing.T) {
	dsn := pgtest.DSN(t)
	stores := []*postgres.Store{open(t, dsn, postgres.Options{}), open(t, dsn, postgres.Options{})}
	for round := range 2 {
		read := stores[0]
		st, err := read.State(t.Context(), []string{"k"}, base)
		if err != nil {
			t.Fatal(err)
		}
		version := st["k"].Version // 0 in the first round: nobody has it
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				errs[i] = s.Commit(context.Background(), []*store.Evaluation{{State: []store.StateChange{{
					Key: "k", Read: version, Value: fmt.Appendf(nil, "%d/%d", round, i), Expires: base.Add(time.Hour)}}}})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrStateConflict):
				t.Errorf("round %d: the losing commit failed with %v, want ErrStateConflict", round, err)
			}
		}
		if won != 1 {
			t.Errorf("round %d: %d commits won, want exactly 1 (%v)", round, won, errs)
		}
	}
}

// A process waiting for work hears of another's at once, not at its
// next poll: accepted events, and jobs that became claimable.
func TestNotifiedAcrossProcesses(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, dsn, postgres.Options{})
	b := open(t, dsn, postgres.Options{Poll: time.Hour})
	waitListening(t, b)

	ev := newEvent(base, "room1")
	got := make(chan []*store.Accepted, 1)
	go func() { got <- takeWithin(t, b, 20*time.Second) }()
	accept(t, a, ev, "")
	if batch := <-got; !slices.Equal(eventIDs(batch), []string{ev.ID}) {
		t.Fatalf("b took %v, want %s, notified of a's accept", eventIDs(batch), ev.ID)
	}

	drain(b.Wake())
	if err := b.Commit(t.Context(), []*store.Evaluation{{EventID: ev.ID}}); err != nil {
		t.Fatal(err)
	}
	drain(b.Wake())
	ev2 := newEvent(base, "room2")
	accept(t, a, ev2, "")
	if err := a.Commit(t.Context(), []*store.Evaluation{withJob(takeNow(t, a)[0], "x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Wake():
	case <-time.After(20 * time.Second):
		t.Fatal("b was not woken by a's new job")
	}
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func waitListening(t *testing.T, s *postgres.Store) {
	t.Helper()
	testwait.Until(t, 10*time.Second, "the store's listener", s.ListenerUp)
}

// A process waiting for events, knowing of no timer, is told when
// another process sets one, and when one taken by a process that died is
// free again: its wait ends early so it asks DueTimers again.
func TestTimersOfOthersEndTheWait(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := open(t, dsn, postgres.Options{Grace: time.Second})
	b := open(t, dsn, postgres.Options{Grace: time.Second, Poll: 50 * time.Millisecond})
	waitListening(t, b)
	ended := make(chan error, 1)
	go func() {
		got, err := b.Unevaluated(context.Background(), 10) // no deadline: b knows of no timer
		if err == nil && len(got) > 0 {
			err = fmt.Errorf("took %v, want nothing", eventIDs(got))
		}
		ended <- err
	}()
	timer := store.StateChange{Key: "t/1", Value: []byte("v"), Expires: base.Add(time.Hour), Due: base.Add(time.Hour)}
	if err := a.Commit(t.Context(), []*store.Evaluation{{State: []store.StateChange{timer}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("b's wait ended with %v, want an early return with nothing", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("b still waits 20s after a set a timer")
	}
	// Waiting until the timer it knows of (the caller's deadline, on the
	// wall clock as the engine's), b is not woken by that one, and is by
	// one set sooner.
	later := store.StateChange{Key: "t/1", Read: 0, Value: []byte("v"), Expires: time.Now().Add(3 * time.Hour), Due: time.Now().Add(time.Hour)}
	st, err := a.State(t.Context(), []string{"t/1"}, base)
	if err != nil {
		t.Fatal(err)
	}
	later.Read = st["t/1"].Version
	if err := a.Commit(t.Context(), []*store.Evaluation{{State: []store.StateChange{later}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(t.Context(), later.Due)
	defer cancel()
	waiting := make(chan error, 1)
	go func() {
		got, err := b.Unevaluated(ctx, 10)
		if err == nil && len(got) > 0 {
			err = fmt.Errorf("took %v, want nothing", eventIDs(got))
		}
		waiting <- err
	}()
	select {
	case err := <-waiting:
		t.Fatalf("b's wait until the timer it knows of ended at once: %v", err)
	case <-time.After(300 * time.Millisecond): // six polls
	}
	sooner := store.StateChange{Key: "t/2", Value: []byte("v"), Expires: time.Now().Add(time.Hour), Due: time.Now().Add(time.Minute)}
	if err := a.Commit(t.Context(), []*store.Evaluation{{State: []store.StateChange{sooner}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiting:
		if err != nil {
			t.Errorf("b's wait ended with %v, want an early return with nothing", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("b still waits 20s after a set a timer sooner than its deadline")
	}
}
