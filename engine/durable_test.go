package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/intake"
)

// failingStore is a real store whose Accept fails while fail is set, as a
// full or broken disk makes it (the store's own tests show a retry waiting
// on a failing first write beneath this), and whose Finish fails its
// first finishFails calls, as a database cut off makes it.
type failingStore struct {
	store.Store
	fail        atomic.Bool
	appends     atomic.Int32
	finishFails atomic.Int32
	// If hold is set, a failing Accept tells entered and waits for hold.
	entered chan struct{}
	hold    chan struct{}
}

func (s *failingStore) Accept(ctx context.Context, in *store.Incoming) (store.Acceptance, error) {
	s.appends.Add(1)
	if !s.fail.Load() {
		return s.Store.Accept(ctx, in)
	}
	if s.hold != nil {
		s.entered <- struct{}{}
		<-s.hold
	}
	return store.Acceptance{}, fmt.Errorf("append event: journal: write: %w", syscall.ENOSPC)
}

func (s *failingStore) Finish(ctx context.Context, owner string, j *store.Job) error {
	if s.finishFails.Add(-1) >= 0 {
		return fmt.Errorf("finish job %s: %w", j.ID, syscall.ECONNRESET)
	}
	return s.Store.Finish(ctx, owner, j)
}

// A delivery whose state cannot be saved (the database cut off) is saved
// once the store works again, without running again: left unsaved, its
// lease would hold the job, and a slot of its action, for a whole lease.
func TestFailedFinishIsTriedAgain(t *testing.T) {
	rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
	clock := &fakeClock{now: time.Now()}
	fs := &failingStore{Store: openStore(t, t.TempDir())}
	fs.finishFails.Store(3)
	e, metrics := startEngine(t, fs, writeRules(t, recordAll), func() (*actionapi.Registry, error) { return rec.registry(t), nil }, clock, 0)
	accept(t, e, "room1")
	next(t, rec)
	noMoreDeliveries(t, e, rec) // drained: saved, not pending
	if got := metric(t, metrics, "livehook_store_errors_total"); got != 3 {
		t.Errorf("livehook_store_errors_total = %v, want 3: one per failed save", got)
	}
}

const recordAll = "rules:\n  - name: all\n    do: [ { type: record } ]\n"

