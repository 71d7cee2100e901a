package intake_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/internal/intake"
)

// fakeAcceptor records what it was given and fails when told to.
type fakeAcceptor struct {
	mu     sync.Mutex
	events []*event.Event
	err    error
}

func (a *fakeAcceptor) Accept(_ context.Context, ev *event.Event, _ string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return "", a.err
	}
	a.events = append(a.events, ev)
	return fmt.Sprintf("ev-%d", len(a.events)), nil
}

func (a *fakeAcceptor) got() []*event.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*event.Event(nil), a.events...)
}

var fixedNow = time.Date(2024, 5, 1, 20, 0, 9, 0, time.FixedZone("CST", 8*3600))

type fixture struct {
	srv *httptest.Server
	acc *fakeAcceptor
	reg *prometheus.Registry
}

func newFixture(t *testing.T, maxBody int64, accErr error) *fixture {
	t.Helper()
	f := &fixture{acc: &fakeAcceptor{err: accErr}, reg: prometheus.NewRegistry()}
	h := intake.New(intake.Options{
		Acceptor: f.acc,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:  f.reg,
		MaxBody:  maxBody,
		Now:      func() time.Time { return fixedNow },
	})
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// reply is a decoded intake answer.
type reply struct {
	status int
	header http.Header
	OK     bool   `json:"ok"`
	ID     string `json:"id"`
	Error  string `json:"error"`
	raw    string
}

func (f *fixture) do(t *testing.T, method, path, contentType, body string) reply {
	t.Helper()
	return f.send(t, method, path, contentType, strings.NewReader(body))
}

// send is do with the body read from r: one that is not a strings.Reader
// (or bytes.Reader) goes chunked, without a Content-Length.
func (f *fixture) send(t *testing.T, method, path, contentType string, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply is not JSON: %q", b)
	}
	return r
}

func seed(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/events", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAccepts(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		source      string
		kind        string
	}{
		{"file callback", "/callbacks/record", "application/json", seed(t, "file_flv.json"), event.SourceRecord, event.KindFile},
		{"status callback", "/callbacks/record", "application/json", seed(t, "record_error.json"), event.SourceRecord, event.KindStatus},
		{"no Content-Type", "/callbacks/record", "", seed(t, "record_started.json"), event.SourceRecord, event.KindStatus},
		{"form Content-Type", "/callbacks/record", "application/x-www-form-urlencoded", seed(t, "file_short_m3u8.json"), event.SourceRecord, event.KindFile},
		{"text Content-Type", "/callbacks/record", "text/plain; charset=utf-8", seed(t, "record_paused.json"), event.SourceRecord, event.KindStatus},
		{"generic event", "/events/cam-1.room_2", "application/json", `{"stream":"s","whatever":[1]}`, "cam-1.room_2", event.KindEvent},
		{"generic event with a 64-byte source", "/events/" + strings.Repeat("a", 64), "", `{}`, strings.Repeat("a", 64), event.KindEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0, nil)
			r := f.do(t, http.MethodPost, tt.path, tt.contentType, tt.body)
			if want := `{"id":"ev-1","ok":true}` + "\n"; r.status != http.StatusOK || r.raw != want {
				t.Fatalf("reply %d %q, want 200 %q", r.status, r.raw, want)
			}
			evs := f.acc.got()
			if len(evs) != 1 {
				t.Fatalf("acceptor got %d events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.Source != tt.source || ev.Kind != tt.kind {
				t.Errorf("source/kind = %q/%q, want %q/%q", ev.Source, ev.Kind, tt.source, tt.kind)
			}
			if !ev.ReceivedAt.Equal(fixedNow) || ev.ReceivedAt.Location() != time.UTC {
				t.Errorf("ReceivedAt = %v, want %v in UTC", ev.ReceivedAt, fixedNow)
			}
			if got := counter(t, f.reg, "livehook_events_received_total", map[string]string{"source": tt.source}); got != 1 {
				t.Errorf("received{source=%q} = %v, want 1", tt.source, got)
			}
		})
	}
}

