package store

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// holdApplies stops s's applier, so that finished jobs' states stay in the
// journal and in memory until a read settles them; Close then applies
// nothing either, as a kill would.
func holdApplies(s *Local) {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.applierDone
	})
}

// withJobs accepts and commits event i with n pending jobs of action "a",
// due at base.
func withJobs(t *testing.T, s *Local, i, n int) []*Job {
	t.Helper()
	ev := eventNo(i)
	if _, err := s.Accept(t.Context(), &Incoming{Event: ev}); err != nil {
		t.Fatal(err)
	}
	var jobs []*Job
	for k := range n {
		jobs = append(jobs, &Job{ID: JobID(ev.ID, "r", k, 0), EventID: ev.ID, Rule: "r", Step: k, Action: "a",
			State: Pending, Created: base, NextAt: base, Attempts: []Attempt{}})
	}
	var evals []*Evaluation
	for _, a := range taken(t, s) {
		evals = append(evals, &Evaluation{EventID: a.Event.ID, Matched: []string{"r"}, Jobs: jobs})
	}
	if err := s.Commit(t.Context(), evals); err != nil {
		t.Fatal(err)
	}
	return jobs
}

func claimIDs(t *testing.T, s *Local, now time.Time) []*Job {
	t.Helper()
	return claimUpTo(t, s, now, 1<<20)
}