func writeRules(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func openStore(t *testing.T, dir string) *store.Local {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // idempotent: a test may close first to restart
	return st
}

// startEngine runs an engine on st until the test ends (or the test stops it).
func startEngine(t *testing.T, st store.Store, rulesPath string, reg func() (*actionapi.Registry, error), clock *fakeClock, retention time.Duration) (*Engine, *prometheus.Registry) {
	t.Helper()
	metrics := prometheus.NewRegistry()
	e, err := New(Options{
		RulesPath: rulesPath, Registry: reg, Store: st, Metrics: metrics,
		Logger: slog.New(slog.DiscardHandler), Deps: actionapi.Deps{Now: clock.Now}, Retention: retention,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e, metrics
}

func stop(t *testing.T, e *Engine) {
	t.Helper()
	if err := e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// serve puts the public intake in front of e.
func serve(t *testing.T, e *Engine, metrics prometheus.Registerer, clock *fakeClock) string {
	t.Helper()
	srv := httptest.NewServer(intake.New(intake.Options{
		Acceptor: e, Logger: slog.New(slog.DiscardHandler), Metrics: metrics, Now: clock.Now,
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/callbacks/record"
}

func fileCallback(t *testing.T) []byte {
	t.Helper()
	body, err := os.ReadFile("../testdata/events/file_flv.json")
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// reply is intake's answer.
type reply struct {
	Status int    `json:"-"`
	OK     bool   `json:"ok"`
	ID     string `json:"id"`
	Error  string `json:"error"`
}

// send posts a callback; unlike post it may run off the test goroutine.
func send(url string, body []byte) (reply, error) {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{Status: resp.StatusCode}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return r, fmt.Errorf("status %d with Content-Type %q, want application/json", r.Status, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("status %d: reply is not JSON: %w", r.Status, err)
	}
	return r, nil
}

func post(t *testing.T, url string, body []byte) reply {
	t.Helper()
	r, err := send(url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wait fails the test if nothing arrives on ch in time.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not happen within 5s", what)
	}
}

// metric reads one series of a counter or gauge as /metrics shows it. A
// family that is not gathered at all fails the test, so a misspelt name
// cannot pass a "== 0" check; a labelled family without the asked series
// reads as zero, as a series never touched is not exported. A labelled
// family with no series at all is not gathered either: read it only once
// something was counted in it.
func metric(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("metric %s: labels %q are not name/value pairs", name, labels)
	}
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == name })
	if i < 0 {
		t.Fatalf("metric %s is not gathered: misspelt, not registered, or a labelled family with no series yet", name)
	}
	f := families[i]
	if f.GetType() != dto.MetricType_COUNTER && f.GetType() != dto.MetricType_GAUGE {
		t.Fatalf("metric %s is a %s, not a counter or gauge", name, f.GetType())
	}
	for j := 0; j < len(labels); j += 2 {
		if !slices.ContainsFunc(f.GetMetric(), func(m *dto.Metric) bool { return hasLabel(m, labels[j], "") }) {
			t.Fatalf("metric %s has no label %q", name, labels[j])
		}
	}
series:
	for _, m := range f.GetMetric() {
		for j := 0; j < len(labels); j += 2 {
			if !hasLabel(m, labels[j], labels[j+1]) {
				continue series
			}
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return 0
}

// hasLabel reports whether m has the label name, with value if value is not
// empty.
func hasLabel(m *dto.Metric, name, value string) bool {
	return slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
		return l.GetName() == name && (value == "" || l.GetValue() == value)
	})
}

// noMoreDeliveries checks, once everything accepted is processed, that
// nothing beyond what the test took was delivered.
func noMoreDeliveries(t *testing.T, e *Engine, rec *recorder) {
	t.Helper()
	drained(t, e)
	if n := len(rec.deliveries); n != 0 {
		t.Errorf("%d unexpected deliveries", n)
	}
}

func storedEvents(t *testing.T, e *Engine) []*store.EventRecord {
	t.Helper()
	evs, err := e.Events(store.EventFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestUnwritableStoreAnswers503(t *testing.T) {
	tests := []struct {
		name string
		// concurrent sends the retry while the first copy's write is still
		// failing, so it waits on the first one's dedupe claim.
		concurrent bool
	}{
		{name: "retry after the failed write"},
		{name: "retry during the failed write", concurrent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
			clock := &fakeClock{now: time.Now()}
			fs := &failingStore{Store: openStore(t, t.TempDir())}
			if tc.concurrent {
				fs.entered, fs.hold = make(chan struct{}, 2), make(chan struct{})
			}
			fs.fail.Store(true)
			e, metrics := startEngine(t, fs, writeRules(t, recordAll), func() (*actionapi.Registry, error) { return rec.registry(t), nil }, clock, 0)
			url := serve(t, e, metrics, clock)
			body := fileCallback(t)

			var answers []reply
			if tc.concurrent {
				errs := make(chan error, 2)
				results := make(chan reply, 2)
				copyOf := func() { r, err := send(url, body); results <- r; errs <- err }
				go copyOf()
				wait(t, fs.entered, "the first copy's write")
				go copyOf()
				wait(t, fs.entered, "the retry's write, while the first one's is failing")
				close(fs.hold)
				for range 2 {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
					answers = append(answers, <-results)
				}
			} else {
				answers = append(answers, post(t, url, body), post(t, url, body))
			}
			for i, r := range answers {
				if r.Status != http.StatusServiceUnavailable || r.OK || r.Error == "" || r.ID != "" {
					t.Errorf("copy %d while the store cannot write: %+v; want 503 with an error and no id", i+1, r)
				}
			}
			if n := fs.appends.Load(); n != 2 {
				t.Errorf("%d writes tried, want 2: the retry must be written, not answered from the failed first copy", n)
			}
			if got := metric(t, metrics, "livehook_store_errors_total"); got != 2 {
				t.Errorf("livehook_store_errors_total = %v, want 2", got)
			}
			if got := metric(t, metrics, "livehook_events_rejected_total", "reason", "unavailable"); got != 2 {
				t.Errorf("livehook_events_rejected_total{reason=unavailable} = %v, want 2", got)
			}
			noMoreDeliveries(t, e, rec)
			if evs := storedEvents(t, e); len(evs) != 0 {
				t.Errorf("%d events stored from refused callbacks", len(evs))
			}

			fs.fail.Store(false) // the disk has room again; Aliyun retries
			first := post(t, url, body)
			if first.Status != http.StatusOK || !first.OK || first.ID == "" {
				t.Fatalf("retry after the store recovered: %+v, want 200 with an id", first)
			}
			if in := next(t, rec); in.Event.ID != first.ID || in.Event.URI != "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv" {
				t.Errorf("delivered event %s (%s), want %s for the recording", in.Event.ID, in.Event.URI, first.ID)
			}
			if again := post(t, url, body); again.Status != http.StatusOK || again.ID != first.ID {
				t.Errorf("another retry after the 200: %+v, want 200 with id %s", again, first.ID)
			}
			noMoreDeliveries(t, e, rec)
			if evs := storedEvents(t, e); len(evs) != 1 || evs[0].Event.ID != first.ID {
				t.Errorf("stored events %v, want only %s", evs, first.ID)
			}
			if got := metric(t, metrics, "livehook_store_errors_total"); got != 2 {
				t.Errorf("livehook_store_errors_total = %v after recovery, want still 2", got)
			}
		})
	}
}

// A real full disk: the journal's segment is /dev/full, so the kernel
// answers the write with ENOSPC.
func TestFullDiskAnswers503(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "journal"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The journal's first segment name (see journal/segment.go).
	if err := os.Symlink("/dev/full", filepath.Join(dir, "journal", "00000000000000000001.wal")); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
	clock := &fakeClock{now: time.Now()}
	e, metrics := startEngine(t, openStore(t, dir), writeRules(t, recordAll), func() (*actionapi.Registry, error) { return rec.registry(t), nil }, clock, 0)
	url := serve(t, e, metrics, clock)
	for i := range 2 {
		if r := post(t, url, fileCallback(t)); r.Status != http.StatusServiceUnavailable || r.OK || r.Error == "" {
			t.Errorf("copy %d on a full disk: %+v; want 503 with an error", i+1, r)
		}
	}
	if _, err := e.Accept(context.Background(), accepted(clock, "room1", "").Event, ""); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Accept on a full disk: %v, want the kernel's ENOSPC", err)
	}
	if got := metric(t, metrics, "livehook_store_errors_total"); got != 3 {
		t.Errorf("livehook_store_errors_total = %v, want 3", got)
	}
	noMoreDeliveries(t, e, rec)
	if evs := storedEvents(t, e); len(evs) != 0 {
		t.Errorf("%d events stored on a full disk", len(evs))
	}
}

func TestDedupeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	rulesPath := writeRules(t, recordAll)
	rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
	reg := func() (*actionapi.Registry, error) { return rec.registry(t), nil }
	clock := &fakeClock{now: time.Now()}
	body := fileCallback(t)

	st := openStore(t, dir)
	e, metrics := startEngine(t, st, rulesPath, reg, clock, 0)
	first := post(t, serve(t, e, metrics, clock), body)
	if first.Status != http.StatusOK || first.ID == "" {
		t.Fatalf("first callback: %+v", first)
	}
	next(t, rec)
	noMoreDeliveries(t, e, rec)
	stop(t, e)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Add(time.Hour) // Aliyun's retries stop long before; the identity holds a day
	st = openStore(t, dir)
	e, metrics = startEngine(t, st, rulesPath, reg, clock, 0)
	if again := post(t, serve(t, e, metrics, clock), body); again.Status != http.StatusOK || again.ID != first.ID {
		t.Errorf("the same callback after a restart: %+v, want 200 with the first id %s", again, first.ID)
	}
	noMoreDeliveries(t, e, rec)
	if got := metric(t, metrics, "livehook_events_duplicate_total", "source", event.SourceRecord); got != 1 {
		t.Errorf("livehook_events_duplicate_total = %v, want 1", got)
	}
	if evs := storedEvents(t, e); len(evs) != 1 {
		t.Errorf("%d events stored, want 1", len(evs))
	}
}

// accepted is an event as intake would have handed it over.
func accepted(clock *fakeClock, stream, dedupeKey string) *store.Incoming {
	ev := &event.Event{
		ID: ulid.Make().String(), Source: event.SourceRecord, Kind: event.KindStatus,
		Domain: "d", App: "live", Stream: stream, Event: "record_error", ReceivedAt: clock.Now().UTC(),
	}
	return &store.Incoming{Event: ev, DedupeKey: dedupeKey, DedupeTTL: DefaultStatusDedupe}
}

func acceptAll(t *testing.T, st store.Store, ins ...*store.Incoming) {
	t.Helper()
	for _, in := range ins {
		if _, err := st.Accept(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
}

// checkAllEvaluated checks, on a reopened store, that nothing is left to
// evaluate.
func checkAllEvaluated(t *testing.T, dir string) {
	t.Helper()
	st := openStore(t, dir)
	defer st.Close()
	if s, err := st.Stats(context.Background()); err != nil || s.Unevaluated != 0 {
		t.Errorf("reopened store: %+v, %v; want nothing left to evaluate", s, err)
	}
}

func TestStartEvaluatesEventsACrashLeftInTheJournal(t *testing.T) {
	dir := t.TempDir()
	rulesPath := writeRules(t, recordAll)
	rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
	reg := func() (*actionapi.Registry, error) { return rec.registry(t), nil }
	clock := &fakeClock{now: time.Now()}

	// Accepted and journalled, then the process died before evaluating.
	st := openStore(t, dir)
	keyed := accepted(clock, "room1", "status\x00abc")
	as := []*store.Incoming{keyed, accepted(clock, "room2", ""), accepted(clock, "room3", "")}
	acceptAll(t, st, as...)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir)
	e, _ := startEngine(t, st, rulesPath, reg, clock, 0)
	var got []string
	for range as {
		got = append(got, next(t, rec).Event.ID)
	}
	noMoreDeliveries(t, e, rec)
	want := []string{as[0].Event.ID, as[1].Event.ID, as[2].Event.ID}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("delivered %v, want each recovered event once: %v", got, want)
	}
	for _, a := range as {
		d, err := e.Event(a.Event.ID)
		if err != nil || len(d.Jobs) != 1 || d.Jobs[0].State != store.Delivered {
			t.Errorf("event %s after recovery: %+v, %v; want stored with one delivered job", a.Event.Stream, d, err)
		}
	}
	// Aliyun retrying the recovered callback gets its id.
	id, err := e.Accept(context.Background(), accepted(clock, "room1", "").Event, keyed.DedupeKey)
	if err != nil || id != keyed.Event.ID {
		t.Errorf("retry of a recovered callback: %q, %v; want its id %s", id, err, keyed.Event.ID)
	}
	noMoreDeliveries(t, e, rec)
	stop(t, e)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	checkAllEvaluated(t, dir)

	// Another restart must not deliver them again.
	e, _ = startEngine(t, openStore(t, dir), rulesPath, reg, clock, 0)
	noMoreDeliveries(t, e, rec)
}

func TestReplayEvent(t *testing.T) {
	rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
	clock := &fakeClock{now: time.Now()}
	e, _, _ := newTestEngine(t, "rules:\n  - name: alert\n    do: [ { type: record }, { type: record } ]\n", rec, clock)
	accept(t, e, "room1")
	id := next(t, rec).Event.ID
	next(t, rec)
	noMoreDeliveries(t, e, rec)

	for n := 1; n <= 2; n++ {
		jobs, err := e.ReplayEvent(id)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{fmt.Sprintf("%s.alert.0.r%d", id, n), fmt.Sprintf("%s.alert.1.r%d", id, n)}
		if got := jobIDs(jobs); !slices.Equal(got, want) {
			t.Fatalf("replay %d made jobs %v, want %v", n, got, want)
		}
		for _, j := range jobs {
			if j.State != store.Pending || len(j.Attempts) != 0 {
				t.Errorf("replay %d returned job %s %s with %d attempts, want it as created: pending, none", n, j.ID, j.State, len(j.Attempts))
			}
		}
		delivered := []string{next(t, rec).DeliveryID, next(t, rec).DeliveryID}
		slices.Sort(delivered)
		if !slices.Equal(delivered, want) {
			t.Errorf("replay %d delivered %v, want %v (new idempotency keys)", n, delivered, want)
		}
		noMoreDeliveries(t, e, rec)
	}
	d, err := e.Event(id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Replays != 2 || len(d.Jobs) != 6 {
		t.Errorf("event after two replays: replays=%d with %d jobs, want 2 and 6", d.Replays, len(d.Jobs))
	}
	for _, j := range d.Jobs {
		if j.State != store.Delivered || j.Tries() != 1 {
			t.Errorf("job %s: %s after %d tries, want delivered after 1", j.ID, j.State, j.Tries())
		}
	}
	if _, err := e.ReplayEvent("01JDZ0000000000000000000000"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replaying an unknown event: %v, want ErrNotFound", err)
	}
}

func jobIDs(jobs []*store.Job) []string {
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func TestReplayDeadLetter(t *testing.T) {
	// "flaky" fails until the test fixes it; "record" always succeeds and
	// blocks while the test holds its gate.
	flaky := &recorder{deliveries: make(chan actionapi.Input, 10), outcome: actionapi.Retryable}
	ok := &recorder{deliveries: make(chan actionapi.Input, 10), entered: make(chan struct{}, 10)}
	reg := func() (*actionapi.Registry, error) {
		r := actionapi.NewRegistry()
		for name, inst := range map[string]*recorder{"flaky": flaky, "record": ok} {
			if err := r.Add(actionapi.Type{Name: name, Open: func(actionapi.Settings) (actionapi.Instance, error) { return inst, nil }}); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	clock := &fakeClock{now: time.Now()}
	st := openStore(t, t.TempDir())
	e, metrics := startEngine(t, st, writeRules(t, `
actions:
  hook:
    type: flaky
    delivery: { max_attempts: 2, backoff: 1ms, max_backoff: 1ms }
rules:
  - name: fails
    when: stream == "room1"
    do: [ { action: hook } ]
  - name: works
    when: stream != "room1"
    do: [ { type: record } ]
`), reg, clock, 0)

	accept(t, e, "room1")
	deadID := next(t, flaky).DeliveryID
	next(t, flaky)
	accept(t, e, "room2")
	deliveredID := next(t, ok).DeliveryID
	wait(t, ok.entered, "the delivery of room2")
	drained(t, e)
	dead, err := e.DeadLetters(store.DeadFilter{})
	if err != nil || !slices.Equal(jobIDs(dead), []string{deadID}) || dead[0].Tries() != 2 {
		t.Fatalf("dead letters: %v, %v; want %s after 2 tries", jobIDs(dead), err, deadID)
	}

	ok.gate.Lock() // hold the next delivery of "works" in flight: its job is pending
	accept(t, e, "room3")
	wait(t, ok.entered, "the delivery of room3")
	inFlight, err := e.Events(store.EventFilter{Limit: 1})
	if err != nil || len(inFlight) != 1 {
		t.Fatal(err)
	}
	pendingID := inFlight[0].Event.ID + ".works.0"
	refused := []struct {
		name string
		id   string
		want error
	}{
		{name: "delivered", id: deliveredID, want: store.ErrNotDead},
		{name: "pending", id: pendingID, want: store.ErrNotDead},
		{name: "unknown", id: "01JDZ0000000000000000000000.works.0", want: store.ErrNotFound},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if j, err := e.ReplayDeadLetter(tc.id); !errors.Is(err, tc.want) {
				t.Errorf("ReplayDeadLetter(%s) = %+v, %v; want %v", tc.name, j, err, tc.want)
			}
		})
	}
	ok.gate.Unlock()
	next(t, ok)
	noMoreDeliveries(t, e, ok)
	noMoreDeliveries(t, e, flaky)
	if got := metric(t, metrics, "livehook_dead_letters"); got != 1 {
		t.Errorf("livehook_dead_letters = %v, want 1", got)
	}

	// Still failing: the replay gets a fresh allowance of 2 tries, not
	// what was left of the first (none).
	j, err := e.ReplayDeadLetter(deadID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.Pending || j.Tries() != 0 || len(j.Attempts) != 2 {
		t.Errorf("replayed job: %s, %d tries of %d attempts; want pending, 0 tries, history of 2 kept", j.State, j.Tries(), len(j.Attempts))
	}
	next(t, flaky)
	next(t, flaky)
	noMoreDeliveries(t, e, flaky)
	if j, err = st.Job(context.Background(), deadID); err != nil || j.State != store.Dead || j.Tries() != 2 || len(j.Attempts) != 4 {
		t.Fatalf("after the replay failed: %+v, %v; want dead after 2 more tries (4 attempts)", j, err)
	}

	flaky.outcome = actionapi.Delivered // no attempt is running: drained above
	if _, err := e.ReplayDeadLetter(deadID); err != nil {
		t.Fatal(err)
	}
	if in := next(t, flaky); in.DeliveryID != deadID {
		t.Errorf("replay delivered %s, want the dead letter's own key %s", in.DeliveryID, deadID)
	}
	noMoreDeliveries(t, e, flaky)
	if j, err = st.Job(context.Background(), deadID); err != nil || j.State != store.Delivered || j.Tries() != 1 || len(j.Attempts) != 5 {
		t.Errorf("after a replay that worked: %+v, %v; want delivered on its first try (5 attempts in all)", j, err)
	}
	if dead, err := e.DeadLetters(store.DeadFilter{}); err != nil || len(dead) != 0 {
		t.Errorf("dead letters after the replay: %v, %v", jobIDs(dead), err)
	}
	if got := metric(t, metrics, "livehook_dead_letters"); got != 0 {
		t.Errorf("livehook_dead_letters = %v, want 0", got)
	}
}

func TestRetentionPrunesFinishedEvents(t *testing.T) {
	done := &recorder{deliveries: make(chan actionapi.Input, 10)}
	stuck := &recorder{deliveries: make(chan actionapi.Input, 10), outcome: actionapi.Permanent}
	reg := func() (*actionapi.Registry, error) {
		r := actionapi.NewRegistry()
		for name, inst := range map[string]*recorder{"record": done, "reject": stuck} {
			if err := r.Add(actionapi.Type{Name: name, Open: func(actionapi.Settings) (actionapi.Instance, error) { return inst, nil }}); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	rulesPath := writeRules(t, `
rules:
  - name: ok
    when: stream == "done"
    do: [ { type: record } ]
  - name: dead
    when: stream == "stuck"
    do: [ { type: reject } ]
`)
	clock := &fakeClock{now: time.Now()}
	st := openStore(t, t.TempDir())
	e, _ := startEngine(t, st, rulesPath, reg, clock, time.Hour)
	accept(t, e, "done")
	accept(t, e, "stuck")
	finished, dead := next(t, done).Event.ID, next(t, stuck).Event.ID
	drained(t, e)
	stop(t, e)

	tests := []struct {
		name       string
		advance    time.Duration
		wantPruned bool
	}{
		{name: "inside the retention", advance: 30 * time.Minute},
		{name: "past the retention", advance: time.Hour, wantPruned: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock.Add(tc.advance)
			// The pruner runs once at start; Stop waits for that run.
			e, _ := startEngine(t, st, rulesPath, reg, clock, time.Hour)
			stop(t, e)
			if _, err := st.Event(context.Background(), finished); tc.wantPruned != errors.Is(err, store.ErrNotFound) {
				t.Errorf("finished event: err %v, want pruned = %v", err, tc.wantPruned)
			}
			if _, err := st.Event(context.Background(), dead); err != nil {
				t.Errorf("event with a dead letter: %v, want it kept", err)
			}
		})
	}
}

// Throttle windows are store state: a restart inside a window keeps
// holding back, and the next delivery counts what was held back on both
// sides of the restart.
func TestThrottleWindowSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	rulesPath := writeRules(t, `
rules:
  - name: failed
    throttle: { by: [stream], window: 10m }
    do: [ { type: record } ]
`)
	rec := &recorder{deliveries: make(chan actionapi.Input, 10)}
	reg := func() (*actionapi.Registry, error) { return rec.registry(t), nil }
	clock := &fakeClock{now: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}

	st := openStore(t, dir)
	e, _ := startEngine(t, st, rulesPath, reg, clock, 0)
	accept(t, e, "room1")
	accept(t, e, "room1")
	next(t, rec)
	noMoreDeliveries(t, e, rec)
	stop(t, e)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	clock.Add(5 * time.Minute)
	e, _ = startEngine(t, openStore(t, dir), rulesPath, reg, clock, 0)
	accept(t, e, "room1")
	noMoreDeliveries(t, e, rec)
	clock.Add(6 * time.Minute)
	accept(t, e, "room1")
	if in := next(t, rec); in.Suppressed != 2 {
		t.Errorf("first delivery after the window: suppressed=%d, want 2 (one held back before the restart, one after)", in.Suppressed)
	}
	noMoreDeliveries(t, e, rec)
}
