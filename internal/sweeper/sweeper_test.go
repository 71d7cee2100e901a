package sweeper_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	_ "github.com/livehook/livehook/actions/all"
	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/intake"
	"github.com/livehook/livehook/internal/sweeper"
	"github.com/livehook/livehook/internal/sweeper/livetest"
	_ "github.com/livehook/livehook/sources/all"

	"github.com/livehook/livehook/internal/testwait"
)

const (
	testAK = "LTAI5tLiveSweepKey01"
	testSK = "s3cr3t-live-sweep-never-shown-01"
	play   = "play.example.com"
	push   = "push.example.com"
)

// rig is an engine with its store, an intake in front of it, the fake
// Live API and a sweeper between them.
type rig struct {
	t       *testing.T
	eng     *engine.Engine
	live    *livetest.Server
	sweeper *sweeper.Sweeper
	metrics *prometheus.Registry
	log     *lockedWriter
}

func (r *rig) logged() string {
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	return r.log.w.(*bytes.Buffer).String()
}

func newRig(t *testing.T, sweeperYAML string, opts sweeper.Options) *rig {
	t.Helper()
	live := livetest.New(t, testAK, testSK, play, push)
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	src := fmt.Sprintf("sweeper:\n  region: cn-shanghai\n  endpoint: %s\n  access_key_id: %s\n  access_key_secret: %s\n%s"+
		"rules:\n  - name: late\n    when: reconciled\n    do: [{type: log, with: {message: \"late {{ .kind }}\"}}]\n",
		live.URL, testAK, testSK, sweeperYAML)
	if err := os.WriteFile(rulesPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedWriter{w: &bytes.Buffer{}}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	eng, err := engine.New(engine.Options{RulesPath: rulesPath, Store: st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eng.Stop(ctx)
		st.Close()
	})
	reg := prometheus.NewRegistry()
	opts.Engine = eng
	opts.Config = func() *rules.Sweeper { return eng.Rules().Sweeper }
	opts.Logger, opts.Metrics = logger, reg
	if opts.Retention == 0 {
		opts.Retention = engine.DefaultRetention
	}
	return &rig{t: t, eng: eng, live: live, sweeper: sweeper.New(opts), metrics: reg, log: logs}
}

// receive hands a callback to intake as Aliyun would have sent it at at.
func (r *rig) receive(at time.Time, method, path string, query url.Values, header http.Header, body string) string {
	r.t.Helper()
	h := intake.New(intake.Options{Acceptor: r.eng, Now: func() time.Time { return at }})
	target := path
	if query != nil {
		target += "?" + query.Encode()
	}
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		r.t.Fatalf("intake answered %d: %s", w.Code, w.Body)
	}
	var reply struct{ ID string }
	if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || reply.ID == "" {
		r.t.Fatalf("intake reply %s: %v", w.Body, err)
	}
	return reply.ID
}

// sweep sweeps and waits until the engine has evaluated what it added.
func (r *rig) sweep(lookBack time.Duration) *sweeper.Report {
	r.t.Helper()
	rep, err := r.sweeper.Sweep(context.Background(), lookBack)
	if err != nil {
		r.t.Fatalf("sweep: %v", err)
	}
	for _, id := range append(slices.Clone(rep.Added), rep.EventID) {
		if id != "" {
			r.evaluated(id)
		}
	}
	return rep
}

// evaluated waits until event id is evaluated and returns it.
func (r *rig) evaluated(id string) *store.EventDetail {
	r.t.Helper()
	var d *store.EventDetail
	var err error
	testwait.Within(10*time.Second, func() bool {
		d, err = r.eng.Event(id)
		return !errors.Is(err, store.ErrNotFound) // not found until it is evaluated
	})
	if err != nil {
		r.t.Fatalf("event %s: %v", id, err)
	}
	return d
}

// events lists the stored events of source.
func (r *rig) events(source string) []*store.EventRecord {
	r.t.Helper()
	recs, err := r.eng.Events(store.EventFilter{Limit: 1000, Source: source})
	if err != nil {
		r.t.Fatal(err)
	}
	return recs
}

func fileBody(stream, uri string) string {
	return fmt.Sprintf(`{"domain":%q,"app":"live","stream":%q,"uri":%q,"duration":69.403,"start_time":1488985786,"stop_time":1488985840}`,
		play, stream, uri)
}

