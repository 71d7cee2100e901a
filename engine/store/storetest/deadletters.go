package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// deadFixture makes six dead letters, one per event a minute apart
// (created at base+i minutes): the even ones of action "slack", refused
// ("HTTP 400"), the odd ones of "hook", given up on. It returns their ids,
// oldest first.
func deadFixture(t *testing.T, s store.Store) []string {
	t.Helper()
	for i := range 6 {
		accept(t, s, newEvent(base.Add(time.Duration(i)*time.Minute), "room"), "", 0)
	}
	var i int
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		action := []string{"slack", "hook"}[i%2]
		j := newJob(ev, "r", 0, action, ev.ReceivedAt)
		i++
		return &store.Evaluation{Jobs: []*store.Job{j}}
	})
	claimed, _ := claim(t, s, "one", base.Add(time.Hour), nil)
	if len(claimed) != 6 {
		t.Fatalf("claimed %d jobs, want 6", len(claimed))
	}
	var ids []string
	for _, c := range claimed {
		j := c.Job
		class, detail := "permanent", "HTTP 400"
		if j.Action == "hook" {
			class, detail = "retryable", "gave up after 3 attempts: timeout"
		}
		j.Attempts = append(j.Attempts, store.Attempt{At: base.Add(time.Hour), Outcome: class, Detail: detail})
		j.State, j.LastError = store.Dead, detail
		if err := s.Finish(ctx(t), "one", j); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	return ids
}

// pageDead lists what f selects a page of n at a time, following the
// cursor, and says how many pages it took.
func pageDead(t *testing.T, s store.Store, f store.DeadFilter, n int) (ids []string, pages int) {
	t.Helper()
	f.Limit = n
	for ; pages < 20; pages++ {
		page, err := s.DeadLetters(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return ids, pages
		}
		for _, j := range page {
			if j.State != store.Dead {
				t.Errorf("listed %s, which is %s", j.ID, j.State)
			}
		}
		ids = append(ids, jobIDs(page)...)
		f.Before = page[len(page)-1].ID
	}
	t.Fatalf("paging %+v does not end", f)
	return nil, 0
}

func testDeadLetterFilters(t *testing.T, open Opener) {
	s, _ := open(t)
	ids := deadFixture(t, s)
	newest := slices.Clone(ids)
	slices.Reverse(newest)
	pick := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, ids[i])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.DeadFilter
		want []string // newest first
	}{
		{"all", store.DeadFilter{}, newest},
		{"by action", store.DeadFilter{Action: "hook"}, pick(5, 3, 1)},
		{"by error", store.DeadFilter{Error: "HTTP 400"}, pick(4, 2, 0)},
		{"by action and error", store.DeadFilter{Action: "slack", Error: "gave up after 3 attempts: timeout"}, nil},
		{"created from", store.DeadFilter{From: base.Add(2 * time.Minute)}, pick(5, 4, 3, 2)},
		{"created before", store.DeadFilter{To: base.Add(2 * time.Minute)}, pick(1, 0)},
		{"in a window, by action", store.DeadFilter{Action: "slack", From: base.Add(time.Minute), To: base.Add(5 * time.Minute)}, pick(4, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := pageDead(t, s, tc.f, 2)
			if !slices.Equal(got, tc.want) {
				t.Errorf("paged 2 at a time: %v, want %v", got, tc.want)
			}
			if want := (len(tc.want) + 1) / 2; pages != want {
				t.Errorf("%d pages for %d dead letters, 2 a page", pages, len(tc.want))
			}
		})
	}
	// A cursor from the middle continues there, filters kept.
	page, err := s.DeadLetters(ctx(t), store.DeadFilter{Limit: 10, Action: "hook", Before: ids[4]})
	if err != nil || !slices.Equal(jobIDs(page), pick(3, 1)) {
		t.Errorf("hook's dead letters before %s: %v, %v; want %v", ids[4], jobIDs(page), err, pick(3, 1))
	}
}

