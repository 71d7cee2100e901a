// Package storetest is the conformance suite of the store contract: the
// behaviour every backend of store.Store must have, whatever it keeps its
// state in. A backend's tests call Run with a way to open it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// Opener opens a fresh backend for one test and returns a function that
// opens it again: the same state, as a restarted process would find it,
// after the test has closed the previous handle.
type Opener func(t *testing.T) (s store.Store, reopen func() store.Store)

// Run runs the whole suite against a backend.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"AcceptThenEvaluate", testAcceptThenEvaluate},
		{"DedupeRace", testDedupeRace},
		{"DedupeWindow", testDedupeWindow},
		{"UnevaluatedWaits", testUnevaluatedWaits},
		{"CommitIsOneUnit", testCommitIsOneUnit},
		{"ClaimsAndLeases", testClaimsAndLeases},
		{"ClaimLimits", testClaimLimits},
		{"RetryAndDeadLetter", testRetryAndDeadLetter},
		{"ReplayEvent", testReplayEvent},
		{"Paging", testPaging},
		{"Retention", testRetention},
		{"SurvivesReopen", testSurvivesReopen},
		{"ReadBackAsAccepted", testReadBackAsAccepted},
		{"State", testState},
		{"Timers", testTimers},
		{"Shadow", testShadow},
		{"EventFilters", testEventFilters},
		{"EventOutcomes", testEventOutcomes},
		{"DuplicatesCounted", testDuplicatesCounted},
		{"DeadLetterFilters", testDeadLetterFilters},
		{"DeadGroups", testDeadGroups},
		{"DeleteDeadLetters", testDeleteDeadLetters},
		{"OldestPending", testOldestPending},
		{"Pace", testPace},
		{"PaceConcurrent", testPaceConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// base is the time test events are stamped around: in the past, so a
// backend that used the wall clock instead of the times it is given
// would be caught.
var base = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func ctx(t *testing.T) context.Context { return t.Context() }

// newEvent is an event as intake makes it: a ULID carrying its time.
func newEvent(at time.Time, stream string) *event.Event {
	return &event.Event{
		ID: ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(), Source: event.SourceRecord,
		Kind: event.KindStatus, Event: "record_error", Domain: "d", App: "live", Stream: stream, ReceivedAt: at,
	}
}

func accept(t *testing.T, s store.Store, ev *event.Event, key string, ttl time.Duration) store.Acceptance {
	t.Helper()
	got, err := s.Accept(ctx(t), &store.Incoming{Event: ev, DedupeKey: key, DedupeTTL: ttl})
	if err != nil {
		t.Fatalf("Accept(%s): %v", ev.Stream, err)
	}
	return got
}

// take takes every event waiting for evaluation, without waiting.
func take(t *testing.T, s store.Store) []*store.Accepted {
	t.Helper()
	done, cancel := context.WithCancel(ctx(t))
	cancel()
	var all []*store.Accepted
	for {
		batch, err := s.Unevaluated(done, 100)
		if errors.Is(err, context.Canceled) {
			return all
		}
		if err != nil {
			t.Fatalf("Unevaluated: %v", err)
		}
		all = append(all, batch...)
	}
}

func ids(as []*store.Accepted) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.Event.ID)
	}
	return out
}

func jobIDs(jobs []*store.Job) []string {
	out := []string{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func claimedIDs(cs []store.Claimed) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Job.ID)
	}
	return out
}

// newJob plans a pending job as the engine does.
func newJob(ev *event.Event, rule string, step int, action string, at time.Time) *store.Job {
	return &store.Job{
		ID: store.JobID(ev.ID, rule, step, 0), EventID: ev.ID, Rule: rule, Step: step, Action: action, Type: "log",
		State: store.Pending, Created: at, NextAt: at, Attempts: []store.Attempt{},
	}
}

// evaluate takes every waiting event and commits it with the jobs plan
// gives it.
func evaluate(t *testing.T, s store.Store, plan func(ev *event.Event) *store.Evaluation) []*store.Evaluation {
	t.Helper()
	var evals []*store.Evaluation
	for _, a := range take(t, s) {
		e := plan(a.Event)
		e.EventID = a.Event.ID
		evals = append(evals, e)
	}
	if err := s.Commit(ctx(t), evals); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return evals
}

func claim(t *testing.T, s store.Store, owner string, now time.Time, limits map[string]int) ([]store.Claimed, time.Time) {
	t.Helper()
	got, next, err := s.ClaimJobs(ctx(t), store.Claim{Owner: owner, Now: now, Lease: time.Minute, Limits: limits, Other: 100})
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	return got, next
}

// finish records one attempt at a claimed job with the given outcome.
func finish(t *testing.T, s store.Store, owner string, j *store.Job, state string, at time.Time) error {
	t.Helper()
	j.Attempts = append(j.Attempts, store.Attempt{At: at, Outcome: map[string]string{
		store.Delivered: "delivered", store.Pending: "retryable", store.Dead: "permanent"}[state]})
	j.State = state
	if state == store.Pending {
		j.NextAt = at.Add(time.Minute)
	}
	return s.Finish(ctx(t), owner, j)
}