func TestRefuses(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		status    int
		error     string // the reply's error must contain this
		source    string // metric labels of the refusal
		reason    string
		allowPost bool
	}{
		{"bad JSON", "POST", "/callbacks/record", `{"domain":`, 400, "body is not valid JSON", event.SourceRecord, "invalid_json", false},
		{"empty body", "POST", "/callbacks/record", ``, 400, "empty body", event.SourceRecord, "empty_body", false},
		{"JSON array", "POST", "/callbacks/record", `[{"domain":"d","app":"a","stream":"s"}]`, 400, "body is a JSON array: want a JSON object", event.SourceRecord, "not_object", false},
		{"missing field", "POST", "/callbacks/record", `{"domain":"d","app":"a"}`, 400, `missing required field "stream"`, event.SourceRecord, "missing_field", false},
		{"mistyped field", "POST", "/callbacks/record", `{"domain":"d","app":"a","stream":"s","duration":"long"}`, 400, `field "duration"`, event.SourceRecord, "bad_field", false},
		{"generic event that is not an object", "POST", "/events/cam", `"x"`, 400, "body is a JSON string", "cam", "not_object", false},
		{"GET", "GET", "/callbacks/record", ``, 405, "method GET not allowed: use POST", event.SourceRecord, "method", true},
		{"PUT on events", "PUT", "/events/cam", `{}`, 405, "method PUT not allowed", "cam", "method", true},
		{"unknown path", "POST", "/callbacks/recordings", `{}`, 404, "not found", "none", "not_found", false},
		{"root", "GET", "/", ``, 404, "not found", "none", "not_found", false},
		{"trailing slash", "POST", "/callbacks/record/", `{}`, 404, "not found", "none", "not_found", false},
		{"empty source", "POST", "/events/", `{}`, 404, "unknown source", "invalid", "bad_source", false},
		{"source with a slash", "POST", "/events/a/b", `{}`, 404, "unknown source", "invalid", "bad_source", false},
		{"source starting with a dot", "POST", "/events/.hidden", `{}`, 404, "unknown source", "invalid", "bad_source", false},
		{"source too long", "POST", "/events/" + strings.Repeat("a", 65), `{}`, 404, "unknown source", "invalid", "bad_source", false},
		{"source with a space", "POST", "/events/a%20b", `{}`, 404, "unknown source", "invalid", "bad_source", false},
		{"the record source under events", "POST", "/events/aliyun_live_record", seed(t, "file_flv.json"), 404, "unknown source", "invalid", "bad_source", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0, nil)
			r := f.do(t, tt.method, tt.path, "application/json", tt.body)
			if r.status != tt.status || r.OK || !strings.Contains(r.Error, tt.error) {
				t.Errorf("reply %d %s, want %d with an error containing %q", r.status, r.raw, tt.status, tt.error)
			}
			if got := r.header.Get("Allow"); (got == "POST") != tt.allowPost {
				t.Errorf("Allow = %q", got)
			}
			if n := len(f.acc.got()); n != 0 {
				t.Errorf("acceptor got %d events", n)
			}
			if got := counter(t, f.reg, "livehook_events_rejected_total", map[string]string{"source": tt.source, "reason": tt.reason}); got != 1 {
				t.Errorf("rejected{source=%q,reason=%q} = %v, want 1; all: %v", tt.source, tt.reason, got, series(t, f.reg, "livehook_events_rejected_total"))
			}
			if got := series(t, f.reg, "livehook_events_received_total"); len(got) != 0 {
				t.Errorf("received counted a refusal: %v", got)
			}
		})
	}
}

// idAcceptor takes every event as the same id.
type idAcceptor string

func (a idAcceptor) Accept(context.Context, *event.Event, string) (string, error) {
	return string(a), nil
}

