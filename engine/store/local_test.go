package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// base is the time test events are stamped around.
var base = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string) *store.Local {
	t.Helper()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // Close is idempotent: tests may close earlier
	return s
}

// eventAt returns an event whose ULID id carries time at, as intake's ids do.
func eventAt(at time.Time, source string) *event.Event {
	return &event.Event{
		ID: ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(), Source: source,
		Kind: event.KindStatus, Domain: "d", App: "live", Stream: "room", ReceivedAt: at,
	}
}

func record(ev *event.Event, matched ...string) *store.EventRecord {
	return &store.EventRecord{Event: ev, Matched: append([]string{}, matched...)}
}

func job(eventID, rule string, step int, state string) *store.Job {
	return &store.Job{
		ID: fmt.Sprintf("%s.%s.%d", eventID, rule, step), EventID: eventID, Rule: rule, Step: step,
		Action: "a", Type: "log", State: state, Created: base, Attempts: []store.Attempt{},
	}
}

// unapplied lists the events Unapplied hands over for evaluation, leaving
// out those it marks as already stored.
func unapplied(t *testing.T, s store.Store) (ids []string, seqs []uint64, applied uint64) {
	t.Helper()
	applied, err := s.Unapplied(func(a *store.Accepted) error {
		if !a.Stored {
			ids, seqs = append(ids, a.Event.ID), append(seqs, a.Seq)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Unapplied: %v", err)
	}
	return ids, seqs, applied
}

func jobIDs(jobs []*store.Job) []string {
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func eventIDs(recs []*store.EventRecord) []string {
	ids := []string{}
	for _, r := range recs {
		ids = append(ids, r.Event.ID)
	}
	return ids
}

func TestAppendApplyAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a1 := &store.Accepted{Event: eventAt(base, "record"), DedupeKey: "k1", DedupeTTL: time.Hour}
	a2 := &store.Accepted{Event: eventAt(base.Add(time.Second), "record")}
	for _, a := range []*store.Accepted{a1, a2} {
		if err := s.Append(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if a1.Seq != 1 || a2.Seq != 2 {
		t.Fatalf("Append set seqs %d, %d: want 1, 2", a1.Seq, a2.Seq)
	}

	ids, seqs, applied := unapplied(t, s)
	if !slices.Equal(ids, []string{a1.Event.ID, a2.Event.ID}) || !slices.Equal(seqs, []uint64{1, 2}) || applied != 0 {
		t.Fatalf("before Apply: Unapplied gave %v seqs %v applied %d; want both events in order, seqs 1 2, applied 0", ids, seqs, applied)
	}

	j := job(a1.Event.ID, "r", 0, store.Pending)
	dd := map[string]store.DedupeEntry{"k1": {ID: a1.Event.ID, Expires: base.Add(time.Hour)}}
	// The first record comes with its journal bytes, as the ingester passes
	// them; the second is encoded from its fields.
	r1 := record(a1.Event, "r")
	r1.DedupeKey, r1.Throttled, r1.Errors, r1.Encoded = a1.DedupeKey, []string{"t"}, []string{"boom"}, a1.Encoded
	if err := s.Apply([]*store.EventRecord{r1, record(a2.Event)}, []*store.Job{j}, dd, a2.Seq); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if ids, _, applied := unapplied(t, s); len(ids) != 0 || applied != a2.Seq {
			t.Errorf("%s: Unapplied gave %v applied %d; want nothing, applied %d", when, ids, applied, a2.Seq)
		}
		rec, jobs, err := s.Event(a1.Event.ID)
		if err != nil || rec.Event.ID != a1.Event.ID || rec.Event.Stream != "room" || rec.DedupeKey != "k1" ||
			!slices.Equal(rec.Matched, []string{"r"}) || !slices.Equal(rec.Throttled, []string{"t"}) ||
			!slices.Equal(rec.Errors, []string{"boom"}) || !slices.Equal(jobIDs(jobs), []string{j.ID}) {
			t.Errorf("%s: Event = %+v, jobs %v, %v", when, rec, jobIDs(jobs), err)
		}
		if rec, _, err := s.Event(a2.Event.ID); err != nil || rec.Event.ID != a2.Event.ID || rec.Matched == nil {
			t.Errorf("%s: second Event = %+v, %v", when, rec, err)
		}
		if pending, err := s.PendingJobs(); err != nil || !slices.Equal(jobIDs(pending), []string{j.ID}) {
			t.Errorf("%s: PendingJobs = %v, %v; want [%s]", when, jobIDs(pending), err, j.ID)
		}
		if d, err := s.Dedupe(base); err != nil || d["k1"].ID != a1.Event.ID || len(d) != 1 {
			t.Errorf("%s: Dedupe = %v, %v; want k1 → %s", when, d, err, a1.Event.ID)
		}
	}
	check("after Apply")

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	check("after reopen")
	a3 := &store.Accepted{Event: eventAt(base.Add(2*time.Second), "record")}
	if err := s.Append(context.Background(), a3); err != nil {
		t.Fatal(err)
	}
	if a3.Seq != 3 {
		t.Errorf("first Append after reopen got seq %d, want 3: seqs keep increasing across restarts", a3.Seq)
	}
}

func TestAcceptedEventsSurviveReopenBeforeApply(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	a := &store.Accepted{Event: eventAt(base, "record"), DedupeKey: "k", DedupeTTL: time.Minute}
	if err := s.Append(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // a crash before the ingester ran
		t.Fatal(err)
	}
	s = open(t, dir)
	var got []*store.Accepted
	applied, err := s.Unapplied(func(a *store.Accepted) error { got = append(got, a); return nil })
	if err != nil || applied != 0 || len(got) != 1 {
		t.Fatalf("Unapplied after reopen: %d events, applied %d, %v; want the one event, applied 0", len(got), applied, err)
	}
	if g := got[0]; g.Seq != 1 || g.Event.ID != a.Event.ID || g.DedupeKey != "k" || g.DedupeTTL != time.Minute || !g.Event.ReceivedAt.Equal(base) {
		t.Errorf("recovered %+v (event %+v), want what was appended", g, g.Event)
	}
}

func TestUnappliedSkipsEventsAppliedAheadOfTheWatermark(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	first := &store.Accepted{Event: eventAt(base, "record")}
	second := &store.Accepted{Event: eventAt(base.Add(time.Second), "record")}
	for _, a := range []*store.Accepted{first, second} {
		if err := s.Append(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	// The second reached the ingester first: it is in the db, but the
	// applied position cannot pass the first.
	if err := s.Apply([]*store.EventRecord{record(second.Event)}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"open", "reopened"} {
		if when == "reopened" {
			s.Close()
			s = open(t, dir)
		}
		ids, seqs, applied := unapplied(t, s)
		if !slices.Equal(ids, []string{first.Event.ID}) || !slices.Equal(seqs, []uint64{1}) || applied != 0 {
			t.Errorf("%s: Unapplied gave %v seqs %v applied %d; want only the first event (seq 1), applied 0", when, ids, seqs, applied)
		}
	}
}

func TestJobStatesKeepPendingAndDeadIndexes(t *testing.T) {
	s := open(t, t.TempDir())
	var evs []*event.Event
	for i := range 4 {
		evs = append(evs, eventAt(base.Add(time.Duration(i)*time.Minute), "record"))
	}
	j1 := job(evs[0].ID, "r", 0, store.Pending)
	j2 := job(evs[1].ID, "r", 0, store.Pending)
	j3 := job(evs[2].ID, "r", 0, store.Delivered)
	j4 := job(evs[3].ID, "r", 0, store.Dead)
	recs := []*store.EventRecord{record(evs[0], "r"), record(evs[1], "r"), record(evs[2], "r"), record(evs[3], "r")}
	if err := s.Apply(recs, []*store.Job{j1, j2, j3, j4}, nil, 0); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name        string
		job         *store.Job
		state       string
		wantPending []string
		wantDead    []string // newest first
	}{
		{name: "as applied", wantPending: []string{j1.ID, j2.ID}, wantDead: []string{j4.ID}},
		{name: "pending to delivered", job: j2, state: store.Delivered, wantPending: []string{j1.ID}, wantDead: []string{j4.ID}},
		{name: "pending to dead", job: j1, state: store.Dead, wantPending: []string{}, wantDead: []string{j4.ID, j1.ID}},
		{name: "dead letter replayed", job: j1, state: store.Pending, wantPending: []string{j1.ID}, wantDead: []string{j4.ID}},
		{name: "retry stays pending", job: j1, state: store.Pending, wantPending: []string{j1.ID}, wantDead: []string{j4.ID}},
		{name: "replay fails again", job: j1, state: store.Dead, wantPending: []string{}, wantDead: []string{j4.ID, j1.ID}},
		{name: "older dead letter replayed and delivered", job: j1, state: store.Delivered, wantPending: []string{}, wantDead: []string{j4.ID}},
		{name: "newest dead letter replayed", job: j4, state: store.Pending, wantPending: []string{j4.ID}, wantDead: []string{}},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			if tc.job != nil {
				tc.job.State = tc.state
				tc.job.Attempts = append(tc.job.Attempts, store.Attempt{At: base, Outcome: "retryable"})
				if err := s.PutJobs(tc.job); err != nil {
					t.Fatal(err)
				}
				got, err := s.Job(tc.job.ID)
				if err != nil || got.State != tc.state || len(got.Attempts) != len(tc.job.Attempts) {
					t.Errorf("Job(%s) = %+v, %v; want state %s with %d attempts", tc.job.ID, got, err, tc.state, len(tc.job.Attempts))
				}
			}
			pending, err := s.PendingJobs()
			if err != nil {
				t.Fatal(err)
			}
			if got := jobIDs(pending); !slices.Equal(got, tc.wantPending) {
				t.Errorf("PendingJobs = %v, want %v", got, tc.wantPending)
			}
			dead, err := s.DeadLetters(10)
			if err != nil {
				t.Fatal(err)
			}
			if got := jobIDs(dead); !slices.Equal(got, tc.wantDead) {
				t.Errorf("DeadLetters(10) = %v, want %v", got, tc.wantDead)
			}
			if n, err := s.DeadCount(); err != nil || n != len(tc.wantDead) {
				t.Errorf("DeadCount() = %d, %v; want %d", n, err, len(tc.wantDead))
			}
			for _, d := range dead {
				if d.State != store.Dead {
					t.Errorf("dead letter %s has state %s", d.ID, d.State)
				}
			}
			limited, err := s.DeadLetters(1)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := jobIDs(limited), tc.wantDead[:min(1, len(tc.wantDead))]; !slices.Equal(got, want) {
				t.Errorf("DeadLetters(1) = %v, want %v", got, want)
			}
		})
	}
}

func TestEventAndJobLookups(t *testing.T) {
	s := open(t, t.TempDir())
	// "evt1." is a prefix-like shape of "evt10.": its jobs must not bleed.
	short := &event.Event{ID: "evt1", Source: "record"}
	long := &event.Event{ID: "evt10", Source: "record"}
	shortJobs := []*store.Job{job("evt1", "a", 0, store.Delivered), job("evt1", "a", 1, store.Pending), job("evt1", "b", 0, store.Dead)}
	replay := job("evt1", "a", 0, store.Pending)
	replay.ID += ".r1"
	shortJobs = append(shortJobs, replay)
	longJob := job("evt10", "a", 0, store.Pending)
	if err := s.Apply([]*store.EventRecord{record(short, "a", "b"), record(long, "a")}, append(slices.Clone(shortJobs), longJob), nil, 0); err != nil {
		t.Fatal(err)
	}

	events := []struct {
		name     string
		id       string
		wantJobs []string // sorted
	}{
		{name: "event with replayed jobs", id: "evt1", wantJobs: []string{"evt1.a.0", "evt1.a.0.r1", "evt1.a.1", "evt1.b.0"}},
		{name: "event whose id extends another", id: "evt10", wantJobs: []string{"evt10.a.0"}},
		{name: "prefix of an event id", id: "evt"},
		{name: "job id prefix", id: "evt1.a"},
		{name: "unknown", id: "01JDZ0000000000000000000000"},
	}
	for _, tc := range events {
		t.Run("Event/"+tc.name, func(t *testing.T) {
			rec, jobs, err := s.Event(tc.id)
			if tc.wantJobs == nil {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Event(%q) = %v, %v, %v; want ErrNotFound", tc.id, rec, jobIDs(jobs), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := jobIDs(jobs)
			slices.Sort(got)
			if rec.Event.ID != tc.id || !slices.Equal(got, tc.wantJobs) {
				t.Errorf("Event(%q) = %s with jobs %v, want jobs %v", tc.id, rec.Event.ID, got, tc.wantJobs)
			}
			for _, j := range jobs {
				if j.EventID != tc.id {
					t.Errorf("Event(%q) returned job %s of event %s", tc.id, j.ID, j.EventID)
				}
			}
		})
	}

	jobs := []struct {
		name      string
		id        string
		wantState string // "" = not found
	}{
		{name: "delivered", id: "evt1.a.0", wantState: store.Delivered},
		{name: "replay", id: "evt1.a.0.r1", wantState: store.Pending},
		{name: "dead", id: "evt1.b.0", wantState: store.Dead},
		{name: "other event", id: "evt10.a.0", wantState: store.Pending},
		{name: "prefix of a job id", id: "evt1.a"},
		{name: "event id", id: "evt1"},
		{name: "unknown", id: "nope.a.0"},
	}
	for _, tc := range jobs {
		t.Run("Job/"+tc.name, func(t *testing.T) {
			j, err := s.Job(tc.id)
			if tc.wantState == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Job(%q) = %+v, %v; want ErrNotFound", tc.id, j, err)
				}
				return
			}
			if err != nil || j.ID != tc.id || j.State != tc.wantState {
				t.Errorf("Job(%q) = %+v, %v; want state %s", tc.id, j, err, tc.wantState)
			}
		})
	}
}

func TestEventsFilter(t *testing.T) {
	s := open(t, t.TempDir())
	e1 := record(eventAt(base, "record"), "a")
	e2 := record(eventAt(base.Add(time.Minute), "github"), "b")
	e3 := record(eventAt(base.Add(2*time.Minute), "record"), "a", "b")
	e4 := record(eventAt(base.Add(3*time.Minute), "record"))
	// Applied out of order: listing order comes from the ids' time.
	if err := s.Apply([]*store.EventRecord{e3, e1, e4, e2}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	id := func(r *store.EventRecord) string { return r.Event.ID }
	tests := []struct {
		name   string
		filter store.EventFilter
		want   []*store.EventRecord
	}{
		{name: "all, newest first", filter: store.EventFilter{Limit: 10}, want: []*store.EventRecord{e4, e3, e2, e1}},
		{name: "limit", filter: store.EventFilter{Limit: 2}, want: []*store.EventRecord{e4, e3}},
		{name: "source", filter: store.EventFilter{Limit: 10, Source: "record"}, want: []*store.EventRecord{e4, e3, e1}},
		{name: "rule", filter: store.EventFilter{Limit: 10, Rule: "b"}, want: []*store.EventRecord{e3, e2}},
		{name: "source and rule", filter: store.EventFilter{Limit: 10, Source: "record", Rule: "b"}, want: []*store.EventRecord{e3}},
		{name: "rule with limit", filter: store.EventFilter{Limit: 1, Rule: "a"}, want: []*store.EventRecord{e3}},
		{name: "unknown source", filter: store.EventFilter{Limit: 10, Source: "gitlab"}, want: nil},
		{name: "unknown rule", filter: store.EventFilter{Limit: 10, Rule: "c"}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Events(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			for _, r := range tc.want {
				want = append(want, id(r))
			}
			if !slices.Equal(eventIDs(got), want) {
				t.Errorf("Events(%+v) = %v, want %v", tc.filter, eventIDs(got), want)
			}
		})
	}
}

func TestPruneDeletesOnlyFinishedOldEvents(t *testing.T) {
	s := open(t, t.TempDir())
	now := base
	cutoff := now.Add(-time.Hour)
	type fixture struct {
		name       string
		at         time.Time
		jobStates  []string
		wantPruned bool
	}
	fixtures := []fixture{
		{name: "old, all delivered", at: now.Add(-3 * time.Hour), jobStates: []string{store.Delivered, store.Delivered}, wantPruned: true},
		{name: "old, no rule matched", at: now.Add(-2 * time.Hour), wantPruned: true},
		{name: "old, one still pending", at: now.Add(-100 * time.Minute), jobStates: []string{store.Delivered, store.Pending}},
		{name: "old, a dead letter", at: now.Add(-90 * time.Minute), jobStates: []string{store.Dead}},
		{name: "old, replayed and pending", at: now.Add(-80 * time.Minute), jobStates: []string{store.Delivered, store.Pending}},
		{name: "exactly at the cutoff, delivered", at: cutoff, jobStates: []string{store.Delivered}, wantPruned: true},
		{name: "newer than the cutoff, delivered", at: now.Add(-30 * time.Minute), jobStates: []string{store.Delivered}},
	}
	var recs []*store.EventRecord
	var jobs []*store.Job
	jobsOf := map[string][]*store.Job{}
	for _, f := range fixtures {
		ev := eventAt(f.at, "record")
		recs = append(recs, record(ev, "r"))
		for i, st := range f.jobStates {
			j := job(ev.ID, "r", i, st)
			jobs = append(jobs, j)
			jobsOf[f.name] = append(jobsOf[f.name], j)
		}
		if f.name == "old, replayed and pending" {
			jobsOf[f.name][1].ID = jobsOf[f.name][0].ID + ".r1"
		}
	}
	dedupe := map[string]store.DedupeEntry{
		"expired":          {ID: "x", Expires: now.Add(-time.Second)},
		"expires now":      {ID: "y", Expires: now},
		"live":             {ID: "z", Expires: now.Add(time.Minute)},
		"a day from now":   {ID: "w", Expires: now.Add(24 * time.Hour)},
		"expired long ago": {ID: "v", Expires: now.Add(-48 * time.Hour)},
	}
	if err := s.Apply(recs, jobs, dedupe, 0); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(cutoff, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("Prune = %d, want 3", n)
	}
	for i, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			id := recs[i].Event.ID
			_, got, err := s.Event(id)
			switch {
			case f.wantPruned && !errors.Is(err, store.ErrNotFound):
				t.Errorf("event kept (%v), want it pruned", err)
			case !f.wantPruned && err != nil:
				t.Errorf("event pruned (%v), want it kept", err)
			case !f.wantPruned && len(got) != len(jobsOf[f.name]):
				t.Errorf("event kept with %d jobs, want %d", len(got), len(jobsOf[f.name]))
			}
			for _, j := range jobsOf[f.name] {
				if _, err := s.Job(j.ID); f.wantPruned != errors.Is(err, store.ErrNotFound) {
					t.Errorf("job %s: Job() err = %v, want pruned = %v", j.ID, err, f.wantPruned)
				}
			}
		})
	}
	// Read as of long ago, so only deletion (not expiry) hides an entry.
	left, err := s.Dedupe(now.Add(-72 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range left {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"a day from now", "live"}; !slices.Equal(keys, want) {
		t.Errorf("dedupe entries after Prune: %q, want %q", keys, want)
	}
	pending, _ := s.PendingJobs()
	dead, _ := s.DeadLetters(10)
	if len(pending) != 2 || len(dead) != 1 {
		t.Errorf("after Prune: %d pending, %d dead; want 2 and 1 (kept events keep their work)", len(pending), len(dead))
	}
}

// A key seen again after its first window ended (a new file with the same
// name a day later) is stored twice; the later identity is the one in force.
// An expiry past what the key encodes stays in the future.
func TestDedupeKeyRecordedTwiceKeepsTheLaterIdentity(t *testing.T) {
	s := open(t, t.TempDir())
	first, second := eventAt(base, "record"), eventAt(base.Add(2*time.Hour), "record")
	for _, d := range []store.DedupeEntry{
		{ID: second.ID, Expires: base.Add(3 * time.Hour)},
		{ID: first.ID, Expires: base.Add(time.Hour)},
	} {
		if err := s.Apply(nil, nil, map[string]store.DedupeEntry{"k": d}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A window too long for nanoseconds since 1970 is as good as forever.
	forever := store.DedupeEntry{ID: first.ID, Expires: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.Apply(nil, nil, map[string]store.DedupeEntry{"far": forever}, 0); err != nil {
		t.Fatal(err)
	}
	want := store.DedupeEntry{ID: second.ID, Expires: base.Add(3 * time.Hour)}
	d, err := s.Dedupe(base)
	if err != nil || len(d) != 2 || d["k"].ID != want.ID || !d["k"].Expires.Equal(want.Expires) {
		t.Errorf("Dedupe = %v, %v; want k → %v", d, err, want)
	}
	if d["far"].ID != forever.ID || d["far"].Expires.Year() < 2262 {
		t.Errorf("Dedupe = %v; want far → %s, expiring after 2262", d, forever.ID)
	}
}

// Job saves from many goroutines share commits; a save that cannot be
// stored fails alone.
func TestConcurrentJobSaves(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	var want []string
	for i := range n {
		j := job(fmt.Sprintf("ev%02d", i), "r", 0, store.Pending)
		switch i {
		case n / 2:
			j.ID = "" // bbolt refuses an empty key
		case n/2 + 1:
			j = nil // a caller's bug: an error for it, not a crash or a hang
		default:
			want = append(want, j.ID)
		}
		wg.Go(func() { errs[i] = s.PutJobs(j) })
	}
	wg.Wait()
	for i, err := range errs {
		if bad := i == n/2 || i == n/2+1; (err != nil) != bad {
			t.Errorf("save %d: %v; want an error only for the job with no id (%d) and the nil job (%d)", i, err, n/2, n/2+1)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	pending, err := s.PendingJobs()
	if got := jobIDs(pending); err != nil || !slices.Equal(got, want) {
		t.Errorf("after reopen PendingJobs = %v, %v; want the %d saved jobs", got, err, len(want))
	}
}

func TestSizeGrowsWithWrites(t *testing.T) {
	s := open(t, t.TempDir())
	before := s.Size()
	if before <= 0 {
		t.Fatalf("Size of a new store = %d, want > 0", before)
	}
	var recs []*store.EventRecord
	for i := range 50 {
		a := &store.Accepted{Event: eventAt(base.Add(time.Duration(i)*time.Second), "record")}
		a.Event.Payload = map[string]any{"note": strings.Repeat("x", 1000)}
		if err := s.Append(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, record(a.Event))
	}
	afterAppend := s.Size()
	if afterAppend <= before {
		t.Errorf("Size after appending 50 KB = %d, want > %d", afterAppend, before)
	}
	if err := s.Apply(recs, nil, nil, 50); err != nil {
		t.Fatal(err)
	}
	if after := s.Size(); after < afterAppend {
		t.Errorf("Size after applying = %d, want >= %d", after, afterAppend)
	}
}

func TestOpenRefusesADirectoryInUse(t *testing.T) {
	tests := []struct {
		name    string
		hold    func(t *testing.T, dir string) (release func())
		wantErr string
	}{
		{
			name: "another store",
			hold: func(t *testing.T, dir string) func() {
				s := open(t, dir)
				return func() { s.Close() }
			},
			wantErr: "in use by another process",
		},
		{
			name: "only the database held",
			hold: func(t *testing.T, dir string) func() {
				db, err := bolt.Open(filepath.Join(dir, "livehook.db"), 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				return func() { db.Close() }
			},
			wantErr: "livehook.db: timeout",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			release := tc.hold(t, dir)
			done := make(chan error, 1)
			go func() {
				s, err := store.Open(dir, store.Options{})
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("second Open: %v; want an error naming %s and saying %q", err, dir, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("second Open hung")
			}
			// The failed Open must not keep a lock of its own.
			release()
			s, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatalf("Open after the holder closed: %v", err)
			}
			s.Close()
		})
	}
}
