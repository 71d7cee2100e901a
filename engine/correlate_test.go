package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

// timeline runs an engine inside a synctest bubble: the clock is the
// bubble's, so a test moves it by sleeping, timers fire when it gets
// there, and synctest.Wait is "everything accepted has been processed".
type timeline struct {
	t       *testing.T
	dir     string
	rules   string
	rec     *recorder
	st      *store.Local
	e       *Engine
	metrics *prometheus.Registry
	opts    func(*Options)
}

func runTimeline(t *testing.T, rulesYAML string, fn func(tl *timeline)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		tl := &timeline{t: t, dir: t.TempDir(), rec: &recorder{deliveries: make(chan actionapi.Input, 100)}}
		tl.rules = filepath.Join(t.TempDir(), "rules.yaml")
		tl.write(rulesYAML)
		tl.start()
		t.Cleanup(tl.stop)
		fn(tl)
	})
}

func (tl *timeline) write(rulesYAML string) {
	if err := os.WriteFile(tl.rules, []byte(rulesYAML), 0o644); err != nil {
		tl.t.Fatal(err)
	}
}

func (tl *timeline) start() {
	t := tl.t
	st, err := store.Open(tl.dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tl.metrics = prometheus.NewRegistry()
	o := Options{
		RulesPath: tl.rules, Registry: func() (*actionapi.Registry, error) { return tl.rec.registry(t), nil },
		Store: st, Metrics: tl.metrics, Logger: slog.New(slog.DiscardHandler),
		Deps: actionapi.Deps{Now: time.Now}, Zone: time.UTC,
	}
	if tl.opts != nil {
		tl.opts(&o)
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.evaluator.pace = 0 // each event is evaluated before the clock moves
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	tl.st, tl.e = st, e
	synctest.Wait()
}

func (tl *timeline) stop() {
	if tl.e == nil {
		return
	}
	if err := tl.e.Stop(context.Background()); err != nil {
		tl.t.Error(err)
	}
	if err := tl.st.Close(); err != nil {
		tl.t.Error(err)
	}
	tl.e = nil
}

// restart stops the engine, lets down pass, and starts it again on the
// same store.
func (tl *timeline) restart(down time.Duration) {
	tl.stop()
	tl.advance(down)
	tl.start()
}

// send accepts an event of stream room1 on play.example.com, with the
// fields set sets, and waits until it is processed.
func (tl *timeline) send(set func(ev *event.Event)) string {
	ev := &event.Event{Source: event.SourceRecord, Kind: event.KindStatus, Domain: "play.example.com", App: "live", Stream: "room1"}
	set(ev)
	if ev.URI != "" {
		ev.Kind = event.KindFile
	}
	id, err := tl.e.Accept(context.Background(), ev, "")
	if err != nil {
		tl.t.Fatal(err)
	}
	synctest.Wait()
	return id
}

func status(name string) func(*event.Event) { return func(ev *event.Event) { ev.Event = name } }

func statusOf(name, stream string) func(*event.Event) {
	return func(ev *event.Event) { ev.Event, ev.Stream = name, stream }
}

// advance moves the bubble's clock by d (a sleep in a synctest bubble
// takes no real time) and waits until what came due has run.
func (tl *timeline) advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// fired takes the deliveries made so far.
func (tl *timeline) fired() []actionapi.Input {
	var out []actionapi.Input
	for {
		select {
		case in := <-tl.rec.deliveries:
			out = append(out, in)
		default:
			return out
		}
	}
}

// expectFired checks that exactly the named rules fired since the last
// look, in order, and returns those deliveries.
func (tl *timeline) expectFired(when string, rules ...string) []actionapi.Input {
	tl.t.Helper()
	got := tl.fired()
	var names []string
	for _, in := range got {
		names = append(names, in.Rule)
	}
	if !slices.Equal(names, rules) {
		tl.t.Fatalf("%s: fired %v, want %v", when, names, rules)
	}
	return got
}

const absence = `
rules:
  - name: started-without-file
    when: event == "record_started"
    expect:
      match: kind == "file"
      within: 30m
      until: event == "record_error"
    do: [ { type: record } ]
  - name: paused-too-long
    when: event == "record_paused"
    expect: {match: event == "record_resumed", within: 10m, retrigger: keep}
    do: [ { type: record } ]
`

func TestAbsenceFiresOnceAtTheDeadline(t *testing.T) {
	runTimeline(t, absence, func(tl *timeline) {
		start := time.Now()
		trigger := tl.send(status("record_started"))
		tl.advance(29 * time.Minute)
		tl.expectFired("before the deadline")
		tl.advance(time.Minute)
		got := tl.expectFired("at the deadline", "started-without-file")
		in := got[0]
		if in.Event.ID != trigger || in.Temporal["waited"] != "30m0s" || in.Temporal["late"] != false ||
			in.Temporal["key"].(map[string]any)["stream"] != "room1" || in.Temporal["trigger"].(map[string]any)["event"] != "record_started" {
			t.Errorf("firing: event %s, temporal %v; want the trigger %s, waited 30m, not late, key room1", in.Event.ID, in.Temporal, trigger)
		}
		if at := time.Since(start); at != 30*time.Minute {
			t.Errorf("fired %v after the start, want 30m", at)
		}
		tl.advance(2 * time.Hour)
		tl.expectFired("long after", []string{}...)
		if st, _ := tl.st.Stats(context.Background()); st.Timers != 0 {
			t.Errorf("timers left: %+v", st)
		}
	})
}

func TestAbsenceClosedByMatchCancelledByUntil(t *testing.T) {
	runTimeline(t, absence, func(tl *timeline) {
		tl.send(statusOf("record_started", "room1"))
		tl.send(statusOf("record_started", "room2"))
		tl.send(statusOf("record_started", "room3"))
		tl.advance(10 * time.Minute)
		tl.send(func(ev *event.Event) { ev.Stream, ev.URI, ev.Duration = "room1", "live/room1/a.flv", 600 })
		tl.send(statusOf("record_error", "room2"))
		tl.advance(time.Hour)
		got := tl.expectFired("after the window", "started-without-file")
		if s := got[0].Event.Stream; s != "room3" {
			t.Errorf("fired for %s, want only room3 (room1 got its file, room2 an error)", s)
		}
	})
}

func TestAbsenceRetrigger(t *testing.T) {
	runTimeline(t, absence, func(tl *timeline) {
		// restart (the default): a second start moves the deadline.
		tl.send(status("record_started"))
		tl.advance(20 * time.Minute)
		second := tl.send(status("record_started"))
		tl.advance(20 * time.Minute) // 40m: the first deadline has passed
		tl.expectFired("after the first deadline")
		tl.advance(10 * time.Minute) // 50m: 30m after the second start
		if got := tl.expectFired("30m after the second start", "started-without-file"); got[0].Event.ID != second {
			t.Errorf("fired for %s, want the second trigger %s", got[0].Event.ID, second)
		}
		// keep: a second pause does not move the deadline.
		first := tl.send(status("record_paused"))
		tl.advance(5 * time.Minute)
		tl.send(status("record_paused"))
		tl.advance(5 * time.Minute)
		if got := tl.expectFired("10m after the first pause", "paused-too-long"); got[0].Event.ID != first || got[0].Temporal["waited"] != "10m0s" {
			t.Errorf("fired for %s waited %v, want the first pause %s, 10m", got[0].Event.ID, got[0].Temporal["waited"], first)
		}
		tl.advance(time.Hour)
		tl.expectFired("after", []string{}...)
	})
}

func TestAbsenceTimerSurvivesRestart(t *testing.T) {
	runTimeline(t, absence, func(tl *timeline) {
		tl.send(status("record_started"))
		tl.advance(10 * time.Minute)
		tl.restart(0)
		tl.advance(20 * time.Minute)
		if got := tl.expectFired("at the deadline, after a restart", "started-without-file"); got[0].Temporal["late"] != false {
			t.Errorf("late = %v, want false: the daemon was up when it came due", got[0].Temporal["late"])
		}
		// Down across the deadline: fires on start, late.
		tl.send(statusOf("record_started", "room2"))
		tl.advance(10 * time.Minute)
		tl.restart(40 * time.Minute)
		if got := tl.expectFired("on start, 20m overdue", "started-without-file"); got[0].Temporal["late"] != true {
			t.Errorf("late = %v, want true", got[0].Temporal["late"])
		}
		// Down past the tolerance: discarded and counted.
		tl.send(statusOf("record_started", "room3"))
		tl.restart(3 * time.Hour)
		tl.advance(time.Minute)
		tl.expectFired("2h30m overdue", []string{}...)
		if got := metric(t, tl.metrics, "livehook_state_expired_total", "reason", "outage"); got != 1 {
			t.Errorf("livehook_state_expired_total{reason=outage} = %v, want 1", got)
		}
	})
}

func TestReloadKeepsOrDropsTimers(t *testing.T) {
	runTimeline(t, absence, func(tl *timeline) {
		tl.send(status("record_started"))
		tl.send(status("record_paused"))
		// paused-too-long changes its within; started-without-file gets a
		// new description only.
		tl.write(`
rules:
  - name: started-without-file
    description: a recording started and no file came
    when: event == "record_started"
    expect:
      match: kind == "file"
      within: 30m
      until: event == "record_error"
    do: [ { type: record } ]
  - name: paused-too-long
    when: event == "record_paused"
    expect: {match: event == "record_resumed", within: 20m, retrigger: keep}
    do: [ { type: record } ]
`)
		if err := tl.e.Reload(); err != nil {
			t.Fatal(err)
		}
		if got := metric(t, tl.metrics, "livehook_state_dropped_total", "rule", "paused-too-long"); got != 1 {
			t.Errorf("livehook_state_dropped_total{rule=paused-too-long} = %v, want 1", got)
		}
		tl.advance(time.Hour)
		tl.expectFired("after the reload", "started-without-file")
	})
}

const counts = `
rules:
  - name: error-burst
    when: event == "record_error"
    count: {at_least: 3, within: 10m}
    do: [ { type: record } ]
  - name: reset-burst
    when: event == "record_paused"
    count: {at_least: 2, within: 10m, rearm: reset}
    do: [ { type: record } ]
  - name: every-burst
    when: event == "record_resumed"
    count: {at_least: 2, within: 10m, rearm: every}
    do: [ { type: record } ]
  - name: streams-failing
    when: event == "record_error"
    by: [domain]
    count: {at_least: 3, distinct: stream, within: 15m}
    do: [ { type: record } ]
`

func TestCountCrossesStaysSilentRearmsBelow(t *testing.T) {
	runTimeline(t, counts, func(tl *timeline) {
		for i, at := range []time.Duration{time.Minute, 3 * time.Minute, 3 * time.Minute} { // 1, 4, 7m
			tl.advance(at)
			tl.send(status("record_error"))
			if i < 2 {
				tl.expectFired(fmt.Sprintf("error %d", i+1))
			}
		}
		if got := tl.expectFired("the third error in 10m", "error-burst"); got[0].Temporal["count"] != 3 || got[0].Temporal["window"] != "10m0s" {
			t.Errorf("count %v window %v, want 3 in 10m", got[0].Temporal["count"], got[0].Temporal["window"])
		}
		tl.advance(3 * time.Minute) // 10m: a fourth, still above: silent
		tl.send(status("record_error"))
		tl.expectFired("above the threshold")
		tl.advance(20 * time.Minute) // 30m: the window has emptied: re-armed
		for range 3 {
			tl.send(status("record_error"))
		}
		tl.expectFired("re-armed", "error-burst")
	})
}

func TestCountRearmResetAndEvery(t *testing.T) {
	runTimeline(t, counts, func(tl *timeline) {
		for range 4 {
			tl.send(status("record_paused"))
		}
		tl.expectFired("reset: fires at 2, clears, fires at 4", "reset-burst", "reset-burst")
		for range 3 {
			tl.send(status("record_resumed"))
		}
		tl.expectFired("every: fires at 2 and 3", "every-burst", "every-burst")
	})
}

func TestCountDistinct(t *testing.T) {
	runTimeline(t, counts, func(tl *timeline) {
		for _, s := range []string{"a", "a", "b", "b"} {
			tl.send(statusOf("record_error", s))
		}
		tl.expectFired("two streams failing")
		tl.send(statusOf("record_error", "c"))
		got := tl.expectFired("three streams failing", "streams-failing")
		if got[0].Temporal["count"] != 3 || got[0].Temporal["key"].(map[string]any)["domain"] != "play.example.com" {
			t.Errorf("count %v key %v, want 3 distinct streams on the domain", got[0].Temporal["count"], got[0].Temporal["key"])
		}
	})
}

const sessions = `
rules:
  - name: session-summary
    when: kind == "file" && format == "mp4"
    session: {start: event == "record_started", idle: 7h}
    do: [ { type: record } ]
`

func mp4(n int) func(*event.Event) {
	return func(ev *event.Event) {
		ev.URI, ev.Format, ev.Duration = fmt.Sprintf("live/room1/%d.mp4", n), "mp4", 1800
	}
}

func TestSessionClosesOnIdleAndOnNextStart(t *testing.T) {
	runTimeline(t, sessions, func(tl *timeline) {
		tl.send(status("record_started"))
		for n := range 3 {
			tl.advance(30 * time.Minute)
			tl.send(mp4(n))
		}
		tl.send(status("record_started")) // a new session: the first closes
		got := tl.expectFired("the next start", "session-summary")
		if got[0].Temporal["count"] != 3 || len(got[0].Temporal["events"].([]map[string]any)) != 3 {
			t.Errorf("count %v with %d events, want 3", got[0].Temporal["count"], len(got[0].Temporal["events"].([]map[string]any)))
		}
		tl.advance(time.Hour)
		tl.send(mp4(9))
		tl.advance(7*time.Hour - time.Minute)
		tl.expectFired("before idle")
		tl.advance(time.Minute)
		if got := tl.expectFired("idle 7h", "session-summary"); got[0].Temporal["count"] != 1 {
			t.Errorf("count %v, want 1", got[0].Temporal["count"])
		}
		tl.advance(24 * time.Hour)
		tl.expectFired("an empty key stays silent")
	})
}

const digests = `
rules:
  - name: short-recordings-hourly
    when: kind == "file" && duration < 10
    by: [domain]
    digest: {every: 1h, max_items: 2}
    do: [ { type: record } ]
`

func TestDigestAlignsToTheClockAndCountsDropped(t *testing.T) {
	runTimeline(t, digests, func(tl *timeline) {
		// The bubble's clock starts at midnight: move to 10:40.
		tl.advance(10*time.Hour + 40*time.Minute)
		for n := range 4 {
			tl.send(func(ev *event.Event) {
				ev.Stream, ev.URI, ev.Duration = fmt.Sprint("room", n), fmt.Sprintf("live/room%d/a.flv", n), 3
			})
		}
		tl.advance(19 * time.Minute) // 10:59
		tl.expectFired("inside the hour")
		tl.advance(time.Minute) // 11:00
		got := tl.expectFired("at the hour", "short-recordings-hourly")
		f := got[0].Temporal
		if f["count"] != 4 || f["dropped"] != 2 || len(f["events"].([]map[string]any)) != 2 {
			t.Errorf("digest: count %v dropped %v with %d events, want 4, 2 dropped, 2 kept", f["count"], f["dropped"], len(f["events"].([]map[string]any)))
		}
		if h := time.Now().UTC(); h.Minute() != 0 || h.Hour() != 11 {
			t.Errorf("fired at %v, want 11:00", h)
		}
		tl.advance(3 * time.Hour)
		tl.expectFired("empty buckets stay silent")
	})
}

const gaps = `
rules:
  - name: segment-gap
    by: [domain, app, stream, format]
    track: kind == "file"
    when: kind == "file" && prev != nil && start_time - prev.stop_time > 60
    do: [ { type: record } ]
`

func TestPrevAcrossRestarts(t *testing.T) {
	runTimeline(t, gaps, func(tl *timeline) {
		file := func(start, stop int64) func(*event.Event) {
			return func(ev *event.Event) {
				ev.URI, ev.Format, ev.StartTime, ev.StopTime = fmt.Sprintf("live/room1/%d.flv", start), "flv", start, stop
			}
		}
		tl.send(file(1000, 1600))
		tl.send(file(1600, 2200))
		tl.expectFired("consecutive files")
		tl.restart(time.Minute)
		tl.send(file(2400, 3000)) // 200s after the previous one stopped
		got := tl.expectFired("a gap, after a restart", "segment-gap")
		if prev := got[0].Temporal["prev"].(map[string]any); prev["stop_time"] != int64(2200) {
			t.Errorf("prev.stop_time = %v, want 2200", prev["stop_time"])
		}
	})
}

const capped = `
rules:
  - name: started-without-file
    when: event == "record_started"
    max_keys: 2
    expect: {match: kind == "file", within: 30m}
    do: [ { type: record } ]
  - name: error-burst
    when: event == "record_error"
    max_keys: 2
    count: {at_least: 2, within: 10m}
    do: [ { type: record } ]
`

func TestKeyCapsEvictWithoutTimersRefuseWithTimers(t *testing.T) {
	runTimeline(t, capped, func(tl *timeline) {
		// Three streams' counts: the third evicts the least recently used.
		for _, s := range []string{"a", "b", "c"} {
			tl.send(statusOf("record_error", s))
		}
		tl.send(statusOf("record_error", "a")) // a was evicted: its count starts again
		tl.expectFired("a's second error after its state was evicted")
		tl.send(statusOf("record_error", "c"))
		tl.expectFired("c's second error", "error-burst")

		// Three streams' expectations: each needs a timer, so the third is refused.
		for _, s := range []string{"a", "b", "c"} {
			tl.send(statusOf("record_started", s))
		}
		if got := metric(t, tl.metrics, "livehook_state_refused_total", "rule", "started-without-file"); got != 1 {
			t.Errorf("livehook_state_refused_total = %v, want 1", got)
		}
		if got := metric(t, tl.metrics, "livehook_state_keys", "rule", "started-without-file"); got != 2 {
			t.Errorf("livehook_state_keys{rule=started-without-file} = %v, want 2 (the cap)", got)
		}
		tl.advance(time.Hour)
		got := tl.expectFired("the deadlines", "started-without-file", "started-without-file")
		streams := []string{got[0].Event.Stream, got[1].Event.Stream}
		slices.Sort(streams)
		if !slices.Equal(streams, []string{"a", "b"}) {
			t.Errorf("fired for %v, want a and b (c was refused)", streams)
		}
	})
}

// Aliyun's retry of a callback is deduplicated before it reaches a rule
// over time, and an event accepted before a crash is counted once after
// it. The rule fires on every match from the second on, so any event
// counted twice would show as a firing.
func TestCountsEachEventOnce(t *testing.T) {
	runTimeline(t, counts, func(tl *timeline) {
		accept := func(key string) {
			ev := &event.Event{Source: event.SourceRecord, Kind: event.KindStatus, Domain: "play.example.com", App: "live", Stream: "room1", Event: "record_resumed"}
			if _, err := tl.e.Accept(context.Background(), ev, key); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		accept("status\x00first")
		accept("status\x00first") // Aliyun's retry of the same callback
		tl.expectFired("one resume and its retry")
		// Accepted, then the process dies before evaluating it.
		tl.stop()
		st, err := store.Open(tl.dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ev := &event.Event{ID: "01J00000000000000000000099", Source: event.SourceRecord, Kind: event.KindStatus,
			Domain: "play.example.com", App: "live", Stream: "room1", Event: "record_resumed", ReceivedAt: time.Now()}
		if _, err := st.Accept(context.Background(), &store.Incoming{Event: ev, DedupeKey: "status\x00second", DedupeTTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		tl.start()
		if got := tl.expectFired("the second resume, evaluated after the restart", "every-burst"); got[0].Temporal["count"] != 2 {
			t.Errorf("count %v, want 2: the retry was not counted", got[0].Temporal["count"])
		}
		tl.restart(0)
		tl.advance(time.Minute)
		tl.expectFired("another restart: the second resume is not evaluated again")
	})
}

// An event accepted before its key's deadline but evaluated after it (a
// crash in between) changes the key's state before the timer fires: no
// false absence.
func TestEventBeforeDeadlineIsEvaluatedBeforeTheTimer(t *testing.T) {
	runTimeline(t, absence, func(tl *timeline) {
		tl.send(status("record_started"))
		tl.advance(20 * time.Minute)
		tl.stop() // the file arrives, and the process dies before evaluating it
		st, err := store.Open(tl.dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ev := &event.Event{ID: "01J00000000000000000000098", Source: event.SourceRecord, Kind: event.KindFile,
			Domain: "play.example.com", App: "live", Stream: "room1", URI: "live/room1/a.flv", Duration: 600, ReceivedAt: time.Now()}
		if _, err := st.Accept(context.Background(), &store.Incoming{Event: ev}); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		tl.advance(20 * time.Minute) // down past the deadline
		tl.start()
		tl.advance(time.Hour)
		tl.expectFired("after the restart: the file closed the expectation")
	})
}

// Switching a rule over time off stops its pending timers from firing.
func TestDisabledRuleTimersDoNotFire(t *testing.T) {
	runTimeline(t, absence, func(tl *timeline) {
		tl.send(status("record_started"))
		tl.write(strings.Replace(absence, "  - name: started-without-file\n", "  - name: started-without-file\n    enabled: false\n", 1))
		if err := tl.e.Reload(); err != nil {
			t.Fatal(err)
		}
		tl.advance(time.Hour)
		tl.expectFired("the rule was switched off")
	})
}
