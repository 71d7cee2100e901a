package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
)

var simStart = time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

func newSim(t testing.TB, rulesYAML string) *Simulation {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s, err := NewSimulation(SimOptions{
		RulesPath: path, Start: simStart,
		Registry: func() (*actionapi.Registry, error) {
			reg := actionapi.NewRegistry()
			err := reg.Add(actionapi.Type{Name: "record", Open: func(actionapi.Settings) (actionapi.Instance, error) { return rec, nil }})
			return reg, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// at moves the simulation's clock to the offset d from the start.
func at(t testing.TB, s *Simulation, d time.Duration) {
	t.Helper()
	if err := s.Advance(simStart.Add(d)); err != nil {
		t.Fatal(err)
	}
}

func simSend(t testing.TB, s *Simulation, name, stream, dedupe string) (string, bool) {
	t.Helper()
	ev := &event.Event{Source: event.SourceRecord, Kind: event.KindStatus, Domain: "play.example.com", App: "live", Stream: stream, Event: name}
	id, dup, err := s.Accept(ev, dedupe)
	if err != nil {
		t.Fatal(err)
	}
	return id, dup
}

// firedAt is what fired since the last look, as "offset rule stream" lines.
func firedAt(t testing.TB, s *Simulation) []string {
	t.Helper()
	fs, err := s.Firings()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		line := fmt.Sprintf("%s %s %s", f.At.Sub(simStart), f.Rule, f.Event.Stream)
		if f.Late {
			line += " late"
		}
		out = append(out, line)
	}
	return out
}

func wantFired(t testing.TB, s *Simulation, when string, want ...string) {
	t.Helper()
	if got := firedAt(t, s); !slices.Equal(got, want) {
		t.Errorf("%s: fired %q, want %q", when, got, want)
	}
}

func TestSimulationFiresTimersAtTheirDueTime(t *testing.T) {
	s := newSim(t, absence)
	simSend(t, s, "record_started", "room42", "")
	simSend(t, s, "record_started", "room7", "")
	at(t, s, 20*time.Minute)
	if _, _, err := s.Accept(&event.Event{Source: event.SourceRecord, Kind: event.KindFile, Domain: "play.example.com",
		App: "live", Stream: "room7", URI: "live/room7/a.flv", Format: "flv"}, ""); err != nil {
		t.Fatal(err)
	}
	at(t, s, 40*time.Minute)
	simSend(t, s, "record_paused", "room42", "")
	at(t, s, 2*time.Hour)
	fs := firedAt(t, s)
	want := []string{"30m0s started-without-file room42", "50m0s paused-too-long room42"}
	if !slices.Equal(fs, want) {
		t.Fatalf("fired %q, want %q", fs, want)
	}
	if !s.Now().Equal(simStart.Add(2 * time.Hour)) {
		t.Errorf("clock at %v, want the start + 2h", s.Now())
	}
}

func TestSimulationFiringsCarryWhatTheRuleFiredWith(t *testing.T) {
	s := newSim(t, absence)
	trigger, _ := simSend(t, s, "record_started", "room42", "")
	at(t, s, time.Hour)
	fs, err := s.Firings()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("fired %d times, want 1", len(fs))
	}
	f := fs[0]
	if f.Event.ID != trigger || !slices.Equal(f.Causes, []string{trigger}) || f.Key["stream"] != "room42" || f.Late ||
		len(f.Steps) != 1 || f.Steps[0].Plan == nil || f.Steps[0].Type != "record" {
		t.Errorf("firing %+v: want the trigger %s, key room42, not late, one planned record step", f, trigger)
	}
	in := f.Steps[0].Plan.Payload.(actionapi.Input)
	if in.Temporal["waited"] != "30m0s" || in.DeliveryID != f.Steps[0].JobID {
		t.Errorf("rendered from %v (delivery %s), want waited 30m and the job's id %s", in.Temporal, in.DeliveryID, f.Steps[0].JobID)
	}
}

func TestSimulationRestart(t *testing.T) {
	s := newSim(t, absence)
	simSend(t, s, "record_started", "room1", "")
	at(t, s, 10*time.Minute)
	if err := s.Restart(0); err != nil {
		t.Fatal(err)
	}
	at(t, s, 31*time.Minute)
	wantFired(t, s, "across a restart, up when it came due", "30m0s started-without-file room1")

	// Down across the deadline, within the tolerance: fires on start, late.
	simSend(t, s, "record_started", "room2", "") // due at 61m
	at(t, s, 41*time.Minute)
	if err := s.Restart(40 * time.Minute); err != nil { // back at 81m: 20m overdue
		t.Fatal(err)
	}
	wantFired(t, s, "20m overdue", "1h21m0s started-without-file room2 late")

	// Down past the tolerance: discarded.
	simSend(t, s, "record_started", "room3", "") // due at 111m
	if err := s.Restart(3 * time.Hour); err != nil {
		t.Fatal(err)
	}
	at(t, s, 5*time.Hour)
	wantFired(t, s, "2h30m overdue")
	if got := metric(t, s.Engine().opts.Metrics.(prometheus.Gatherer), "livehook_state_expired_total", "reason", "outage"); got != 1 {
		t.Errorf("livehook_state_expired_total{reason=outage} = %v, want 1", got)
	}
}

// BenchmarkSimulateDay runs a day of timeline, 10,000 callbacks on 100
// streams spread evenly over it, through rules over time of every shape
// and a throttled single-event rule, with a restart at noon: a rule test of
// that size must take under a second (s/day). In the same iteration the
// same callbacks arrive at one instant (a burst: no clock steps between
// them, and the same evaluations and commits but in batches), and
// day/burst is what stepping the clock through the day costs beside it.
func BenchmarkSimulateDay(b *testing.B) {
	rules := absence + `
  - name: error-burst
    when: event == "record_error"
    count: {at_least: 3, within: 10m}
    do: [ { type: record } ]
  - name: recording-failed
    when: event == "record_error"
    throttle: {by: [stream], window: 10m}
    do: [ { type: record } ]
`
	names := []string{"record_started", "record_error", "record_paused", "record_resumed"}
	const events = 10_000
	step := 24 * time.Hour / events
	var day, burst time.Duration
	fired := 0
	for b.Loop() {
		began := time.Now()
		s := newSim(b, rules)
		for i := range events {
			at(b, s, time.Duration(i)*step)
			if i == events/2 {
				if err := s.Restart(time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			simSend(b, s, names[i%len(names)], fmt.Sprint("room", i%100), "")
		}
		at(b, s, 25*time.Hour)
		fs, err := s.Firings()
		if err != nil {
			b.Fatal(err)
		}
		fired = len(fs)
		day += time.Since(began)

		began = time.Now()
		s = newSim(b, rules)
		for i := range events {
			simSend(b, s, names[i%len(names)], fmt.Sprint("room", i%100), "")
		}
		at(b, s, 25*time.Hour)
		if _, err := s.Firings(); err != nil {
			b.Fatal(err)
		}
		burst += time.Since(began)
	}
	if fired == 0 {
		b.Fatal("nothing fired")
	}
	b.ReportMetric(float64(fired), "firings/day")
	b.ReportMetric(day.Seconds()/float64(b.N), "s/day")
	b.ReportMetric(day.Seconds()/burst.Seconds(), "day/burst")
}

// A retry, the same dedupe identity again, is answered with the first
// event's id and evaluated once.
func TestSimulationDeduplicatesRetries(t *testing.T) {
	s := newSim(t, counts)
	first, dup := simSend(t, s, "record_error", "room1", "status\x00body\x00100")
	at(t, s, 2*time.Second)
	again, dup2 := simSend(t, s, "record_error", "room1", "status\x00body\x00100")
	other, dup3 := simSend(t, s, "record_error", "room1", "status\x00body\x00102")
	if dup || !dup2 || again != first || dup3 || other == first {
		t.Errorf("ids %s %s %s, duplicates %v %v %v: want the retry answered with the first's id, the next second's callback new",
			first, again, other, dup, dup2, dup3)
	}
	wantFired(t, s, "two errors and a retry, at_least 3")
	simSend(t, s, "record_error", "room1", "")
	wantFired(t, s, "the third error", "2s error-burst room1")
}
