package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const shadowRules = `
rules:
  - name: recording-failed
    mode: shadow
    when: event == "record_error"
    throttle: {by: [stream], window: 10m}
    do: [ { type: record } ]
  - name: started-without-file
    mode: shadow
    when: event == "record_started"
    expect: {match: kind == "file", within: 30m}
    do: [ { type: record } ]
  - name: live-failed
    when: event == "record_error"
    do: [ { type: record } ]
`

// A rule in shadow mode is evaluated as a live one, state and timers
// included; what it matches or fires is recorded with its event and
// counted, and nothing is planned for it.
func TestShadowRulesRecordAndDeliverNothing(t *testing.T) {
	s := newSim(t, shadowRules)
	errID, _ := simSend(t, s, "record_error", "room1", "")
	simSend(t, s, "record_error", "room1", "") // a throttle would hold it back; shadow rules take no part
	started, _ := simSend(t, s, "record_started", "room1", "")
	at(t, s, time.Hour)
	fs, err := s.Firings()
	if err != nil {
		t.Fatal(err)
	}
	var shadow, live []string
	for _, f := range fs {
		if f.Shadow {
			if len(f.Steps) != 0 {
				t.Errorf("shadow firing of %s planned %d steps", f.Rule, len(f.Steps))
			}
			shadow = append(shadow, f.Rule)
		} else {
			live = append(live, f.Rule)
		}
	}
	if len(live) != 2 || live[0] != "live-failed" || len(shadow) != 3 {
		t.Fatalf("fired live %v, shadow %v: want live-failed twice, recording-failed twice and started-without-file in shadow", live, shadow)
	}

	e := s.Engine()
	d, err := e.Event(errID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Shadow) != 1 || d.Shadow[0].Rule != "recording-failed" || !d.Shadow[0].At.Equal(simStart) ||
		len(d.Jobs) != 1 || d.Jobs[0].Rule != "live-failed" || len(d.Throttled) != 0 {
		t.Errorf("the error's record: shadow %+v, jobs %d, throttled %v; want recording-failed in shadow and live-failed's job only", d.Shadow, len(d.Jobs), d.Throttled)
	}
	// The expectation's firing, an hour's timer, is recorded with the
	// event that set it.
	d, err = e.Event(started)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Shadow) != 1 || d.Shadow[0].Rule != "started-without-file" || !d.Shadow[0].At.Equal(simStart.Add(30*time.Minute)) || len(d.Jobs) != 0 {
		t.Fatalf("the start's record: shadow %+v, %d jobs; want started-without-file fired at 30m, no job", d.Shadow, len(d.Jobs))
	}
	var f firing
	if err := json.Unmarshal(d.Shadow[0].Firing, &f); err != nil || f.Waited != "30m0s" || f.Key["stream"] != "room1" {
		t.Errorf("the shadow firing carries %s (%v), want what it fired with", d.Shadow[0].Firing, err)
	}
	// Shown through the API as stored, with the event.
	enc, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var shown map[string]any
	if err := json.Unmarshal(enc, &shown); err != nil || shown["shadow"].([]any)[0].(map[string]any)["rule"] != "started-without-file" {
		t.Errorf("the event detail as JSON: %s", enc)
	}
	g := e.opts.Metrics.(prometheus.Gatherer)
	for rule, want := range map[string]float64{"recording-failed": 2, "started-without-file": 1} {
		if got := metric(t, g, "livehook_rule_matches_total", "rule", rule, "mode", "shadow"); got != want {
			t.Errorf("livehook_rule_matches_total{rule=%s,mode=shadow} = %v, want %v", rule, got, want)
		}
	}
	if got := metric(t, g, "livehook_rule_matches_total", "rule", "live-failed", "mode", "live"); got != 2 {
		t.Errorf("livehook_rule_matches_total{rule=live-failed,mode=live} = %v, want 2", got)
	}
	if st, err := s.local.Stats(context.Background()); err != nil || st.Pending != 2 {
		t.Errorf("pending jobs %+v (%v): want live-failed's two only", st, err)
	}
}