// The answer to an accept is the bytes json.Encoder writes for
// {"ok":true,"id":id}, whatever the id holds.
func TestAcceptAnswerBytes(t *testing.T) {
	for _, id := range []string{"ev-1", "01JE4ZK8R5N0Q9V6W2X3Y4Z5A6", "", `a"b\c`, "<b>&amp;", "tab\there", "é", "\u2028", "\x7f", "\xff"} {
		var want strings.Builder
		if err := json.NewEncoder(&want).Encode(map[string]any{"ok": true, "id": id}); err != nil {
			t.Fatal(err)
		}
		h := intake.New(intake.Options{Acceptor: idAcceptor(id), Logger: slog.New(slog.DiscardHandler)})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/callbacks/record", strings.NewReader(seed(t, "file_flv.json"))))
		if rec.Code != http.StatusOK || rec.Body.String() != want.String() || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("id %q: reply %d %q (%s), want 200 %q", id, rec.Code, rec.Body, rec.Header().Get("Content-Type"), want.String())
		}
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 200
	valid := func(n int) string { // a valid callback padded to n bytes
		b := `{"domain":"d","app":"a","stream":"s"}`
		return b + strings.Repeat(" ", n-len(b))
	}
	tests := []struct {
		name    string
		body    string
		chunked bool // no Content-Length
		status  int
		error   string
	}{
		{"at the limit", valid(limit), false, 200, ""},
		{"one byte over", valid(limit + 1), false, 413, "body too large: the limit is 200 bytes"},
		{"far over", valid(10 * limit), false, 413, "body too large"},
		{"chunked, at the limit", valid(limit), true, 200, ""},
		{"chunked, one byte over", valid(limit + 1), true, 413, "body too large: the limit is 200 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, limit, nil)
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length
			}
			r := f.send(t, "POST", "/callbacks/record", "", body)
			if r.status != tt.status || !strings.Contains(r.Error, tt.error) {
				t.Errorf("reply %d %s, want %d %q", r.status, r.raw, tt.status, tt.error)
			}
			if tt.status == 413 {
				if got := counter(t, f.reg, "livehook_events_rejected_total", map[string]string{"source": event.SourceRecord, "reason": "too_large"}); got != 1 {
					t.Errorf("rejected too_large = %v, want 1", got)
				}
			}
		})
	}
	f := newFixture(t, 0, nil)
	r := f.do(t, "POST", "/callbacks/record", "", valid(intake.DefaultMaxBody+1))
	if r.status != 413 || !strings.Contains(r.Error, "the limit is 64 KiB") {
		t.Errorf("default limit: reply %d %s", r.status, r.raw)
	}
}

// A Content-Length that does not match the body: one cut short is
// refused, not decoded; one claiming far more than the limit is refused
// once the limit is read, allocating no more than that.
func TestBodyLengthLies(t *testing.T) {
	tests := []struct {
		name   string
		length int64
		body   string
		status int
		error  string
	}{
		{"cut short", 210, `{"domain":"d","app":"a","stream":"s"}`, 400, "could not read the body: unexpected EOF"},
		{"claims a petabyte", 1 << 50, strings.Repeat(" ", 300), 413, "body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 200, nil)
			conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /callbacks/record HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", tt.length, tt.body)
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.error) {
				t.Errorf("reply %d %s, want %d %q", resp.StatusCode, b, tt.status, tt.error)
			}
			if n := len(f.acc.got()); n != 0 {
				t.Errorf("acceptor got %d events", n)
			}
		})
	}
}

func TestAcceptorFailure(t *testing.T) {
	f := newFixture(t, 0, errors.New("journal: write /var/lib/livehook/seg-7: no space left on device"))
	r := f.do(t, "POST", "/callbacks/record", "", seed(t, "file_flv.json"))
	if r.status != http.StatusServiceUnavailable || r.OK || !strings.Contains(r.Error, "retry later") {
		t.Errorf("reply %d %s, want 503 asking for a retry", r.status, r.raw)
	}
	for _, leak := range []string{"journal", "/var/lib", "no space"} {
		if strings.Contains(r.raw, leak) {
			t.Errorf("reply leaks the internal error (%q): %s", leak, r.raw)
		}
	}
	if got := counter(t, f.reg, "livehook_events_rejected_total", map[string]string{"source": event.SourceRecord, "reason": "unavailable"}); got != 1 {
		t.Errorf("rejected unavailable = %v, want 1", got)
	}
	if got := series(t, f.reg, "livehook_events_received_total"); len(got) != 0 {
		t.Errorf("received counted an event the acceptor refused: %v", got)
	}
}

