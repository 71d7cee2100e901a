package engine

import (
	"sync"
	"time"

	"github.com/livehook/livehook/engine/store"
)

// matchCounts counts each rule's matches in this process, for the rules
// page: since the rules in force were loaded, and over the last hour by
// the minute. Counted when an evaluation is committed, so a batch tried
// again after a conflict counts once.
type matchCounts struct {
	mu    sync.Mutex
	since time.Time // when the rules in force were loaded
	rules map[string]*ruleMatches
}

type ruleMatches struct {
	sinceLoad int
	minutes   [60]minuteCount // by Unix minute modulo 60
}

type minuteCount struct {
	minute int64
	n      int
}

// MatchReport is a rule's recent matches.
type MatchReport struct {
	LastHour  int `json:"last_hour"`
	SinceLoad int `json:"since_load"`
}

func newMatchCounts() *matchCounts { return &matchCounts{rules: map[string]*ruleMatches{}} }

// loaded starts the counts since load again; the hour's minutes stay, by
// rule name.
func (c *matchCounts) loaded(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.since = at
	for _, r := range c.rules {
		r.sinceLoad = 0
	}
}

// add counts the matches of committed evaluations, at now.
func (c *matchCounts) add(evals []*store.Evaluation, now time.Time) {
	minute := now.Unix() / 60
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evals {
		for _, name := range ev.Matched {
			r := c.rules[name]
			if r == nil {
				r = &ruleMatches{}
				c.rules[name] = r
			}
			r.sinceLoad++
			m := &r.minutes[minute%60]
			if m.minute != minute {
				*m = minuteCount{minute: minute}
			}
			m.n++
		}
	}
}

// report reads a rule's counts at now.
func (c *matchCounts) report(name string, now time.Time) MatchReport {
	minute := now.Unix() / 60
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rules[name]
	if r == nil {
		return MatchReport{}
	}
	rep := MatchReport{SinceLoad: r.sinceLoad}
	for _, m := range r.minutes {
		if m.minute > minute-60 && m.minute <= minute {
			rep.LastHour += m.n
		}
	}
	return rep
}

// sinceLoad is when the counts since load began.
func (c *matchCounts) sinceLoadAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.since
}