// TestSweepTwoPages is the sweep against the fake of the Live API: two
// pages of records, one callback livehook received (skipped), two it
// missed (added, marked reconciled), and a second sweep that adds nothing.
func TestSweepTwoPages(t *testing.T) {
	r := newRig(t, "  domains: {aliyun_live_record: [play.example.com]}\n", sweeper.Options{PageSize: 2})
	now := time.Now().UTC().Truncate(time.Second)
	received := fileBody("room42", "record/live/room42/0_2024-05-01-20:00:03_2024-05-01-20:30:03.flv")
	missedFile := fileBody("room42", "record/live/room42/1_2024-05-01-20:30:03_2024-05-01-21:00:03.flv")
	missedError := `{"domain":"play.example.com","app":"live","stream":"room43","event":"record_error","error_info":{"code":"BucketNotFound","message":"Bucket not found"}}`
	r.receive(now.Add(-20*time.Minute), http.MethodPost, "/callbacks/record", nil, nil, received)
	r.live.Add(livetest.RecordAction, play, livetest.Record{App: "live", Stream: "room42", Content: received, Type: "file_created", Time: now.Add(-20 * time.Minute)})
	r.live.Add(livetest.RecordAction, play, livetest.Record{App: "live", Stream: "room42", Content: missedFile, Type: "file_created", Result: "failed", Time: now.Add(-15 * time.Minute)})
	r.live.Add(livetest.RecordAction, play, livetest.Record{App: "live", Stream: "room43", Content: missedError, Type: "record_error", Result: "failed", Time: now.Add(-10 * time.Minute)})

	for i := range 2 {
		rep := r.sweep(0)
		want := sweeper.Counts{Records: 3, Callbacks: 3, Skipped: 1, Reconciled: 2}
		if i == 1 {
			want = sweeper.Counts{Records: 3, Callbacks: 3, Skipped: 3}
		}
		if rep.Counts != want || *rep.Sources[event.SourceRecord] != want || len(rep.Errors) > 0 {
			t.Errorf("sweep %d: %+v, errors %v; want %+v", i+1, rep.Counts, rep.Errors, want)
		}
		if i == 0 && (len(rep.Added) != 2 || rep.EventID == "") {
			t.Errorf("sweep 1: added %v, report event %q", rep.Added, rep.EventID)
		}
		if i == 1 && (len(rep.Added) != 0 || rep.EventID != "") {
			t.Errorf("sweep 2: added %v and reported itself as %q, having added nothing", rep.Added, rep.EventID)
		}
	}

	// The Live API was asked for two pages each time, as it pages.
	calls := r.live.Calls()
	if len(calls) != 4 {
		t.Fatalf("calls = %+v, want 2 pages twice", calls)
	}
	for i, c := range calls {
		if c.Rejected != "" || c.Action != livetest.RecordAction || c.Domain != play || c.PageSize != 2 || c.PageNumber != i%2+1 {
			t.Errorf("call %d: %+v", i+1, c)
		}
		start, _ := time.Parse(time.RFC3339, c.Start)
		end, _ := time.Parse(time.RFC3339, c.End)
		if d := end.Sub(start); d < time.Hour-time.Minute || d > time.Hour+time.Minute || now.Sub(end) < rules.SweepSettle-time.Minute {
			t.Errorf("call %d asks for %s to %s: want the hour before the last %v", i+1, c.Start, c.End, rules.SweepSettle)
		}
	}

	// What livehook has now: each callback once, the two late ones marked.
	recs := r.events(event.SourceRecord)
	if len(recs) != 3 {
		t.Fatalf("%d recording events, want 3", len(recs))
	}
	var reconciled []string
	for _, rec := range recs {
		ev := rec.Event
		if !ev.Reconciled {
			if ev.Stream != "room42" || !strings.Contains(ev.URI, "/0_") {
				t.Errorf("the event received in time is %+v", ev)
			}
			continue
		}
		reconciled = append(reconciled, ev.Kind+" "+ev.Stream+" "+ev.Event)
		if !slices.Equal(rec.Matched, []string{"late"}) {
			t.Errorf("reconciled %s/%s matched %v, want the rule on reconciled", ev.Kind, ev.Stream, rec.Matched)
		}
		if ev.ReceivedAt.Before(now) {
			t.Errorf("reconciled %s: received_at %v, want when it was found", ev.Stream, ev.ReceivedAt)
		}
	}
	slices.Sort(reconciled)
	if want := []string{"file room42 ", "status room43 record_error"}; !slices.Equal(reconciled, want) {
		t.Errorf("reconciled %q, want %q", reconciled, want)
	}
	if got := counter(t, r.metrics, "livehook_reconciled_total", event.SourceRecord); got != 2 {
		t.Errorf("livehook_reconciled_total{source=aliyun_live_record} = %v, want 2", got)
	}
	// The sweep that added something reported itself as an event.
	reports := r.events(sweeper.ReportSource)
	if len(reports) != 1 || reports[0].Event.Event != "reconcile" || reports[0].Event.Payload["reconciled"] != int64(2) ||
		reports[0].Event.Payload["skipped"] != int64(1) {
		t.Errorf("report events: %+v", reports[0].Event)
	}
	if strings.Contains(r.logged(), testSK) {
		t.Error("the log shows the AccessKey secret")
	}
}

