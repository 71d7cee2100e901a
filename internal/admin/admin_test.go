package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

type fakeReloader struct {
	err   error
	calls int
}

func (f *fakeReloader) Reload() error {
	f.calls++
	return f.err
}

// fakeEvents answers with its fields and records each call, so a test sees
// what the handler passed through.
type fakeEvents struct {
	events []*store.EventRecord
	detail *store.EventDetail
	dead   []*store.Job
	job    *store.Job
	jobs   []*store.Job
	err    error
	calls  []string
}

func (f *fakeEvents) Events(flt store.EventFilter) ([]*store.EventRecord, error) {
	call := fmt.Sprintf("Events(limit=%d source=%q rule=%q", flt.Limit, flt.Source, flt.Rule)
	for _, kv := range [][2]string{{"kind", flt.Kind}, {"stream", flt.Stream}, {"outcome", flt.Outcome}, {"before", flt.Before}} {
		if kv[1] != "" {
			call += fmt.Sprintf(" %s=%q", kv[0], kv[1])
		}
	}
	if !flt.From.IsZero() || !flt.To.IsZero() {
		call += " from=" + flt.From.Format(time.RFC3339) + " to=" + flt.To.Format(time.RFC3339)
	}
	f.calls = append(f.calls, call+")")
	return f.events, f.err
}

func (f *fakeEvents) Event(id string) (*store.EventDetail, error) {
	f.calls = append(f.calls, "Event("+id+")")
	return f.detail, f.err
}

func (f *fakeEvents) DeadLetters(df store.DeadFilter) ([]*store.Job, error) {
	call := fmt.Sprint(df.Limit)
	if df.Before != "" || df.Action != "" {
		call += fmt.Sprintf(", before %q, action %q", df.Before, df.Action)
	}
	f.calls = append(f.calls, "DeadLetters("+call+")")
	return f.dead, f.err
}

func (f *fakeEvents) ReplayDeadLetter(id string) (*store.Job, error) {
	f.calls = append(f.calls, "ReplayDeadLetter("+id+")")
	return f.job, f.err
}

func (f *fakeEvents) ReplayEvent(id string) ([]*store.Job, error) {
	f.calls = append(f.calls, "ReplayEvent("+id+")")
	return f.jobs, f.err
}

var created = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func deadJob() *store.Job {
	return &store.Job{ID: "01JOB.r1.0", EventID: "01JOB", Rule: "r1", Action: "oncall", Type: "dingtalk",
		State: store.Dead, Created: created, LastError: "HTTP 400"}
}

const limitError = `{"ok": false, "error": "limit: want a number from 1 to 1000"}`

