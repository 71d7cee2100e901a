package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// The event listing: every filter, alone and combined, paging by cursor
// under a filter, outcomes as jobs move, duplicates counted on the
// original.

// list pages through the events f selects, limit at a time, and returns
// their streams, newest first.
func list(t *testing.T, s store.Store, f store.EventFilter, limit int) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("%+v: paging does not end", f)
		}
		f.Limit = limit
		page, err := s.Events(ctx(t), f)
		if err != nil {
			t.Fatalf("Events(%+v): %v", f, err)
		}
		for i, r := range page {
			if seen[r.Event.ID] {
				t.Fatalf("%+v: event %s (%s) listed twice", f, r.Event.ID, r.Event.Stream)
			}
			if i > 0 && r.Event.ID >= page[i-1].Event.ID {
				t.Fatalf("%+v: not newest first: %s after %s", f, r.Event.ID, page[i-1].Event.ID)
			}
			seen[r.Event.ID] = true
			out = append(out, r.Event.Stream)
		}
		if len(page) < limit {
			return out
		}
		f.Before = page[len(page)-1].Event.ID
	}
}

// fixtureEvent is one event of the listing's fixture.
type fixtureEvent struct {
	stream, source, kind string
	at                   time.Duration // after base
	rules                []string      // matched, each with one job
}

