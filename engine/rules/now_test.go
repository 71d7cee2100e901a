package rules_test

import (
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

// now() in a condition is the clock the rules were loaded with, so that a
// rule test on a virtual clock sees its own time.
func TestNowIsTheEnginesClock(t *testing.T) {
	clock := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	o := options(actionapi.Default(), nil)
	o.Deps.Now = func() time.Time { return clock }
	set, err := rules.Load(writeRules(t, `rules:
  - name: in-2030
    when: now().Year() == 2030 && now().Sub(received_at).Hours() >= 1
    do: [{type: log}]
  - name: stale-file
    by: [stream]
    when: kind == "file" && now().Sub(received_at).Minutes() > 30
    count: {at_least: 1, within: 1h}
    do: [{type: log}]
`), o)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	var m rules.Matcher
	ev := &event.Event{Kind: event.KindFile, ReceivedAt: clock.Add(-2 * time.Hour)}
	matched, errs := m.Match(set, ev)
	if len(errs) != 0 || len(matched) != 1 || matched[0].Name != "in-2030" {
		t.Errorf("matched %v, %v; want in-2030 by the loaded clock, not the wall clock", matched, errs)
	}
	if ok, err := m.WhenEnv(set.Rule("stale-file"), &rules.Env{Event: *ev}); !ok || err != nil {
		t.Errorf("a rule over time's now(): %v, %v; want true by the loaded clock", ok, err)
	}
}