func claimUpTo(t *testing.T, s *Local, now time.Time, limit int) []*Job {
	t.Helper()
	got, _, err := s.ClaimJobs(t.Context(), Claim{Owner: "o", Now: now, Lease: time.Minute, Limits: map[string]int{"a": limit}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*Job
	for _, c := range got {
		out = append(out, c.Job)
	}
	return out
}

func finishAs(t *testing.T, s *Local, j *Job, state string, next time.Time) {
	t.Helper()
	j.Attempts = append(j.Attempts, Attempt{At: base, Outcome: "retryable"})
	j.State, j.NextAt = state, next
	if state == Dead {
		j.LastError = "gave up"
	}
	if err := s.Finish(t.Context(), "o", j); err != nil {
		t.Fatal(err)
	}
}

// storedJob reads a job from the db itself, past what is waiting to be
// applied.
func storedJob(t *testing.T, s *Local, id string) *Job {
	t.Helper()
	var j Job
	if err := s.db.View(func(tx *bolt.Tx) error { return json.Unmarshal(tx.Bucket(bucketJobs).Get([]byte(id)), &j) }); err != nil {
		t.Fatal(err)
	}
	return &j
}

// checkJobs asserts each job's state and number of attempts, and what
// the store counts and lists of them.
func checkJobs(t *testing.T, when string, s *Local, eventID string, want map[string][2]any, pending, dead int) {
	t.Helper()
	for id, w := range want {
		j, err := s.Job(t.Context(), id)
		if err != nil {
			t.Fatalf("%s: job %s: %v", when, id, err)
		}
		if j.State != w[0] || len(j.Attempts) != w[1] {
			t.Errorf("%s: job %s is %s with %d attempts, want %s with %d", when, id, j.State, len(j.Attempts), w[0], w[1])
		}
	}
	if st, _ := s.Stats(t.Context()); st.Pending != pending || st.Dead != dead {
		t.Errorf("%s: stats pending %d dead %d, want %d and %d", when, st.Pending, st.Dead, pending, dead)
	}
	d, err := s.Event(t.Context(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	delivered := len(want) - pending - dead
	if got := d.Deliveries; got != (Deliveries{Pending: pending, Delivered: delivered, Dead: dead}) {
		t.Errorf("%s: event's deliveries %+v, want %d pending, %d delivered, %d dead", when, got, pending, delivered, dead)
	}
	letters, err := s.DeadLetters(t.Context(), DeadFilter{Limit: 10})
	if err != nil || len(letters) != dead {
		t.Errorf("%s: dead letters %d (%v), want %d", when, len(letters), err, dead)
	}
}

// A finish that returned survives a crash before it reached the db: the
// reopened store applies it from the journal, and applying it again at
// the next reopen changes nothing. Until then, claims read it.
func TestFinishSurvivesACrashBeforeItIsApplied(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	jobs := withJobs(t, s, 1, 3)
	holdApplies(s)
	claimIDs(t, s, base)
	retry := base.Add(time.Minute)
	finishAs(t, s, jobs[0], Delivered, time.Time{})
	finishAs(t, s, jobs[1], Pending, retry)
	finishAs(t, s, jobs[2], Dead, time.Time{})
	if got := storedJob(t, s, jobs[0].ID); got.State != Pending || len(got.Attempts) != 0 {
		t.Fatalf("the db has job %s as %s with %d attempts: the finish was applied, the test proves nothing", jobs[0].ID, got.State, len(got.Attempts))
	}
	if got := claimIDs(t, s, base); len(got) != 0 {
		t.Errorf("claimed at the first due time: %v, want nothing (every job finished)", got)
	}
	if got := claimIDs(t, s, retry); len(got) != 1 || got[0].ID != jobs[1].ID || len(got[0].Attempts) != 1 {
		t.Errorf("claimed at the retry: %v, want %s with its attempt", got, jobs[1].ID)
	}
	if err := s.Close(); err != nil { // a crash: nothing applied
		t.Fatal(err)
	}
	want := map[string][2]any{jobs[0].ID: {Delivered, 1}, jobs[1].ID: {Pending, 1}, jobs[2].ID: {Dead, 1}}
	for _, when := range []string{"reopened", "reopened again"} {
		s = openLocal(t, dir)
		holdApplies(s)
		if got := storedJob(t, s, jobs[2].ID); got.State != Dead {
			t.Errorf("%s: the db has job %s as %s, want it applied at open", when, jobs[2].ID, got.State)
		}
		if got := claimIDs(t, s, base); len(got) != 0 {
			t.Errorf("%s: claimed at the first due time: %v, want nothing", when, got)
		}
		checkJobs(t, when, s, eventNo(1).ID, want, 1, 1)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Recovery applies job states in journal order: a dead letter replayed
// stays replayed, one deleted stays deleted, though the watermark is held
// below their records (an event not yet evaluated) and every one of them
// is applied again.
func TestReplayAppliesJobStatesInJournalOrder(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	jobs := withJobs(t, s, 1, 2)
	if _, err := s.Accept(t.Context(), &Incoming{Event: eventNo(2)}); err != nil {
		t.Fatal(err)
	}
	claimIDs(t, s, base)
	finishAs(t, s, jobs[0], Dead, time.Time{})
	finishAs(t, s, jobs[1], Dead, time.Time{})
	replayed, err := s.ReplayJob(t.Context(), jobs[0].ID, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteDeadLetters(t.Context(), []string{jobs[1].ID}); err != nil || n != 1 {
		t.Fatalf("delete dead letter: %d, %v", n, err)
	}
	if n := applied(t, s); n >= 2 {
		t.Fatalf("applied position %d: the test needs it held below event 2's record (2)", n)
	}
	s.Close()
	for _, when := range []string{"reopened", "reopened again"} {
		s = openLocal(t, dir)
		j, err := s.Job(t.Context(), jobs[0].ID)
		if err != nil || j.State != Pending || !j.Created.Equal(replayed.Created) {
			t.Errorf("%s: replayed job: %+v, %v; want it pending from its replay", when, j, err)
		}
		if _, err := s.Job(t.Context(), jobs[1].ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: deleted dead letter: %v, want not found", when, err)
		}
		if st, _ := s.Stats(t.Context()); st.Pending != 1 || st.Dead != 0 || st.Unevaluated != 1 {
			t.Errorf("%s: stats %+v, want 1 pending, 0 dead, event 2 to evaluate", when, st)
		}
		if got := claimIDs(t, s, base.Add(time.Hour)); len(got) != 1 || got[0].ID != jobs[0].ID {
			t.Errorf("%s: claimed %v, want the replayed job", when, got)
		}
		s.Close()
	}
}

// Finished jobs waiting to be applied take their new places in a window
// paged in from the due bucket, whose keys for them are stale: none is
// claimed again at its old due time, each is at its new one.
func TestPagedWindowTakesUnappliedStates(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	const n = windowSize + 6
	withJobs(t, s, 1, n)
	s.Close()
	s = openLocal(t, dir) // the window is paged in from the bucket
	holdApplies(s)
	first := claimUpTo(t, s, base, windowSize)
	if len(first) != windowSize {
		t.Fatalf("first claim: %d, want one window (%d)", len(first), windowSize)
	}
	byID := map[string]*Job{}
	for _, j := range first {
		byID[j.ID] = j
	}
	retry := base.Add(time.Hour)
	for _, j := range first {
		finishAs(t, s, j, Pending, retry)
	}
	if got := claimIDs(t, s, base); len(got) != n-windowSize {
		t.Errorf("claimed at the first due time after the retries: %d jobs, want the %d never run", len(got), n-windowSize)
	} else {
		for _, j := range got {
			if byID[j.ID] != nil {
				t.Fatalf("job %s claimed again at its old due time", j.ID)
			}
			finishAs(t, s, j, Delivered, time.Time{})
		}
	}
	again := claimIDs(t, s, retry)
	if len(again) != windowSize {
		t.Fatalf("claimed at the retry: %d, want %d", len(again), windowSize)
	}
	for _, j := range again {
		if byID[j.ID] == nil || len(j.Attempts) != 1 {
			t.Fatalf("claimed at the retry: %s with %d attempts, want a retried job with its attempt", j.ID, len(j.Attempts))
		}
	}
}

// Finishes from many goroutines share the journal's flushes; each is
// seen by reads once it returns.
func TestConcurrentFinishes(t *testing.T) {
	s := openLocal(t, t.TempDir())
	const n = 64
	withJobs(t, s, 1, n)
	claimed := claimIDs(t, s, base)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, j := range claimed {
		wg.Go(func() {
			j.State = Delivered
			j.Attempts = append(j.Attempts, Attempt{At: base, Outcome: "delivered"})
			errs[i] = s.Finish(t.Context(), "o", j)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, j := range claimed {
		got, err := s.Job(t.Context(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, got.State)
	}
	if want := slices.Repeat([]string{Delivered}, n); !slices.Equal(states, want) {
		t.Errorf("states %v, want all %d delivered", states, n)
	}
	if st, _ := s.Stats(t.Context()); st.Pending != 0 {
		t.Errorf("pending %d, want 0", st.Pending)
	}
	if d, err := s.Event(t.Context(), eventNo(1).ID); err != nil || d.Deliveries.Delivered != n || d.Outcome != OutcomeDelivered {
		t.Errorf("event: %+v, %v; want %d delivered", d, err, n)
	}
	// The event's record and every finish's: the watermark passes them
	// all, so the journal's segments are released as before.
	if got := applied(t, s); got != n+1 {
		t.Errorf("applied position %d, want %d", got, n+1)
	}
}

// A read during an apply waits for it: the states the apply took are not
// waiting any more, but not in the db yet either.
func TestReadDuringAnApplyWaitsForIt(t *testing.T) {
	s := openLocal(t, t.TempDir())
	jobs := withJobs(t, s, 1, 1)
	holdApplies(s)
	claimIDs(t, s, base)
	finishAs(t, s, jobs[0], Delivered, time.Time{})
	s.commitMu.Lock() // as the applier does
	b := s.unapplied.take()
	read := make(chan *Job)
	go func() {
		j, err := s.Job(t.Context(), jobs[0].ID)
		if err != nil {
			t.Error(err)
		}
		read <- j
	}()
	err := s.db.Update(func(tx *bolt.Tx) error { return updateJobs(tx, b.states) })
	s.unapplied.done(b)
	s.commitMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if j := <-read; j == nil || j.State != Delivered {
		t.Errorf("read during the apply: %+v, want the job delivered", j)
	}
}
