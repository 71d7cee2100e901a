package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"
)

// A call whose reply is lost (its connection cut just after the server
// committed) fails, but must not leave what it marked held by this live
// process with no one working on it: the events, timers and jobs a lost
// claim took are handed out by the next claim, and a finish tried again
// succeeds.
func TestWorkOfLostRepliesIsHandedOutAgain(t *testing.T) {
	proxy, dsn := pgtest.NewProxy(t, pgtest.DSN(t))
	s := open(t, dsn, postgres.Options{})
	ctx := t.Context()
	lose := func(tag, what string, call func() error) {
		t.Helper()
		proxy.LoseReply(tag)
		if err := call(); err == nil || !proxy.Lost() {
			t.Fatalf("%s with its reply lost: error %v, lost %v; want it lost and failed", what, err, proxy.Lost())
		}
	}

	ev := newEvent(base, "room1")
	accept(t, s, ev, "")
	lose("COMMIT", "taking events", func() error {
		ended, cancel := context.WithCancel(ctx)
		cancel() // one look, no wait
		_, err := s.Unevaluated(ended, 10)
		return err
	})
	taken := takeNow(t, s)
	if !slices.Equal(eventIDs(taken), []string{ev.ID}) {
		t.Fatalf("the next take got %v, want %s", eventIDs(taken), ev.ID)
	}

	timer := store.StateChange{Key: "t/1", Value: []byte("v"), Expires: base.Add(time.Hour), Due: base}
	if err := s.Commit(ctx, []*store.Evaluation{withJob(taken[0], "x"), {State: []store.StateChange{timer}}}); err != nil {
		t.Fatal(err)
	}
	lose("COMMIT", "taking due timers", func() error {
		_, _, err := s.DueTimers(ctx, base, 10)
		return err
	})
	if due, _, err := s.DueTimers(ctx, base, 10); err != nil || len(due) != 1 || due[0].Key != "t/1" {
		t.Errorf("the next take of due timers: %v, %v; want t/1", due, err)
	}

	claim := store.Claim{Owner: "runner", Now: base, Lease: time.Hour, Other: 10}
	lose("COMMIT", "claiming jobs", func() error {
		_, _, err := s.ClaimJobs(ctx, claim)
		return err
	})
	claim.Now = base.Add(time.Second)
	got, _, err := s.ClaimJobs(ctx, claim)
	if err != nil || len(got) != 1 {
		t.Fatalf("the next claim got %d jobs, %v; want the job the lost claim leased", len(got), err)
	}

	j := got[0].Job
	j.State = store.Delivered
	lose("UPDATE", "finishing the job", func() error { return s.Finish(ctx, "runner", j) })
	if err := s.Finish(ctx, "runner", j); err != nil {
		t.Errorf("finish tried again: %v, want it done", err)
	}
	if st, err := s.Stats(ctx); err != nil || st.Pending != 0 {
		t.Errorf("stats %+v, %v; want no job pending", st, err)
	}
}