func TestMetricsCount(t *testing.T) {
	f := newFixture(t, 0, nil)
	for range 3 {
		f.do(t, "POST", "/callbacks/record", "", seed(t, "record_error.json"))
	}
	f.do(t, "POST", "/events/cam", "", `{}`)
	f.do(t, "POST", "/callbacks/record", "", `{}`)
	f.do(t, "POST", "/callbacks/record", "", `[]`)
	f.do(t, "POST", "/callbacks/record", "", `{"app":"a"}`)
	want := map[string]float64{
		"received source=aliyun_live_record":                      3,
		"received source=cam":                                     1,
		"rejected reason=missing_field,source=aliyun_live_record": 2,
		"rejected reason=not_object,source=aliyun_live_record":    1,
	}
	got := map[string]float64{}
	for k, v := range series(t, f.reg, "livehook_events_received_total") {
		got["received "+k] = v
	}
	for k, v := range series(t, f.reg, "livehook_events_rejected_total") {
		got["rejected "+k] = v
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics = %v, want %v", got, want)
	}
}

// Anyone can post to /events/<anything>; the source label must not grow
// without bound.
func TestSourceLabelIsCapped(t *testing.T) {
	f := newFixture(t, 0, nil)
	for i := range 150 {
		r := f.do(t, "POST", fmt.Sprintf("/events/src-%03d", i), "", `{}`)
		if r.status != 200 {
			t.Fatalf("post %d: %d %s", i, r.status, r.raw)
		}
		f.do(t, "GET", fmt.Sprintf("/events/src-%03d", i), "", ``)
	}
	received := series(t, f.reg, "livehook_events_received_total")
	if len(received) > 101 {
		t.Errorf("received has %d source labels, want at most 101", len(received))
	}
	if received["source=other"] == 0 {
		t.Errorf("no source=other series once the cap is reached")
	}
	if received["source=src-000"] != 1 {
		t.Errorf("the first sources keep their own label: %v", received["source=src-000"])
	}
	total := 0.0
	for _, v := range received {
		total += v
	}
	if total != 150 {
		t.Errorf("received total = %v, want 150: capping must not lose counts", total)
	}
	sources := map[string]bool{}
	for k := range series(t, f.reg, "livehook_events_rejected_total") {
		sources[strings.Split(k, ",")[1]] = true
	}
	if len(sources) > 101 {
		t.Errorf("rejected has %d source labels, want at most 101", len(sources))
	}
	if len(f.acc.got()) != 150 {
		t.Errorf("acceptor got %d events, want 150", len(f.acc.got()))
	}
}

func TestNewWithoutMetricsOrLogger(t *testing.T) {
	acc := &fakeAcceptor{}
	srv := httptest.NewServer(intake.New(intake.Options{Acceptor: acc}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/callbacks/record", "", strings.NewReader(seed(t, "record_error.json")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(acc.got()) != 1 || acc.got()[0].ReceivedAt.IsZero() {
		t.Errorf("status %d, events %v", resp.StatusCode, acc.got())
	}
}

// series returns the values of a counter vector by their label pairs,
// "k=v,k2=v2" with keys sorted.
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, l := range m.GetLabel() { // Gather sorts labels by name
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(pairs, ",")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	var pairs []string
	for _, k := range []string{"reason", "source"} {
		if v, ok := labels[k]; ok {
			pairs = append(pairs, k+"="+v)
		}
	}
	return series(t, reg, name)[strings.Join(pairs, ",")]
}