func TestRoutes(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		path     string
		notReady bool
		reload   error
		noEvents bool // Options.Events left nil
		ev       fakeEvents
		// wantBody is JSON that the reply must contain (see contains);
		// empty for /metrics, which is checked by wantText.
		wantStatus  int
		wantBody    string
		wantText    string
		wantCalls   []string // calls on Events
		wantReloads int
	}{
		{name: "healthz", method: "GET", path: "/healthz", wantStatus: 200, wantBody: `{"ok": true}`},
		{name: "readyz ready", method: "GET", path: "/readyz", wantStatus: 200, wantBody: `{"ok": true}`},
		{name: "readyz not ready", method: "GET", path: "/readyz", notReady: true,
			wantStatus: 503, wantBody: `{"ok": false, "error": "not ready"}`},
		{name: "metrics serve the gatherer", method: "GET", path: "/metrics",
			wantStatus: 200, wantText: "\nlivehook_test_probes_total 3\n"},
		{name: "reload succeeds", method: "POST", path: "/-/reload",
			wantStatus: 200, wantBody: `{"ok": true}`, wantReloads: 1},
		{name: "reload fails with every problem", method: "POST", path: "/-/reload",
			reload:     errors.New(`rules.yaml:7:9: unknown action "pager"`),
			wantStatus: 422, wantBody: `{"ok": false, "error": "rules.yaml:7:9: unknown action \"pager\""}`, wantReloads: 1},
		// The catch-all "/" outranks ServeMux's own 405, so a GET on the
		// reload path is answered as not found, and reloads nothing.
		{name: "reload by GET", method: "GET", path: "/-/reload",
			wantStatus: 405, wantBody: `{"ok": false, "error": "method not allowed: GET /-/reload (use POST)"}`},
		{name: "rules", method: "GET", path: "/api/rules",
			wantStatus: 200, wantBody: `{"rules": [{"name": "recording-failed", "actions": ["oncall"]}]}`},
		{name: "events filter passed through", method: "GET", path: "/api/events?limit=5&source=record&rule=recording-failed",
			ev:         fakeEvents{events: []*store.EventRecord{{Event: &event.Event{ID: "01EV", Source: "record"}, Matched: []string{"recording-failed"}}}},
			wantStatus: 200, wantBody: `{"events": [{"event": {"id": "01EV", "source": "record"}, "matched": ["recording-failed"]}]}`,
			wantCalls: []string{`Events(limit=5 source="record" rule="recording-failed")`}},
		{name: "events every filter passed through", method: "GET",
			path:       "/api/events?limit=2&source=record&kind=file&stream=room&rule=r&outcome=dead&from=2026-12-01T08:00:00Z&to=2026-12-01T09:30&before=01EV",
			ev:         fakeEvents{events: []*store.EventRecord{{Event: &event.Event{ID: "01EW"}}, {Event: &event.Event{ID: "01EU"}}}},
			wantStatus: 200, wantBody: `{"events": [{"event": {"id": "01EW"}}, {"event": {"id": "01EU"}}], "next": "01EU"}`,
			wantCalls: []string{`Events(limit=2 source="record" rule="r" kind="file" stream="room" outcome="dead" before="01EV" from=2026-12-01T08:00:00Z to=2026-12-01T09:30:00Z)`}},
		{name: "events unknown outcome", method: "GET", path: "/api/events?outcome=lost",
			wantStatus: 400, wantBody: `{"ok": false, "error": "outcome \"lost\": want delivered, pending, dead, none or duplicate"}`},
		{name: "events bad time", method: "GET", path: "/api/events?from=yesterday",
			wantStatus: 400, wantBody: `{"ok": false, "error": "from: want a time such as 2026-12-01T08:30:00Z or 2026-12-01T08:30 (UTC), not \"yesterday\""}`},
		{name: "events time range backwards", method: "GET", path: "/api/events?from=2026-12-02&to=2026-12-01",
			wantStatus: 400, wantBody: `{"ok": false, "error": "time range: from (2026-12-02T00:00:00Z) must be before to (2026-12-01T00:00:00Z)"}`},
		{name: "events default limit", method: "GET", path: "/api/events",
			wantStatus: 200, wantBody: `{"events": []}`, wantCalls: []string{`Events(limit=50 source="" rule="")`}},
		{name: "events limit at the maximum", method: "GET", path: "/api/events?limit=1000",
			wantStatus: 200, wantBody: `{"events": []}`, wantCalls: []string{`Events(limit=1000 source="" rule="")`}},
		{name: "events limit 0", method: "GET", path: "/api/events?limit=0", wantStatus: 400, wantBody: limitError},
		{name: "events limit negative", method: "GET", path: "/api/events?limit=-1", wantStatus: 400, wantBody: limitError},
		{name: "events limit not a number", method: "GET", path: "/api/events?limit=abc", wantStatus: 400, wantBody: limitError},
		{name: "events limit over the maximum", method: "GET", path: "/api/events?limit=1001", wantStatus: 400, wantBody: limitError},
		{name: "events store failure", method: "GET", path: "/api/events", ev: fakeEvents{err: errors.New("bolt: database not open")},
			wantStatus: 503, wantBody: `{"ok": false, "error": "bolt: database not open"}`,
			wantCalls: []string{`Events(limit=50 source="" rule="")`}},
		{name: "event detail", method: "GET", path: "/api/events/01EV",
			ev: fakeEvents{detail: &store.EventDetail{
				EventRecord: &store.EventRecord{Event: &event.Event{ID: "01EV"}, Matched: []string{"r1"}},
				Jobs:        []*store.Job{deadJob()},
			}},
			wantStatus: 200,
			wantBody:   `{"event": {"id": "01EV"}, "matched": ["r1"], "jobs": [{"id": "01JOB.r1.0", "state": "dead", "last_error": "HTTP 400"}]}`,
			wantCalls:  []string{"Event(01EV)"}},
		{name: "event not found", method: "GET", path: "/api/events/01NOPE",
			ev:         fakeEvents{err: fmt.Errorf("event 01NOPE: %w", store.ErrNotFound)},
			wantStatus: 404, wantBody: `{"ok": false, "error": "event 01NOPE: not found"}`, wantCalls: []string{"Event(01NOPE)"}},
		{name: "event store failure", method: "GET", path: "/api/events/01EV",
			ev:         fakeEvents{err: errors.New("read event: disk I/O error")},
			wantStatus: 503, wantBody: `{"ok": false, "error": "read event: disk I/O error"}`, wantCalls: []string{"Event(01EV)"}},
		{name: "event replay", method: "POST", path: "/api/events/01EV/replay",
			ev:         fakeEvents{jobs: []*store.Job{{ID: "01EV.r1.0", State: store.Pending}}},
			wantStatus: 200, wantBody: `{"ok": true, "jobs": [{"id": "01EV.r1.0", "state": "pending"}]}`,
			wantCalls: []string{"ReplayEvent(01EV)"}},
		{name: "event replay matching nothing", method: "POST", path: "/api/events/01EV/replay",
			wantStatus: 200, wantBody: `{"ok": true, "jobs": []}`, wantCalls: []string{"ReplayEvent(01EV)"}},
		{name: "event replay unknown", method: "POST", path: "/api/events/01NOPE/replay",
			ev:         fakeEvents{err: fmt.Errorf("replay 01NOPE: %w", store.ErrNotFound)},
			wantStatus: 404, wantBody: `{"ok": false, "error": "replay 01NOPE: not found"}`, wantCalls: []string{"ReplayEvent(01NOPE)"}},
		{name: "dead letters", method: "GET", path: "/api/deadletters?limit=2",
			ev:         fakeEvents{dead: []*store.Job{deadJob()}},
			wantStatus: 200, wantBody: `{"deadletters": [{"id": "01JOB.r1.0", "action": "oncall", "state": "dead", "created": "2025-03-01T12:00:00Z"}]}`,
			wantCalls: []string{"DeadLetters(2)"}},
		{name: "dead letters of an action, after a cursor", method: "GET", path: "/api/deadletters?limit=2&before=01JOB.r1.0&action=oncall",
			wantStatus: 200, wantBody: `{"deadletters": []}`, wantCalls: []string{`DeadLetters(2, before "01JOB.r1.0", action "oncall")`}},
		{name: "dead letters none, default limit", method: "GET", path: "/api/deadletters",
			wantStatus: 200, wantBody: `{"deadletters": []}`, wantCalls: []string{"DeadLetters(100)"}},
		{name: "dead letters limit over the maximum", method: "GET", path: "/api/deadletters?limit=1001", wantStatus: 400, wantBody: limitError},
		{name: "dead letter replay", method: "POST", path: "/api/deadletters/01JOB.r1.0/replay",
			ev:         fakeEvents{job: &store.Job{ID: "01JOB.r1.0", State: store.Pending}},
			wantStatus: 200, wantBody: `{"ok": true, "job": {"id": "01JOB.r1.0", "state": "pending"}}`,
			wantCalls: []string{"ReplayDeadLetter(01JOB.r1.0)"}},
		{name: "dead letter replay of a live job", method: "POST", path: "/api/deadletters/01JOB.r1.0/replay",
			ev:         fakeEvents{err: fmt.Errorf("replay 01JOB.r1.0: %w", store.ErrNotDead)},
			wantStatus: 409, wantBody: `{"ok": false, "error": "replay 01JOB.r1.0: not a dead letter"}`,
			wantCalls: []string{"ReplayDeadLetter(01JOB.r1.0)"}},
		{name: "dead letter replay unknown", method: "POST", path: "/api/deadletters/01NOPE/replay",
			ev:         fakeEvents{err: fmt.Errorf("replay 01NOPE: %w", store.ErrNotFound)},
			wantStatus: 404, wantBody: `{"ok": false, "error": "replay 01NOPE: not found"}`,
			wantCalls: []string{"ReplayDeadLetter(01NOPE)"}},
		{name: "unknown path", method: "GET", path: "/nope", wantStatus: 404, wantBody: `{"ok": false, "error": "not found: GET /nope"}`},
		{name: "event API left out", method: "GET", path: "/api/events", noEvents: true,
			wantStatus: 404, wantBody: `{"ok": false, "error": "not found: GET /api/events"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			probes := prometheus.NewCounter(prometheus.CounterOpts{Name: "livehook_test_probes_total", Help: "Probe."})
			reg.MustRegister(probes)
			probes.Add(3)
			rl := &fakeReloader{err: tt.reload}
			ev := tt.ev
			o := Options{
				Reloader: rl,
				Rules: func() any {
					return map[string]any{"rules": []map[string]any{{"name": "recording-failed", "actions": []string{"oncall"}}}}
				},
				Ready:    func() bool { return !tt.notReady },
				Gatherer: reg,
				Events:   &ev,
				Logger:   slog.New(slog.DiscardHandler),
			}
			if tt.noEvents {
				o.Events = nil
			}
			resp, body := do(t, New(o), tt.method, tt.path, "")
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantText != "" {
				if !strings.Contains(body, tt.wantText) {
					t.Errorf("body lacks %q:\n%s", tt.wantText, body)
				}
			} else {
				checkJSON(t, resp.Header.Get("Content-Type"), body, tt.wantBody)
			}
			if !reflect.DeepEqual(ev.calls, tt.wantCalls) {
				t.Errorf("Events calls %q, want %q", ev.calls, tt.wantCalls)
			}
			if rl.calls != tt.wantReloads {
				t.Errorf("%d reloads, want %d", rl.calls, tt.wantReloads)
			}
		})
	}
}

func TestRequireToken(t *testing.T) {
	const token = "s3cret-admin-token"
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		wantStatus int
	}{
		{name: "no token", method: "GET", path: "/api/rules", wantStatus: 401},
		{name: "wrong token", method: "GET", path: "/api/rules", auth: "Bearer not-the-token", wantStatus: 401},
		{name: "token without scheme", method: "GET", path: "/api/rules", auth: token, wantStatus: 401},
		{name: "right token", method: "GET", path: "/api/rules", auth: "Bearer " + token, wantStatus: 200},
		{name: "reload without token", method: "POST", path: "/-/reload", wantStatus: 401},
		{name: "reload with token", method: "POST", path: "/-/reload", auth: "Bearer " + token, wantStatus: 200},
		{name: "metrics without token", method: "GET", path: "/metrics", wantStatus: 401},
		{name: "unknown path without token", method: "GET", path: "/nope", wantStatus: 401},
		{name: "healthz open", method: "GET", path: "/healthz", wantStatus: 200},
		{name: "readyz open", method: "GET", path: "/readyz", wantStatus: 200},
		{name: "healthz with a wrong token", method: "GET", path: "/healthz", auth: "Bearer not-the-token", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rl := &fakeReloader{}
			h := RequireToken(New(Options{
				Reloader: rl,
				Rules:    func() any { return []string{} },
				Ready:    func() bool { return true },
				Gatherer: prometheus.NewRegistry(),
				Logger:   slog.New(slog.DiscardHandler),
			}), token)
			resp, body := do(t, h, tt.method, tt.path, tt.auth)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != 401 {
				return
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
			}
			checkJSON(t, resp.Header.Get("Content-Type"), body, `{"ok": false}`)
			if strings.Contains(body, token) || strings.Contains(body, "not-the-token") {
				t.Errorf("the reply shows a token: %s", body)
			}
			if rl.calls != 0 {
				t.Errorf("an unauthorised request reloaded %d times", rl.calls)
			}
		})
	}
}

// do sends one request through a real server and returns the reply with
// its body read.
func do(t *testing.T, h http.Handler, method, path, auth string) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// checkJSON checks that body is a JSON reply containing want.
func checkJSON(t *testing.T, contentType, body, want string) {
	t.Helper()
	if contentType != "application/json" {
		t.Errorf("Content-Type %q, want application/json", contentType)
	}
	var got, w any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("reply is not JSON: %v\n%s", err, body)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if !contains(got, w) {
		t.Errorf("reply\n%s\ndoes not contain %s", body, want)
	}
}

// contains reports whether got holds want: every key of a want object with
// a value that contains want's, arrays of the same length holding want's
// elements in order, other values equal. An empty list [] is not null.
func contains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !contains(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(got, want)
	}
}

func TestConsoleTakesThePathsLeft(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "console %s %s", r.Method, r.URL.Path)
	})
	h := New(Options{Reloader: &fakeReloader{}, Rules: func() any { return map[string]any{} },
		Gatherer: prometheus.NewRegistry(), Events: &fakeEvents{}, Console: console,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/", "console GET /"},
		{"GET", "/events/01ABC", "console GET /events/01ABC"},
		{"POST", "/deadletters/j1/replay", "console POST /deadletters/j1/replay"},
		{"GET", "/static/console.css", "console GET /static/console.css"},
		{"GET", "/api/nope", `"error": "not found: GET /api/nope"`},
		{"GET", "/healthz", `"ok": true`},
		{"GET", "/api/events", `"events": []`},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %s; want %s", tc.method, tc.path, w.Code, w.Body, tc.want)
		}
	}
}

func TestConsoleLogin(t *testing.T) {
	const token = "s3cret-admin-token"
	h := RequireToken(New(Options{Reloader: &fakeReloader{}, Rules: func() any { return []string{} },
		Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Console: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "the console") })}), token)
	srv := httptest.NewServer(h)
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, path string, header http.Header, form string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		if form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}
	html := http.Header{"Accept": {"text/html,application/xhtml+xml"}}

	res, body := send("GET", "/", html.Clone(), "")
	if res.StatusCode != 401 || !strings.Contains(body, `name="token"`) || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("a browser without a session: %d %s", res.StatusCode, body)
	}
	if res, body := send("POST", "/login", http.Header{}, "token=not-the-token"); res.StatusCode != 401 || len(res.Cookies()) != 0 || strings.Contains(body, "not-the-token") {
		t.Errorf("a wrong token: %d %v %s", res.StatusCode, res.Cookies(), body)
	}
	if res, _ := send("POST", "/login", http.Header{"Sec-Fetch-Site": {"cross-site"}}, "token="+token); res.StatusCode != 403 || len(res.Cookies()) != 0 {
		t.Errorf("a cross-site login: %d %v", res.StatusCode, res.Cookies())
	}
	res, _ = send("POST", "/login", http.Header{}, "token="+token)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" || len(res.Cookies()) != 1 {
		t.Fatalf("login: %d %q %v", res.StatusCode, res.Header.Get("Location"), res.Cookies())
	}
	c := res.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Value == "" || strings.Contains(c.Value, token) {
		t.Errorf("session cookie %+v", c)
	}
	withCookie := func(v string) http.Header {
		h := html.Clone()
		h.Set("Cookie", (&http.Cookie{Name: c.Name, Value: v}).String())
		return h
	}
	if res, body := send("GET", "/", withCookie(c.Value), ""); res.StatusCode != 200 || body != "the console" {
		t.Errorf("the console with a session: %d %s", res.StatusCode, body)
	}
	if res, _ := send("GET", "/api/rules", withCookie(c.Value), ""); res.StatusCode != 200 {
		t.Errorf("the API with a session: %d", res.StatusCode)
	}
	if res, _ := send("GET", "/", withCookie(c.Value+"0"), ""); res.StatusCode != 401 {
		t.Errorf("a forged session: %d", res.StatusCode)
	}
	if res, body := send("GET", "/api/rules", http.Header{"Accept": {"text/html"}}, ""); res.StatusCode != 401 || !strings.Contains(body, `"ok": false`) {
		t.Errorf("the API without credentials: %d %s", res.StatusCode, body)
	}
}

func TestReadOnly(t *testing.T) {
	rl, ev := &fakeReloader{}, &fakeEvents{}
	h := New(Options{Reloader: rl, Rules: func() any { return []string{} }, Gatherer: prometheus.NewRegistry(),
		Events: ev, ReadOnly: true, Logger: slog.New(slog.DiscardHandler),
		Reconcile: func(context.Context, time.Duration) (any, error) {
			t.Error("a read-only listener reconciled")
			return nil, nil
		}})
	for _, path := range []string{"/-/reload", "/api/events/01ABC/replay", "/api/deadletters/j1/replay", "/api/reconcile"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", path, nil))
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "read-only") {
			t.Errorf("POST %s: %d %s", path, w.Code, w.Body)
		}
	}
	if rl.calls != 0 || len(ev.calls) != 0 {
		t.Errorf("a read-only listener changed things: %d reloads, calls %v", rl.calls, ev.calls)
	}
	for _, path := range []string{"/api/rules", "/api/events", "/api/deadletters"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusOK {
			t.Errorf("GET %s read-only: %d %s", path, w.Code, w.Body)
		}
	}
}
