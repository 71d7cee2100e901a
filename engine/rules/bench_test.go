package rules_test

import (
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/rules/rulestest"
)

// BenchmarkMatch1000 matches callbacks against 1,000 rules shaped like a
// real deployment's (see rulestest.Mixed), through the index and, in the
// same iterations, evaluating every rule. Target: at most 25 µs/event.
func BenchmarkMatch1000(b *testing.B) { benchmarkMatch(b, 1000) }

func benchmarkMatch(b *testing.B, n int) {
	set, err := rules.Load(writeRules(b, rulestest.Mixed(n)), options(nil, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer set.Retire()
	every := rules.Unindexed(set)
	evs := rulestest.Events(512)
	var m rules.Matcher
	matched, candidates := 0, 0
	for _, ev := range evs {
		got, _ := m.Match(set, ev)
		want, _ := m.Match(every, ev)
		if len(got) != len(want) {
			b.Fatalf("event %s: %d rules matched through the index, %d evaluating every rule", ev.ID, len(got), len(want))
		}
		matched += len(got)
		candidates += rules.Candidates(set, ev)
	}
	var indexed, all time.Duration
	rounds := 0
	for b.Loop() {
		t0 := time.Now()
		matchAll(&m, set, evs)
		t1 := time.Now()
		matchAll(&m, every, evs)
		indexed += t1.Sub(t0)
		all += time.Since(t1)
		rounds++
	}
	perEvent := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(rounds*len(evs)) }
	b.ReportMetric(perEvent(indexed), "µs/event")
	b.ReportMetric(perEvent(all), "every_rule_µs/event")
	b.ReportMetric(float64(indexed)/float64(all), "cost_ratio")
	b.ReportMetric(float64(candidates)/float64(len(evs)), "evaluated/event")
	b.ReportMetric(float64(matched)/float64(len(evs)), "matched/event")
}

func matchAll(m *rules.Matcher, s *rules.Set, evs []*event.Event) {
	for _, ev := range evs {
		m.Match(s, ev)
	}
}