// TestSweepKnowsCallbacksAsIntakeDoes: what a record cannot say (the
// signing time of a callback, without NotifyHeader), it tells by what the
// callback is about and when it was sent; retries of one missed callback
// are one callback; two equal callbacks sent apart are two.
func TestSweepKnowsCallbacksAsIntakeDoes(t *testing.T) {
	r := newRig(t, "  domains: {aliyun_live_record: [play.example.com], aliyun_live_stream: [push.example.com]}\n", sweeper.Options{})
	now := time.Now().UTC().Truncate(time.Second)
	status := func(stream, ev string) string {
		return fmt.Sprintf(`{"domain":%q,"app":"live","stream":%q,"event":%q}`, play, stream, ev)
	}
	signed := func(at time.Time) http.Header {
		return http.Header{auth.HeaderAliTimestamp: {strconv.FormatInt(at.Unix(), 10)}}
	}
	add := func(action, domain, stream, content, typ, result string, at time.Time, header map[string][]string) {
		r.live.Add(action, domain, livetest.Record{App: "live", Stream: stream, Content: content, Type: typ, Result: result, Time: at, Header: header})
	}
	// Signed and received; the record has no headers, and its time is a
	// second after the signature's.
	t1 := now.Add(-50 * time.Minute)
	r.receive(t1, http.MethodPost, "/callbacks/record", nil, signed(t1), status("s1", "record_started"))
	add(livetest.RecordAction, play, "s1", status("s1", "record_started"), "record_started", "success", t1.Add(time.Second), nil)
	// Signed and received, the record with its headers, and a time so far
	// from the signature's that only the identity can tell.
	t2 := now.Add(-45 * time.Minute)
	r.receive(t2, http.MethodPost, "/callbacks/record", nil, signed(t2), status("s2", "record_paused"))
	add(livetest.RecordAction, play, "s2", status("s2", "record_paused"), "record_paused", "success", t2.Add(5*time.Minute),
		map[string][]string{"Content-Type": {"application/json"}, "Ali-Live-Timestamp": {strconv.FormatInt(t2.Unix(), 10)}})
	// Missed: three attempts a second apart, then given up.
	for i := range 3 {
		add(livetest.RecordAction, play, "s3", status("s3", "record_resumed"), "record_resumed", "failed", now.Add(-40*time.Minute+time.Duration(i)*time.Second), nil)
	}
	// Unsigned, twice the same body half an hour apart: the first received.
	r.receive(now.Add(-50*time.Minute), http.MethodPost, "/callbacks/record", nil, nil, status("s4", "record_error"))
	add(livetest.RecordAction, play, "s4", status("s4", "record_error"), "record_error", "success", now.Add(-50*time.Minute), nil)
	add(livetest.RecordAction, play, "s4", status("s4", "record_error"), "record_error", "failed", now.Add(-20*time.Minute), nil)
	// A stream published and received by GET; its record is a JSON object.
	pub := url.Values{"action": {"publish"}, "ip": {"203.0.113.7"}, "id": {"room42"}, "app": {push}, "appname": {"live"},
		"time": {strconv.FormatInt(now.Add(-30*time.Minute).Unix(), 10)}, "usrargs": {"vhost=play.example.com"}, "node": {"cdnvideocenter0101"}}
	r.receive(now.Add(-30*time.Minute), http.MethodGet, "/callbacks/stream", pub, nil, "")
	add(livetest.StreamAction, push, "room42", jsonOf(t, pub), "publish", "success", now.Add(-30*time.Minute), nil)
	// Its publish_done was missed, and its record names only the action
	// and the domain, as the docs' example does.
	add(livetest.StreamAction, push, "room42", `{"action":"publish_done","app":"push.example.com"}`, "publish_done", "failed", now.Add(-5*time.Minute), nil)
	// A record that cannot be read.
	add(livetest.RecordAction, play, "s5", "not a callback", "record_started", "failed", now.Add(-8*time.Minute), nil)

	rep := r.sweep(0)
	wantRec := sweeper.Counts{Records: 8, Callbacks: 5, Skipped: 3, Reconciled: 2, Failed: 1}
	wantStream := sweeper.Counts{Records: 2, Callbacks: 2, Skipped: 1, Reconciled: 1}
	if *rep.Sources[event.SourceRecord] != wantRec || *rep.Sources[event.SourceStream] != wantStream {
		t.Errorf("recording %+v, want %+v; stream %+v, want %+v; errors %v",
			*rep.Sources[event.SourceRecord], wantRec, *rep.Sources[event.SourceStream], wantStream, rep.Errors)
	}
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "s5") || !strings.Contains(rep.Errors[0], "NotifyContent") {
		t.Errorf("errors = %q, want the unreadable record named", rep.Errors)
	}
	var got []string
	for _, src := range []string{event.SourceRecord, event.SourceStream} {
		for _, rec := range r.events(src) {
			if rec.Event.Reconciled {
				got = append(got, rec.Event.Stream+" "+rec.Event.Event)
			}
		}
	}
	slices.Sort(got)
	if want := []string{"room42 publish_done", "s3 record_resumed", "s4 record_error"}; !slices.Equal(got, want) {
		t.Errorf("reconciled %q, want %q", got, want)
	}
	if again := r.sweep(0); again.Reconciled != 0 || again.Skipped != 7 || again.Failed != 1 {
		t.Errorf("second sweep: %+v, want everything skipped", again.Counts)
	}
}