func testEventFilters(t *testing.T, open Opener) {
	s, _ := open(t)
	// Across several hours, so that paging crosses time slots; streams
	// that share prefixes; sources, kinds and rules mixed.
	var fx []fixtureEvent
	for i := range 60 {
		f := fixtureEvent{stream: fmt.Sprintf("room%d", i%7), source: event.SourceRecord, kind: event.KindFile,
			at: time.Duration(i) * 7 * time.Minute}
		if i%7 == 3 {
			f.stream = fmt.Sprintf("room3-%d", i) // shares the prefix room3
		}
		if i%5 == 0 {
			f.source, f.kind = "generic", event.KindEvent
		}
		if i%3 == 0 {
			f.rules = []string{"notify"}
		}
		if i%4 == 0 {
			f.rules = append(f.rules, "archive")
		}
		fx = append(fx, f)
	}
	// Accepted out of time order: the listing is by id, whatever the
	// order they came in.
	byID := map[string]fixtureEvent{}
	var order []int
	for i := range fx {
		order = append(order, (i+30)%len(fx))
	}
	for _, i := range order {
		f := fx[i]
		ev := newEvent(base.Add(f.at), f.stream)
		ev.Source, ev.Kind = f.source, f.kind
		byID[ev.ID] = f
		accept(t, s, ev, "", 0)
	}
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		f := byID[ev.ID]
		e := &store.Evaluation{Matched: f.rules}
		for _, r := range f.rules {
			e.Jobs = append(e.Jobs, newJob(ev, r, 0, "x", base))
		}
		return e
	})
	want := func(keep func(f fixtureEvent) bool) []string {
		out := []string{}
		for i := len(fx) - 1; i >= 0; i-- {
			if keep(fx[i]) {
				out = append(out, fx[i].stream)
			}
		}
		return out
	}
	prefix := func(p string) func(f fixtureEvent) bool {
		return func(f fixtureEvent) bool { return len(f.stream) >= len(p) && f.stream[:len(p)] == p }
	}
	and := func(a, b func(fixtureEvent) bool) func(fixtureEvent) bool {
		return func(f fixtureEvent) bool { return a(f) && b(f) }
	}
	matched := func(r string) func(fixtureEvent) bool {
		return func(f fixtureEvent) bool { return slices.Contains(f.rules, r) }
	}
	from, to := base.Add(100*time.Minute), base.Add(300*time.Minute)
	inRange := func(f fixtureEvent) bool { return f.at >= 100*time.Minute && f.at < 300*time.Minute }
	pending := func(f fixtureEvent) bool { return len(f.rules) > 0 }
	for _, tc := range []struct {
		name string
		f    store.EventFilter
		keep func(fixtureEvent) bool
	}{
		{"everything", store.EventFilter{}, func(fixtureEvent) bool { return true }},
		{"stream prefix room3", store.EventFilter{Stream: "room3"}, prefix("room3")},
		{"stream prefix room3-", store.EventFilter{Stream: "room3-"}, prefix("room3-")},
		{"exact stream room1", store.EventFilter{Stream: "room1"}, prefix("room1")},
		{"no such stream", store.EventFilter{Stream: "hall"}, prefix("hall")},
		{"source", store.EventFilter{Source: "generic"}, func(f fixtureEvent) bool { return f.source == "generic" }},
		{"kind", store.EventFilter{Kind: event.KindFile}, func(f fixtureEvent) bool { return f.kind == event.KindFile }},
		{"rule", store.EventFilter{Rule: "archive"}, matched("archive")},
		{"outcome pending", store.EventFilter{Outcome: store.OutcomePending}, pending},
		{"outcome none", store.EventFilter{Outcome: store.OutcomeNone}, func(f fixtureEvent) bool { return len(f.rules) == 0 }},
		{"outcome delivered", store.EventFilter{Outcome: store.OutcomeDelivered}, func(fixtureEvent) bool { return false }},
		{"time range", store.EventFilter{From: from, To: to}, inRange},
		{"from only", store.EventFilter{From: from}, func(f fixtureEvent) bool { return f.at >= 100*time.Minute }},
		{"to only", store.EventFilter{To: to}, func(f fixtureEvent) bool { return f.at < 300*time.Minute }},
		{"prefix and rule", store.EventFilter{Stream: "room", Rule: "notify"}, matched("notify")},
		{"prefix, source and outcome", store.EventFilter{Stream: "room3", Source: event.SourceRecord, Outcome: store.OutcomeNone},
			and(prefix("room3"), func(f fixtureEvent) bool { return f.source == event.SourceRecord && len(f.rules) == 0 })},
		{"everything at once", store.EventFilter{Stream: "room", Source: "generic", Kind: event.KindEvent, Rule: "notify",
			Outcome: store.OutcomePending, From: from, To: to}, and(inRange, func(f fixtureEvent) bool { return f.source == "generic" && matched("notify")(f) })},
	} {
		w := want(tc.keep)
		for _, limit := range []int{1, 4, 100} {
			if got := list(t, s, tc.f, limit); !slices.Equal(got, w) {
				t.Errorf("%s, %d a page:\n got %v\nwant %v", tc.name, limit, got, w)
			}
		}
	}
	// A cursor under a filter continues after it, whatever the cursor's
	// own event is.
	all := list(t, s, store.EventFilter{}, 100)
	if len(all) != len(fx) {
		t.Fatalf("listed %d of %d events", len(all), len(fx))
	}
	recs, err := s.Events(ctx(t), store.EventFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	mid := recs[len(recs)/2]
	got, err := s.Events(ctx(t), store.EventFilter{Limit: 100, Stream: "room3", Before: mid.Event.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.Event.ID >= mid.Event.ID || r.Event.Stream[:5] != "room3" {
			t.Errorf("before %s, prefix room3: got %s (%s)", mid.Event.ID, r.Event.ID, r.Event.Stream)
		}
	}
	if err := (store.EventFilter{Outcome: "lost"}).Check(); err == nil {
		t.Error("an unknown outcome passes the check")
	}
	if err := (store.EventFilter{From: to, To: from}).Check(); err == nil {
		t.Error("a time range that ends before it starts passes the check")
	}
}

func testEventOutcomes(t *testing.T, open Opener) {
	s, reopen := open(t)
	two := newEvent(base, "two-jobs")
	none := newEvent(base.Add(time.Second), "no-match")
	accept(t, s, two, "", 0)
	accept(t, s, none, "", 0)
	evaluate(t, s, func(ev *event.Event) *store.Evaluation {
		if ev.ID != two.ID {
			return &store.Evaluation{}
		}
		return &store.Evaluation{Matched: []string{"a", "b"},
			Jobs: []*store.Job{newJob(ev, "a", 0, "x", base), newJob(ev, "b", 0, "y", base)}}
	})
	check := func(s store.Store, step, outcome string, d store.Deliveries) {
		t.Helper()
		got, err := s.Event(ctx(t), two.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome != outcome || got.Deliveries != d {
			t.Errorf("%s: outcome %q %+v, want %q %+v", step, got.Outcome, got.Deliveries, outcome, d)
		}
		for _, o := range []string{store.OutcomeDead, store.OutcomePending, store.OutcomeDelivered, store.OutcomeNone} {
			listed := list(t, s, store.EventFilter{Outcome: o}, 10)
			if in := slices.Contains(listed, "two-jobs"); in != (o == outcome) {
				t.Errorf("%s: listed under %s: %v", step, o, in)
			}
			if in := slices.Contains(listed, "no-match"); in != (o == store.OutcomeNone) {
				t.Errorf("%s: the event without jobs listed under %s: %v", step, o, in)
			}
		}
		recs, err := s.Events(ctx(t), store.EventFilter{Limit: 10, Stream: "two"})
		if err != nil || len(recs) != 1 || recs[0].Outcome != outcome || recs[0].Deliveries != d {
			t.Errorf("%s: the listing's row: %+v, %v", step, recs, err)
		}
	}
	check(s, "evaluated", store.OutcomePending, store.Deliveries{Pending: 2})
	claimed, _ := claim(t, s, "one", base, nil)
	if len(claimed) != 2 {
		t.Fatalf("claimed %v", claimedIDs(claimed))
	}
	byRule := map[string]*store.Job{}
	for _, c := range claimed {
		byRule[c.Job.Rule] = c.Job
	}
	if err := finish(t, s, "one", byRule["a"], store.Delivered, base); err != nil {
		t.Fatal(err)
	}
	check(s, "one delivered", store.OutcomePending, store.Deliveries{Pending: 1, Delivered: 1})
	if err := finish(t, s, "one", byRule["b"], store.Pending, base); err != nil {
		t.Fatal(err)
	}
	check(s, "one retried", store.OutcomePending, store.Deliveries{Pending: 1, Delivered: 1})
	claimed, _ = claim(t, s, "one", base.Add(time.Hour), nil)
	if len(claimed) != 1 {
		t.Fatalf("claimed again %v", claimedIDs(claimed))
	}
	if err := finish(t, s, "one", claimed[0].Job, store.Dead, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(s, "one dead", store.OutcomeDead, store.Deliveries{Delivered: 1, Dead: 1})
	closeStore(t, s)
	s = reopen()
	check(s, "reopened", store.OutcomeDead, store.Deliveries{Delivered: 1, Dead: 1})
	j, err := s.ReplayJob(ctx(t), byRule["b"].ID, base.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	check(s, "dead letter replayed", store.OutcomePending, store.Deliveries{Pending: 1, Delivered: 1})
	claimed, _ = claim(t, s, "two", base.Add(2*time.Hour), nil)
	if len(claimed) != 1 || claimed[0].Job.ID != j.ID {
		t.Fatalf("claimed the replay: %v", claimedIDs(claimed))
	}
	if err := finish(t, s, "two", claimed[0].Job, store.Delivered, base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(s, "replay delivered", store.OutcomeDelivered, store.Deliveries{Delivered: 2})
	_, err = s.ReplayEvent(ctx(t), two.ID, func(ev *event.Event, n int) ([]*store.Job, error) {
		j := newJob(ev, "a", 0, "x", base.Add(3*time.Hour))
		j.ID = store.JobID(ev.ID, "a", 0, n)
		return []*store.Job{j}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(s, "event replayed", store.OutcomePending, store.Deliveries{Pending: 1, Delivered: 2})
	if n, err := s.Prune(ctx(t), base.Add(time.Minute), base.Add(48*time.Hour)); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want the event without jobs pruned", n, err)
	}
	if got := list(t, s, store.EventFilter{Outcome: store.OutcomeNone}, 10); len(got) != 0 {
		t.Errorf("a pruned event is still listed: %v", got)
	}
	if got := list(t, s, store.EventFilter{Stream: "no-"}, 10); len(got) != 0 {
		t.Errorf("a pruned event is still listed by stream: %v", got)
	}
}

func testDuplicatesCounted(t *testing.T, open Opener) {
	s, reopen := open(t)
	ev := newEvent(base, "room1")
	accept(t, s, ev, "k1", time.Hour)
	// A retry while the first copy waits for evaluation, and two after.
	retry := func(at time.Time) {
		t.Helper()
		dup := newEvent(at, "room1")
		if got := accept(t, s, dup, "k1", time.Hour); !got.Duplicate || got.ID != ev.ID {
			t.Fatalf("the retry at %s: %+v, want a duplicate of %s", at, got, ev.ID)
		}
	}
	retry(base.Add(time.Second))
	other := newEvent(base.Add(2*time.Second), "room2")
	accept(t, s, other, "k2", time.Hour)
	evaluate(t, s, func(*event.Event) *store.Evaluation { return &store.Evaluation{} })
	retry(base.Add(3 * time.Second))
	last := base.Add(4 * time.Second)
	retry(last)
	check := func(s store.Store, step string) {
		t.Helper()
		d, err := s.Event(ctx(t), ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Duplicates != 3 || !d.LastDuplicate.Equal(last) {
			t.Errorf("%s: %d duplicates, the last at %s; want 3, at %s", step, d.Duplicates, d.LastDuplicate, last)
		}
		if got := list(t, s, store.EventFilter{}, 10); !slices.Equal(got, []string{"room2", "room1"}) {
			t.Errorf("%s: the retries are rows of their own: %v", step, got)
		}
		recs, err := s.Events(ctx(t), store.EventFilter{Limit: 10, Outcome: store.OutcomeDuplicate})
		if err != nil || len(recs) != 1 || recs[0].Event.ID != ev.ID || recs[0].Duplicates != 3 {
			t.Errorf("%s: events with duplicates: %+v, %v", step, recs, err)
		}
		if o, err := s.Event(ctx(t), other.ID); err != nil || o.Duplicates != 0 || !o.LastDuplicate.IsZero() {
			t.Errorf("%s: an event never retried shows duplicates: %+v, %v", step, o, err)
		}
	}
	check(s, "after the retries")
	closeStore(t, s)
	s = reopen()
	check(s, "reopened")
}
