package engine

import (
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
)

func TestMatchCounts(t *testing.T) {
	c := newMatchCounts()
	t0 := time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC)
	c.loaded(t0)
	matched := func(names ...string) []*store.Evaluation {
		return []*store.Evaluation{{EventID: "e", Matched: names}, {Matched: nil}}
	}
	c.add(matched("a", "b"), t0)
	c.add(matched("a"), t0.Add(30*time.Minute))
	c.add(matched("a"), t0.Add(59*time.Minute))
	check := func(at time.Time, name string, want MatchReport) {
		t.Helper()
		if got := c.report(name, at); got != want {
			t.Errorf("%s at +%v: %+v, want %+v", name, at.Sub(t0), got, want)
		}
	}
	check(t0.Add(59*time.Minute), "a", MatchReport{LastHour: 3, SinceLoad: 3})
	check(t0.Add(59*time.Minute), "b", MatchReport{LastHour: 1, SinceLoad: 1})
	check(t0.Add(60*time.Minute), "a", MatchReport{LastHour: 2, SinceLoad: 3}) // the first minute has left the hour
	check(t0.Add(3*time.Hour), "a", MatchReport{SinceLoad: 3})
	check(t0, "nosuch", MatchReport{})
	// A minute's slot an hour later holds only the new minute.
	c.add(matched("b"), t0.Add(2*time.Hour))
	check(t0.Add(2*time.Hour), "b", MatchReport{LastHour: 1, SinceLoad: 2})
	// A load starts since-load again and keeps the hour.
	c.loaded(t0.Add(2 * time.Hour))
	check(t0.Add(2*time.Hour), "b", MatchReport{LastHour: 1})
	if got := c.sinceLoadAt(); !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("since load: %v", got)
	}
}