// TestSweepReportsFailures: a listing that fails is counted and named,
// and the other domains are still swept.
func TestSweepReportsFailures(t *testing.T) {
	r := newRig(t, "  domains: {aliyun_live_record: [play.example.com, gone.example.com]}\n", sweeper.Options{})
	now := time.Now().UTC()
	r.live.Add(livetest.RecordAction, play, livetest.Record{App: "live", Stream: "room42", Type: "file_created",
		Content: fileBody("room42", "a/b.flv"), Time: now.Add(-10 * time.Minute)})
	r.live.FailCall(1, "Throttling.User")
	rep := r.sweep(0)
	if rep.Failed != 2 || rep.Reconciled != 0 || len(rep.Errors) != 2 {
		t.Fatalf("report %+v, errors %q; want the throttled listing and the unknown domain failed", rep.Counts, rep.Errors)
	}
	if !strings.Contains(rep.Errors[0], "Throttling.User") || !strings.Contains(rep.Errors[1], "InvalidDomain.NotFound") ||
		!strings.Contains(rep.Errors[1], "gone.example.com") {
		t.Errorf("errors %q", rep.Errors)
	}
	if reports := r.events(sweeper.ReportSource); len(reports) != 1 || reports[0].Event.Payload["failed"] != int64(2) {
		t.Errorf("report events: %+v", reports)
	}
	if rep := r.sweep(0); rep.Reconciled != 1 || rep.Failed != 1 {
		t.Errorf("the next sweep: %+v, want the file added and the unknown domain failed again", rep.Counts)
	}
	if got := counter(t, r.metrics, "livehook_reconcile_failures_total", event.SourceRecord); got != 3 {
		t.Errorf("livehook_reconcile_failures_total = %v, want 3", got)
	}
}

func TestSweepRefusals(t *testing.T) {
	r := newRig(t, "  domains: {aliyun_live_record: [play.example.com]}\n", sweeper.Options{Retention: 24 * time.Hour})
	for _, tt := range []struct {
		lookBack time.Duration
		want     string
	}{
		{time.Minute, "want more than 2m0s"},
		{169 * time.Hour, "Aliyun keeps 7 days"},
		{24 * time.Hour, "at most 23h56m0s"},
	} {
		_, err := r.sweeper.Sweep(context.Background(), tt.lookBack)
		var refusal *sweeper.Refusal
		if !errors.As(err, &refusal) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("look back %v: %v, want a refusal saying %q", tt.lookBack, err, tt.want)
		}
	}
	none := sweeper.New(sweeper.Options{Engine: r.eng, Config: func() *rules.Sweeper { return nil }})
	if _, err := none.Sweep(context.Background(), time.Hour); err == nil || !strings.Contains(err.Error(), "no sweeper:") {
		t.Errorf("without sweeper: %v", err)
	}
	if len(r.live.Calls()) != 0 {
		t.Errorf("refused sweeps called the API: %+v", r.live.Calls())
	}
}

// TestRunSweepsEveryInterval: the periodic sweep starts at once, repeats,
// and stops with its context.
func TestRunSweepsEveryInterval(t *testing.T) {
	r := newRig(t, "  domains: {aliyun_live_record: [play.example.com]}\n", sweeper.Options{})
	cfg := *r.eng.Rules().Sweeper
	cfg.Interval = 20 * time.Millisecond
	s := sweeper.New(sweeper.Options{Engine: r.eng, Config: func() *rules.Sweeper { return &cfg }, CallRate: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	if !testwait.Within(10*time.Second, func() bool { return len(r.live.Calls()) >= 3 }) {
		t.Fatalf("%d calls within 10s, want a sweep every 20ms", len(r.live.Calls()))
	}
	cancel()
	<-done
}

// counter reads name{source=source} from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, source string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if mf.GetName() == name && l.GetName() == "source" && l.GetValue() == source {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{source=%q}", name, source)
	return 0
}

// lockedWriter lets the engine's goroutines log into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// jsonOf is a query as the JSON object of its parameters.
func jsonOf(t *testing.T, q url.Values) string {
	t.Helper()
	m := map[string]string{}
	for k := range q {
		m[k] = q.Get(k)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