func stats(t *testing.T, s store.Store) store.Stats {
	t.Helper()
	st, err := s.Stats(ctx(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func closeStore(t *testing.T, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testAcceptThenEvaluate(t *testing.T, open Opener) {
	s, _ := open(t)
	ev := newEvent(base, "room1")
	if got := accept(t, s, ev, "k", time.Hour); got.Duplicate || got.ID != ev.ID {
		t.Fatalf("Accept = %+v, want new with id %s", got, ev.ID)
	}
	if st := stats(t, s); st.Unevaluated != 1 || st.Pending != 0 {
		t.Errorf("Stats after Accept = %+v, want 1 unevaluated", st)
	}
	taken := take(t, s)
	if len(taken) != 1 || taken[0].Event.ID != ev.ID || taken[0].Event.Stream != "room1" || taken[0].DedupeKey != "k" {
		t.Fatalf("Unevaluated = %+v, want the accepted event with its key", taken)
	}
	if again := take(t, s); len(again) != 0 {
		t.Errorf("Unevaluated again = %v: a taken event is not handed out twice", ids(again))
	}
	if st := stats(t, s); st.Unevaluated != 1 {
		t.Errorf("Stats while evaluating = %+v, want it still counted as unevaluated", st)
	}
	j := newJob(ev, "alert", 0, "pager", base)
	err := s.Commit(ctx(t), []*store.Evaluation{{EventID: ev.ID, Matched: []string{"alert", "quiet"},
		Throttled: []string{"quiet"}, Fed: []string{"burst"}, Errors: []string{"rule x: boom"}, Jobs: []*store.Job{j}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Unevaluated != 0 || st.Pending != 1 || st.Dead != 0 {
		t.Errorf("Stats after Commit = %+v, want 0 unevaluated, 1 pending", st)
	}
	d, err := s.Event(ctx(t), ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Event.ID != ev.ID || d.Event.Stream != "room1" || !d.Event.ReceivedAt.Equal(base) || d.DedupeKey != "k" ||
		!slices.Equal(d.Matched, []string{"alert", "quiet"}) || !slices.Equal(d.Throttled, []string{"quiet"}) || !slices.Equal(d.Fed, []string{"burst"}) ||
		!slices.Equal(d.Errors, []string{"rule x: boom"}) || !slices.Equal(jobIDs(d.Jobs), []string{j.ID}) {
		t.Errorf("Event = %+v with jobs %v, want what was committed", d.EventRecord, jobIDs(d.Jobs))
	}
	if got, err := s.Job(ctx(t), j.ID); err != nil || got.State != store.Pending || got.Action != "pager" || got.Rule != "alert" {
		t.Errorf("Job = %+v, %v; want it pending", got, err)
	}
	if _, err := s.Event(ctx(t), "01JDZ0000000000000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Event(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.Job(ctx(t), ev.ID+".alert"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Job(prefix of a job id) = %v, want ErrNotFound", err)
	}
	if err := s.Commit(ctx(t), []*store.Evaluation{{EventID: ev.ID}}); !errors.Is(err, store.ErrNotTaken) {
		t.Errorf("committing an event a second time: %v, want ErrNotTaken: it is not being evaluated", err)
	}
}

func testDedupeRace(t *testing.T, open Opener) {
	s, _ := open(t)
	const copies = 32
	evs := make([]*event.Event, copies)
	got := make([]store.Acceptance, copies)
	var wg sync.WaitGroup
	for i := range copies {
		evs[i] = newEvent(base, "room1")
		wg.Go(func() {
			a, err := s.Accept(context.Background(), &store.Incoming{Event: evs[i], DedupeKey: "same", DedupeTTL: time.Hour})
			if err != nil {
				t.Error(err)
			}
			got[i] = a
		})
	}
	wg.Wait()
	var first string
	for i, a := range got {
		if !a.Duplicate {
			if first != "" {
				t.Fatalf("copies %s and %s were both accepted as new", first, a.ID)
			}
			if a.ID != evs[i].ID {
				t.Errorf("the new copy answered id %s, want its own %s", a.ID, evs[i].ID)
			}
			first = a.ID
		}
	}
	if first == "" {
		t.Fatal("no copy was accepted as new")
	}
	for _, a := range got {
		if a.ID != first {
			t.Errorf("a duplicate answered %s, want the first copy's id %s", a.ID, first)
		}
	}
	if taken := take(t, s); !slices.Equal(ids(taken), []string{first}) {
		t.Errorf("to evaluate: %v, want only %s", ids(taken), first)
	}
}

func testDedupeWindow(t *testing.T, open Opener) {
	s, _ := open(t)
	first := newEvent(base, "room1")
	accept(t, s, first, "k", time.Minute)
	accept(t, s, newEvent(base, "other"), "", 0)
	accept(t, s, newEvent(base, "other"), "", 0) // no identity: never a duplicate
	tests := []struct {
		name    string
		at      time.Time
		key     string
		wantDup bool
	}{
		{name: "a retry inside the window", at: base.Add(59 * time.Second), key: "k", wantDup: true},
		{name: "another key", at: base.Add(time.Second), key: "k2"},
		{name: "the same key after its window", at: base.Add(time.Minute), key: "k"},
	}
	for _, tc := range tests {
		ev := newEvent(tc.at, "room1")
		got := accept(t, s, ev, tc.key, time.Minute)
		if tc.wantDup && (!got.Duplicate || got.ID != first.ID) {
			t.Errorf("%s: %+v, want a duplicate of %s", tc.name, got, first.ID)
		}
		if !tc.wantDup && (got.Duplicate || got.ID != ev.ID) {
			t.Errorf("%s: %+v, want new with id %s", tc.name, got, ev.ID)
		}
	}
	if n := len(take(t, s)); n != 5 {
		t.Errorf("%d events to evaluate, want 5 (the duplicate is not one)", n)
	}
}

func testUnevaluatedWaits(t *testing.T, open Opener) {
	s, _ := open(t)
	got := make(chan []*store.Accepted)
	go func() {
		batch, err := s.Unevaluated(context.Background(), 10)
		if err != nil {
			t.Error(err)
		}
		got <- batch
	}()
	ev := newEvent(base, "room1")
	accept(t, s, ev, "", 0)
	select {
	case batch := <-got:
		if !slices.Equal(ids(batch), []string{ev.ID}) {
			t.Errorf("the waiting Unevaluated got %v, want %s", ids(batch), ev.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Unevaluated still waiting 10s after an event was accepted")
	}
	// With nothing to take, a live context waits and an ended one says so.
	short, cancel := context.WithCancel(context.Background())
	cancel()
	if batch, err := s.Unevaluated(short, 10); !errors.Is(err, context.Canceled) || len(batch) != 0 {
		t.Errorf("Unevaluated with nothing waiting and an ended context = %v, %v; want context.Canceled", ids(batch), err)
	}
}

func testCommitIsOneUnit(t *testing.T, open Opener) {
	s, reopen := open(t)
	a, b := newEvent(base, "a"), newEvent(base.Add(time.Second), "b")
	accept(t, s, a, "ka", time.Hour)
	accept(t, s, b, "kb", time.Hour)
	taken := take(t, s)
	if len(taken) != 2 {
		t.Fatalf("took %d events, want 2", len(taken))
	}
	// Only b is committed; a was taken and never committed (the process
	// died while evaluating it).
	jb := newJob(b, "r", 0, "x", base)
	if err := s.Commit(ctx(t), []*store.Evaluation{{EventID: b.ID, Matched: []string{"r"}, Jobs: []*store.Job{jb}}}); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = reopen()
	defer s.Close()
	if again := take(t, s); !slices.Equal(ids(again), []string{a.ID}) {
		t.Errorf("after a reopen, to evaluate: %v, want only the uncommitted %s", ids(again), a.ID)
	}
	if d, err := s.Event(ctx(t), b.ID); err != nil || !slices.Equal(jobIDs(d.Jobs), []string{jb.ID}) || !slices.Equal(d.Matched, []string{"r"}) {
		t.Errorf("committed event after a reopen: %+v, %v; want it with its job", d, err)
	}
	// Both identities hold: a's from its accept, b's from its commit.
	for _, k := range []struct {
		key string
		id  string
	}{{"ka", a.ID}, {"kb", b.ID}} {
		if got := accept(t, s, newEvent(base.Add(time.Minute), "retry"), k.key, time.Hour); !got.Duplicate || got.ID != k.id {
			t.Errorf("retry with %s after a reopen: %+v, want a duplicate of %s", k.key, got, k.id)
		}
	}
}

func testClaimsAndLeases(t *testing.T, open Opener) {
	s, _ := open(t)
	ev := newEvent(base, "room1")
	accept(t, s, ev, "", 0)
	later := base.Add(time.Hour)
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		return &store.Evaluation{Matched: []string{"r"}, Jobs: []*store.Job{newJob(ev, "r", 0, "x", base), newJob(ev, "r", 1, "x", later)}}
	})
	now, first := base, store.JobID(ev.ID, "r", 0, 0)

	got, next := claim(t, s, "one", now, nil)
	if !slices.Equal(claimedIDs(got), []string{first}) || !next.Equal(now.Add(time.Minute)) {
		t.Fatalf("first claim: %v, next %v; want only the due job, next when its lease ends", claimedIDs(got), next)
	}
	if got[0].Event == nil || got[0].Event.ID != ev.ID || got[0].Event.Stream != "room1" {
		t.Errorf("claimed job's event = %+v, want the event it delivers", got[0].Event)
	}
	if other, _ := claim(t, s, "two", now.Add(30*time.Second), nil); len(other) != 0 {
		t.Errorf("another owner claimed %v while the lease holds", claimedIDs(other))
	}
	// The lease expires: the job is claimable again, and its old owner's
	// finish is refused.
	stolen, _ := claim(t, s, "two", now.Add(time.Minute), nil)
	if !slices.Equal(claimedIDs(stolen), []string{first}) {
		t.Fatalf("claim after the lease ended: %v, want %s", claimedIDs(stolen), first)
	}
	if err := finish(t, s, "one", got[0].Job, store.Delivered, now); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("finish by the owner that lost the lease = %v, want ErrLeaseLost", err)
	}
	if j, _ := s.Job(ctx(t), first); j.State != store.Pending || len(j.Attempts) != 0 {
		t.Errorf("after a refused finish the job is %s with %d attempts, want untouched", j.State, len(j.Attempts))
	}
	if err := finish(t, s, "two", stolen[0].Job, store.Delivered, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if again, _ := claim(t, s, "three", later.Add(-time.Second), nil); len(again) != 0 {
		t.Errorf("claim after delivery: %v, want nothing: a delivered job is never claimed again", claimedIDs(again))
	}
	if err := finish(t, s, "two", stolen[0].Job, store.Delivered, now); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("finishing a job twice = %v, want ErrLeaseLost", err)
	}
	// The second job comes due later.
	got, _ = claim(t, s, "one", later, nil)
	if !slices.Equal(claimedIDs(got), []string{store.JobID(ev.ID, "r", 1, 0)}) {
		t.Errorf("claim at the second job's time: %v", claimedIDs(got))
	}
	if st := stats(t, s); st.Pending != 1 {
		t.Errorf("Stats = %+v, want the claimed job still pending", st)
	}
}

func testClaimLimits(t *testing.T, open Opener) {
	s, _ := open(t)
	for i := range 5 {
		accept(t, s, newEvent(base.Add(time.Duration(i)*time.Second), fmt.Sprint("room", i)), "", 0)
	}
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		return &store.Evaluation{Jobs: []*store.Job{newJob(ev, "r", 0, "slow", base), newJob(ev, "r", 1, "fast", base), newJob(ev, "r", 2, "gone", base)}}
	})
	limits := map[string]int{"slow": 2, "fast": 10}
	got, _ := claim(t, s, "one", base, limits)
	count := map[string]int{}
	for _, c := range got {
		count[c.Job.Action]++
	}
	// "gone" is not in the rules any more: bounded by Other (100).
	if count["slow"] != 2 || count["fast"] != 5 || count["gone"] != 5 {
		t.Fatalf("claimed %v, want slow 2 (its limit), fast 5, gone 5", count)
	}
	if more, _ := claim(t, s, "two", base, limits); len(more) != 0 {
		t.Errorf("another owner claimed %v: the limit holds across owners", claimedIDs(more))
	}
	for _, c := range got {
		if c.Job.Action == "slow" {
			if err := finish(t, s, "one", c.Job, store.Delivered, base); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if more, _ := claim(t, s, "two", base, limits); len(more) != 1 || more[0].Job.Action != "slow" {
		t.Errorf("after one slow job finished: claimed %v, want one slow job", claimedIDs(more))
	}
}

func testRetryAndDeadLetter(t *testing.T, open Opener) {
	s, _ := open(t)
	ev := newEvent(base, "room1")
	accept(t, s, ev, "", 0)
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		return &store.Evaluation{Jobs: []*store.Job{newJob(ev, "r", 0, "x", base)}}
	})
	id := store.JobID(ev.ID, "r", 0, 0)
	got, _ := claim(t, s, "one", base, nil)
	if err := finish(t, s, "one", got[0].Job, store.Pending, base); err != nil { // retry in a minute
		t.Fatal(err)
	}
	if early, next := claim(t, s, "one", base.Add(59*time.Second), nil); len(early) != 0 || !next.Equal(base.Add(time.Minute)) {
		t.Errorf("claim before the retry is due: %v, next %v; want nothing, next at %v", claimedIDs(early), next, base.Add(time.Minute))
	}
	got, _ = claim(t, s, "one", base.Add(time.Minute), nil)
	if len(got) != 1 || len(got[0].Job.Attempts) != 1 {
		t.Fatalf("claim when the retry is due: %v, want the job with its first attempt", claimedIDs(got))
	}
	if _, err := s.ReplayJob(ctx(t), id, base); !errors.Is(err, store.ErrNotDead) {
		t.Errorf("replaying a pending job = %v, want ErrNotDead", err)
	}
	if err := finish(t, s, "one", got[0].Job, store.Dead, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Pending != 0 || st.Dead != 1 {
		t.Errorf("Stats after the dead letter = %+v, want 0 pending, 1 dead", st)
	}
	dead, err := s.DeadLetters(ctx(t), store.DeadFilter{Limit: 10})
	if err != nil || !slices.Equal(jobIDs(dead), []string{id}) || dead[0].State != store.Dead || len(dead[0].Attempts) != 2 {
		t.Fatalf("DeadLetters = %v, %v; want %s with its 2 attempts", jobIDs(dead), err, id)
	}
	if none, _ := claim(t, s, "one", base.Add(time.Hour), nil); len(none) != 0 {
		t.Errorf("a dead letter was claimed: %v", claimedIDs(none))
	}
	replayAt := base.Add(2 * time.Hour)
	j, err := s.ReplayJob(ctx(t), id, replayAt)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.Pending || j.Tries() != 0 || len(j.Attempts) != 2 || !j.Created.Equal(replayAt) {
		t.Errorf("replayed job: %s, %d tries of %d attempts, created %v; want pending, a fresh allowance, its history, created at the replay",
			j.State, j.Tries(), len(j.Attempts), j.Created)
	}
	if _, err := s.ReplayJob(ctx(t), id, replayAt); !errors.Is(err, store.ErrNotDead) {
		t.Errorf("replaying it twice = %v, want ErrNotDead", err)
	}
	if _, err := s.ReplayJob(ctx(t), "01JDZ0000000000000000000000.r.0", replayAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replaying an unknown job = %v, want ErrNotFound", err)
	}
	if st := stats(t, s); st.Pending != 1 || st.Dead != 0 {
		t.Errorf("Stats after the replay = %+v, want 1 pending, 0 dead", st)
	}
	if got, _ := claim(t, s, "one", replayAt, nil); !slices.Equal(claimedIDs(got), []string{id}) {
		t.Errorf("claim after the replay: %v, want %s", claimedIDs(got), id)
	}
}

func testReplayEvent(t *testing.T, open Opener) {
	s, _ := open(t)
	ev := newEvent(base, "room1")
	accept(t, s, ev, "", 0)
	evaluate(t, s, func(*event.Event) *store.Evaluation { return &store.Evaluation{Matched: []string{"r"}} })
	for n := 1; n <= 2; n++ {
		jobs, err := s.ReplayEvent(ctx(t), ev.ID, func(got *event.Event, replay int) ([]*store.Job, error) {
			if got.ID != ev.ID || got.Stream != "room1" || replay != n {
				t.Errorf("replay %d planned for %+v as replay %d", n, got, replay)
			}
			j := newJob(got, "r", 0, "x", base)
			j.ID = store.JobID(got.ID, "r", 0, replay)
			return []*store.Job{j}, nil
		})
		want := []string{fmt.Sprintf("%s.r.0.r%d", ev.ID, n)}
		if err != nil || !slices.Equal(jobIDs(jobs), want) {
			t.Fatalf("replay %d: %v, %v; want %v", n, jobIDs(jobs), err, want)
		}
		if got, _ := claim(t, s, "one", base, nil); !slices.Equal(claimedIDs(got), want) {
			t.Errorf("after replay %d claimed %v, want %v", n, claimedIDs(got), want)
		}
	}
	d, err := s.Event(ctx(t), ev.ID)
	if err != nil || d.Replays != 2 || len(d.Jobs) != 2 {
		t.Errorf("event after two replays: %+v, %v; want replays 2 with 2 jobs", d, err)
	}
	boom := errors.New("boom")
	if _, err := s.ReplayEvent(ctx(t), ev.ID, func(*event.Event, int) ([]*store.Job, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("a replay whose planning failed = %v, want its error", err)
	}
	if d, _ := s.Event(ctx(t), ev.ID); d.Replays != 2 {
		t.Errorf("a failed replay was counted: replays %d, want 2", d.Replays)
	}
	if _, err := s.ReplayEvent(ctx(t), "01JDZ0000000000000000000000", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replaying an unknown event = %v, want ErrNotFound", err)
	}
}

func testPaging(t *testing.T, open Opener) {
	s, _ := open(t)
	var want []string // newest first
	for i := range 7 {
		ev := newEvent(base.Add(time.Duration(i)*time.Second), fmt.Sprint("room", i))
		if i%2 == 1 {
			ev.Source = "generic"
		}
		accept(t, s, ev, "", 0)
		want = append([]string{ev.ID}, want...)
	}
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		e := &store.Evaluation{}
		if ev.Stream != "room3" {
			e.Matched = []string{"r"}
			e.Jobs = []*store.Job{newJob(ev, "r", 0, "x", base)}
		}
		return e
	})
	var got []string
	for cursor, pages := "", 0; ; pages++ {
		page, err := s.Events(ctx(t), store.EventFilter{Limit: 3, Before: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 || pages > 5 {
			break
		}
		for _, r := range page {
			got = append(got, r.Event.ID)
		}
		cursor = page[len(page)-1].Event.ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("events paged 3 at a time: %v, want each once, newest first: %v", got, want)
	}
	filtered := func(f store.EventFilter) []string {
		recs, err := s.Events(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range recs {
			out = append(out, r.Event.Stream)
		}
		return out
	}
	if got := filtered(store.EventFilter{Limit: 10, Source: "generic"}); !slices.Equal(got, []string{"room5", "room3", "room1"}) {
		t.Errorf("source generic: %v", got)
	}
	if got := filtered(store.EventFilter{Limit: 10, Source: "generic", Rule: "r"}); !slices.Equal(got, []string{"room5", "room1"}) {
		t.Errorf("source generic that matched r: %v", got)
	}
	if got := filtered(store.EventFilter{Limit: 2, Rule: "r", Before: want[1]}); !slices.Equal(got, []string{"room4", "room2"}) {
		t.Errorf("matched r, 2 before room5: %v", got)
	}

	claimed, _ := claim(t, s, "one", base, nil)
	var wantDead []string
	for _, c := range claimed {
		if err := finish(t, s, "one", c.Job, store.Dead, base); err != nil {
			t.Fatal(err)
		}
		wantDead = append([]string{c.Job.ID}, wantDead...)
	}
	slices.Sort(wantDead)
	slices.Reverse(wantDead)
	var gotDead []string
	for cursor, pages := "", 0; pages < 10; pages++ {
		page, err := s.DeadLetters(ctx(t), store.DeadFilter{Limit: 4, Before: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		gotDead = append(gotDead, jobIDs(page)...)
		cursor = page[len(page)-1].ID
	}
	if !slices.Equal(gotDead, wantDead) {
		t.Errorf("dead letters paged 4 at a time: %v, want %v", gotDead, wantDead)
	}
}

func testRetention(t *testing.T, open Opener) {
	s, _ := open(t)
	now := base.Add(48 * time.Hour)
	cutoff := now.Add(-time.Hour)
	type fixture struct {
		name       string
		at         time.Time
		finalState string // "" for an event no rule matched
		wantPruned bool
	}
	fixtures := []fixture{
		{name: "old, delivered", at: now.Add(-3 * time.Hour), finalState: store.Delivered, wantPruned: true},
		{name: "old, no rule matched", at: now.Add(-2 * time.Hour), wantPruned: true},
		{name: "old, a dead letter", at: now.Add(-3 * time.Hour), finalState: store.Dead},
		{name: "old, still pending", at: now.Add(-3 * time.Hour), finalState: store.Pending},
		{name: "recent, delivered", at: now.Add(-time.Minute), finalState: store.Delivered},
	}
	evs := map[string]*event.Event{}
	byID := map[string]fixture{}
	for _, f := range fixtures {
		ev := newEvent(f.at, f.name)
		evs[f.name], byID[ev.ID] = ev, f
		accept(t, s, ev, "k/"+f.name, time.Hour)
	}
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		if byID[ev.ID].finalState == "" {
			return &store.Evaluation{}
		}
		return &store.Evaluation{Matched: []string{"r"}, Jobs: []*store.Job{newJob(ev, "r", 0, "x", base)}}
	})
	claimed, _ := claim(t, s, "one", base, nil)
	for _, c := range claimed {
		if st := byID[c.Event.ID].finalState; st != store.Pending {
			if err := finish(t, s, "one", c.Job, st, base); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := s.Prune(ctx(t), cutoff, now)
	if err != nil || n != 2 {
		t.Errorf("Prune = %d, %v; want 2", n, err)
	}
	for _, f := range fixtures {
		_, err := s.Event(ctx(t), evs[f.name].ID)
		switch {
		case f.wantPruned && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: kept (%v), want pruned", f.name, err)
		case !f.wantPruned && err != nil:
			t.Errorf("%s: %v, want kept", f.name, err)
		}
	}
	if got := accept(t, s, newEvent(now, "again"), "k/old, delivered", time.Hour); got.Duplicate {
		t.Errorf("an identity whose window ended long ago still answered a duplicate: %+v", got)
	}
}

func testSurvivesReopen(t *testing.T, open Opener) {
	s, reopen := open(t)
	done, pending, dead, waiting := newEvent(base, "done"), newEvent(base.Add(time.Second), "pending"),
		newEvent(base.Add(2*time.Second), "dead"), newEvent(base.Add(3*time.Second), "waiting")
	for _, ev := range []*event.Event{done, pending, dead} {
		accept(t, s, ev, "k/"+ev.Stream, 24*time.Hour)
	}
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		return &store.Evaluation{Matched: []string{"r"}, Jobs: []*store.Job{newJob(ev, "r", 0, "x", base)}}
	})
	accept(t, s, waiting, "k/waiting", 24*time.Hour)
	claimed, _ := claim(t, s, "one", base, nil)
	for _, c := range claimed {
		switch c.Event.Stream {
		case "done":
			if err := finish(t, s, "one", c.Job, store.Delivered, base); err != nil {
				t.Fatal(err)
			}
		case "dead":
			if err := finish(t, s, "one", c.Job, store.Dead, base); err != nil {
				t.Fatal(err)
			}
		}
		// "pending" stays claimed: its owner dies with the process.
	}
	closeStore(t, s)

	s = reopen()
	defer s.Close()
	if st := stats(t, s); st.Unevaluated != 1 || st.Pending != 1 || st.Dead != 1 {
		t.Errorf("Stats after reopen = %+v, want 1 unevaluated, 1 pending, 1 dead", st)
	}
	if got := take(t, s); !slices.Equal(ids(got), []string{waiting.ID}) {
		t.Errorf("to evaluate after reopen: %v, want %s", ids(got), waiting.ID)
	}
	for _, ev := range []*event.Event{done, pending, dead, waiting} {
		if got := accept(t, s, newEvent(base.Add(time.Hour), "retry"), "k/"+ev.Stream, 24*time.Hour); !got.Duplicate || got.ID != ev.ID {
			t.Errorf("retry of %s after reopen: %+v, want a duplicate of %s", ev.Stream, got, ev.ID)
		}
	}
	// The dead owner's lease ends with its lease time, at the latest.
	got, _ := claim(t, s, "two", base.Add(time.Minute), nil)
	if !slices.Equal(claimedIDs(got), []string{store.JobID(pending.ID, "r", 0, 0)}) {
		t.Errorf("claim after reopen: %v, want the pending job", claimedIDs(got))
	}
	if dl, err := s.DeadLetters(ctx(t), store.DeadFilter{Limit: 10}); err != nil || len(dl) != 1 || dl[0].EventID != dead.ID {
		t.Errorf("dead letters after reopen: %v, %v", jobIDs(dl), err)
	}
	if d, err := s.Event(ctx(t), done.ID); err != nil || len(d.Jobs) != 1 || d.Jobs[0].State != store.Delivered || len(d.Jobs[0].Attempts) != 1 {
		t.Errorf("delivered event after reopen: %+v, %v", d, err)
	}
}

func readState(t *testing.T, s store.Store, now time.Time, keys ...string) map[string]store.State {
	t.Helper()
	got, err := s.State(ctx(t), keys, now)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return got
}

func testState(t *testing.T, open Opener) {
	s, reopen := open(t)
	commit := func(changes ...store.StateChange) error {
		t.Helper()
		accept(t, s, newEvent(base, "room1"), "", 0)
		taken := take(t, s)
		err := s.Commit(ctx(t), []*store.Evaluation{{EventID: taken[0].Event.ID, State: changes}})
		if err != nil {
			// Refused whole: the event is still to be committed.
			if again := s.Commit(ctx(t), []*store.Evaluation{{EventID: taken[0].Event.ID}}); again != nil {
				t.Fatalf("committing the event again after a refused commit: %v", again)
			}
		}
		return err
	}
	if got := readState(t, s, base, "a"); len(got) != 0 {
		t.Fatalf("State of a key never written: %v, want absent", got)
	}
	// Two changes of one key in one commit: the second follows the first.
	if err := commit(store.StateChange{Key: "a", Value: []byte("1"), Expires: base.Add(time.Hour)},
		store.StateChange{Key: "a", Read: 12345, Value: []byte("2"), Expires: base.Add(time.Hour)},
		store.StateChange{Key: "b", Value: []byte("x"), Expires: base.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got := readState(t, s, base, "a", "b", "c")
	a, b := got["a"], got["b"]
	if string(a.Value) != "2" || a.Version == 0 || string(b.Value) != "x" || b.Version == 0 || len(got) != 2 {
		t.Fatalf("State after the commit: %+v, want a=2 and b=x with versions, c absent", got)
	}
	// A change that read an older version is refused, and records nothing.
	err := commit(store.StateChange{Key: "a", Read: a.Version, Value: []byte("3"), Expires: base.Add(time.Hour)},
		store.StateChange{Key: "b", Read: 0, Value: []byte("y"), Expires: base.Add(time.Hour)})
	if !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("commit with a stale read = %v, want ErrStateConflict", err)
	}
	if got := readState(t, s, base, "a", "b"); string(got["a"].Value) != "2" || string(got["b"].Value) != "x" {
		t.Errorf("after a refused commit: %+v, want a=2 b=x unchanged", got)
	}
	// Expired: no value, and the version to write over.
	late := base.Add(2 * time.Minute)
	if got := readState(t, s, late, "b")["b"]; got.Value != nil || got.Version != b.Version {
		t.Errorf("an expired entry reads %+v, want no value and version %d", got, b.Version)
	}
	if err := commit(store.StateChange{Key: "b", Read: b.Version, Value: []byte("z"), Expires: base.Add(time.Hour)},
		store.StateChange{Key: "a", Read: a.Version}); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = reopen()
	defer s.Close()
	got = readState(t, s, late, "a", "b")
	if _, ok := got["a"]; ok || string(got["b"].Value) != "z" {
		t.Errorf("after a reopen: %+v, want a deleted and b=z", got)
	}
	if n, err := s.Prune(ctx(t), base, base.Add(2*time.Hour)); err != nil {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	if got := readState(t, s, base, "b"); got["b"].Value != nil {
		t.Errorf("after pruning past its expiry: %+v, want b gone", got)
	}
}

func testTimers(t *testing.T, open Opener) {
	s, reopen := open(t)
	commitTimers := func(changes ...store.StateChange) {
		t.Helper()
		if err := s.Commit(ctx(t), []*store.Evaluation{{State: changes}}); err != nil {
			t.Fatalf("Commit of a timer evaluation: %v", err)
		}
	}
	far := base.Add(24 * time.Hour)
	commitTimers(
		store.StateChange{Key: "t/a", Value: []byte("a"), Expires: far, Due: base.Add(time.Minute)},
		store.StateChange{Key: "t/b", Value: []byte("b"), Expires: far, Due: base.Add(2 * time.Minute)},
		store.StateChange{Key: "t/c", Value: []byte("c"), Expires: far},
		store.StateChange{Key: "u/d", Value: []byte("d"), Expires: far, Due: base.Add(3 * time.Minute)},
	)
	if st := stats(t, s); st.StateKeys != 4 || st.Timers != 3 {
		t.Errorf("Stats = %+v, want 4 state keys, 3 timers", st)
	}
	due, next, err := s.DueTimers(ctx(t), base, 10)
	if err != nil || len(due) != 0 || !next.Equal(base.Add(time.Minute)) {
		t.Fatalf("DueTimers before any is due: %v, next %v, %v; want none, next at +1m", due, next, err)
	}
	due, next, _ = s.DueTimers(ctx(t), base.Add(2*time.Minute), 10)
	if len(due) != 2 || due[0].Key != "t/a" || due[1].Key != "t/b" || string(due[0].Value) != "a" || !next.Equal(base.Add(3*time.Minute)) {
		t.Fatalf("DueTimers at +2m: %+v, next %v; want t/a then t/b, next at +3m", due, next)
	}
	if again, _, _ := s.DueTimers(ctx(t), base.Add(2*time.Minute), 10); len(again) != 0 {
		t.Errorf("taken timers handed out again: %+v", again)
	}
	// t/a fired and is gone; t/b is moved on by an hour.
	commitTimers(store.StateChange{Key: "t/a", Read: due[0].Version},
		store.StateChange{Key: "t/b", Read: due[1].Version, Value: []byte("b2"), Expires: far, Due: base.Add(time.Hour)})
	list, err := s.ListState(ctx(t), "t/", "", 10)
	if err != nil || len(list) != 2 || list[0].Key != "t/b" || string(list[0].Value) != "b2" || !list[0].Due.Equal(base.Add(time.Hour)) || list[1].Key != "t/c" {
		t.Fatalf("ListState(t/) = %+v, %v; want t/b (due +1h) and t/c", list, err)
	}
	if page, _ := s.ListState(ctx(t), "t/", "t/b", 10); len(page) != 1 || page[0].Key != "t/c" {
		t.Errorf("ListState after t/b = %+v, want t/c", page)
	}
	closeStore(t, s)
	s = reopen()
	defer s.Close()
	due, _, _ = s.DueTimers(ctx(t), base.Add(2*time.Hour), 10)
	if len(due) != 2 || due[0].Key != "u/d" || due[1].Key != "t/b" {
		t.Fatalf("after a reopen, due at +2h: %+v; want u/d then t/b", due)
	}
	n, err := s.DropState(ctx(t), "t/")
	if err != nil || n != 2 {
		t.Errorf("DropState(t/) = %d, %v; want 2", n, err)
	}
	if list, _ := s.ListState(ctx(t), "", "", 10); len(list) != 1 || list[0].Key != "u/d" {
		t.Errorf("after dropping t/: %+v, want only u/d", list)
	}
	if st := stats(t, s); st.StateKeys != 1 || st.Timers != 1 {
		t.Errorf("Stats = %+v, want 1 key, 1 timer", st)
	}
}

func testShadow(t *testing.T, open Opener) {
	s, reopen := open(t)
	first, second := newEvent(base, "first"), newEvent(base.Add(time.Second), "second")
	accept(t, s, first, "", 0)
	accept(t, s, second, "", 0)
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		if ev.ID != first.ID {
			return &store.Evaluation{}
		}
		return &store.Evaluation{Shadow: []store.Shadow{{EventID: ev.ID, Rule: "watch", At: base}}}
	})
	// A timer's firing is recorded with the event that set it; one naming
	// an event that is gone is dropped.
	firing := []byte(`{"key":"k"}`)
	err := s.Commit(ctx(t), []*store.Evaluation{{Shadow: []store.Shadow{
		{EventID: first.ID, Rule: "absent", At: base.Add(time.Minute), Firing: firing},
		{EventID: "01JDZ0000000000000000000000", Rule: "absent", At: base.Add(time.Minute)},
	}}})
	if err != nil {
		t.Fatalf("Commit of a timer's shadow firing: %v", err)
	}
	check := func(when string) {
		t.Helper()
		d, err := s.Event(ctx(t), first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Shadow) != 2 || d.Shadow[0].Rule != "watch" || !d.Shadow[0].At.Equal(base) ||
			d.Shadow[1].Rule != "absent" || !d.Shadow[1].At.Equal(base.Add(time.Minute)) || string(d.Shadow[1].Firing) != string(firing) {
			t.Errorf("%s: shadow of the first event = %+v, want its match, then the timer's firing", when, d.Shadow)
		}
		if d, err := s.Event(ctx(t), second.ID); err != nil || len(d.Shadow) != 0 {
			t.Errorf("%s: shadow of the second event = %+v, %v; want none", when, d.Shadow, err)
		}
	}
	check("after the commits")
	closeStore(t, s)
	s = reopen()
	defer s.Close()
	check("after a reopen")
}