func testDeadGroups(t *testing.T, open Opener) {
	s, _ := open(t)
	deadFixture(t, s)
	// One more refusal of hook's, created last: the smaller group is the
	// newest one.
	ev := newEvent(base.Add(10*time.Minute), "late")
	accept(t, s, ev, "", 0)
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		return &store.Evaluation{Jobs: []*store.Job{newJob(ev, "r", 0, "hook", ev.ReceivedAt)}}
	})
	c, _ := claim(t, s, "one", base.Add(time.Hour), nil)
	c[0].Job.LastError = "HTTP 400"
	if err := finish(t, s, "one", c[0].Job, store.Dead, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeadGroups(ctx(t), store.DeadFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DeadGroup{
		{Action: "hook", Class: "retryable", Error: "gave up after 3 attempts: timeout", Count: 3, Newest: base.Add(5 * time.Minute)},
		{Action: "slack", Class: "permanent", Error: "HTTP 400", Count: 3, Newest: base.Add(4 * time.Minute)},
		{Action: "hook", Class: "permanent", Error: "HTTP 400", Count: 1, Newest: base.Add(10 * time.Minute)},
	}
	if !equalGroups(got, want) {
		t.Errorf("DeadGroups = %+v\nwant %+v", got, want)
	}
	got, err = s.DeadGroups(ctx(t), store.DeadFilter{Error: "HTTP 400", To: base.Add(3 * time.Minute)})
	if want := want[1:2]; err != nil || len(got) != 1 || got[0].Count != 2 || !got[0].Newest.Equal(base.Add(2*time.Minute)) || got[0].Action != want[0].Action {
		t.Errorf("groups of refusals created before +3m: %+v, %v; want slack's 2, newest at +2m", got, err)
	}
	// The groups count what a listing with the same filter shows.
	for _, g := range want {
		listed, _ := pageDead(t, s, store.DeadFilter{Action: g.Action, Error: g.Error}, 100)
		if len(listed) != g.Count {
			t.Errorf("group %s/%s counts %d, the listing shows %d", g.Action, g.Error, g.Count, len(listed))
		}
	}
}

func equalGroups(a, b []store.DeadGroup) bool {
	return slices.EqualFunc(a, b, func(x, y store.DeadGroup) bool {
		return x.Action == y.Action && x.Class == y.Class && x.Error == y.Error && x.Count == y.Count && x.Newest.Equal(y.Newest)
	})
}

func testDeleteDeadLetters(t *testing.T, open Opener) {
	s, reopen := open(t)
	ids := deadFixture(t, s)
	// A pending job is not a dead letter: deleting it does nothing.
	ev := newEvent(base.Add(30*time.Minute), "live")
	accept(t, s, ev, "", 0)
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		return &store.Evaluation{Jobs: []*store.Job{newJob(ev, "r", 0, "x", ev.ReceivedAt)}}
	})
	pending := store.JobID(ev.ID, "r", 0, 0)
	first, err := s.Job(ctx(t), ids[0])
	if err != nil {
		t.Fatal(err)
	}

	n, err := s.DeleteDeadLetters(ctx(t), []string{ids[0], ids[3], ids[3], pending, "01JDZ0000000000000000000000.r.0"})
	if err != nil || n != 2 {
		t.Fatalf("DeleteDeadLetters = %d, %v; want the 2 dead letters among the ids", n, err)
	}
	if st := stats(t, s); st.Dead != 4 || st.Pending != 1 {
		t.Errorf("Stats after deleting 2 of 6 dead letters: %+v, want 4 dead, 1 pending", st)
	}
	if j, err := s.Job(ctx(t), pending); err != nil || j.State != store.Pending {
		t.Errorf("the pending job after a delete named it: %+v, %v", j, err)
	}
	if _, err := s.Job(ctx(t), ids[0]); err == nil {
		t.Errorf("deleted dead letter %s is still there", ids[0])
	}
	// Its event had that one delivery: no longer dead, nothing left to deliver.
	if d, err := s.Event(ctx(t), first.EventID); err != nil || d.Summary.Outcome != store.OutcomeNone || d.Summary.Deliveries.Dead != 0 {
		t.Errorf("the event of a deleted dead letter: %+v, %v; want outcome none, no dead delivery", d, err)
	}
	if got, _ := s.Events(ctx(t), store.EventFilter{Limit: 10, Outcome: store.OutcomeDead}); len(got) != 4 {
		t.Errorf("%d events listed dead after deleting 2 of 6 dead letters, want 4", len(got))
	}
	want := []string{ids[5], ids[4], ids[2], ids[1]}
	if got, _ := pageDead(t, s, store.DeadFilter{}, 3); !slices.Equal(got, want) {
		t.Errorf("dead letters after the delete: %v, want %v", got, want)
	}
	if _, err := s.ReplayJob(ctx(t), ids[3], base.Add(2*time.Hour)); err == nil {
		t.Errorf("a deleted dead letter was replayed")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen()
	defer s.Close()
	if got, _ := pageDead(t, s, store.DeadFilter{}, 10); !slices.Equal(got, want) {
		t.Errorf("dead letters after reopening: %v, want %v", got, want)
	}
	if st := stats(t, s); st.Dead != 4 {
		t.Errorf("Stats after reopening: %+v, want 4 dead", st)
	}
	if n, err := s.DeleteDeadLetters(ctx(t), want); err != nil || n != 4 || stats(t, s).Dead != 0 {
		t.Errorf("deleting the rest: %d, %v, %+v", n, err, stats(t, s))
	}
}

func testOldestPending(t *testing.T, open Opener) {
	s, _ := open(t)
	if j, err := s.OldestPending(ctx(t)); err != nil || j != nil {
		t.Fatalf("OldestPending of an empty store = %v, %v; want none", j, err)
	}
	// Created out of id order: the oldest is the second event's job.
	created := []time.Duration{20 * time.Minute, 5 * time.Minute, 10 * time.Minute}
	var events []*event.Event
	for i := range created {
		ev := newEvent(base.Add(time.Duration(i)*time.Second), "room")
		events = append(events, ev)
		accept(t, s, ev, "", 0)
	}
	i := 0
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		j := newJob(ev, "r", 0, "x", base.Add(created[i]))
		i++
		return &store.Evaluation{Jobs: []*store.Job{j}}
	})
	j, err := s.OldestPending(ctx(t))
	if err != nil || j == nil || j.ID != store.JobID(events[1].ID, "r", 0, 0) || !j.Created.Equal(base.Add(5*time.Minute)) {
		t.Fatalf("OldestPending = %+v, %v; want the job created at +5m", j, err)
	}
	// Delivered, it is pending no more.
	claimed, _ := claim(t, s, "one", base.Add(time.Hour), nil)
	for _, c := range claimed {
		if c.Job.ID == j.ID {
			if err := finish(t, s, "one", c.Job, store.Delivered, base.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if j, err := s.OldestPending(ctx(t)); err != nil || j == nil || !j.Created.Equal(base.Add(10*time.Minute)) {
		t.Errorf("OldestPending after the oldest was delivered = %+v, %v; want the job created at +10m", j, err)
	}
}
