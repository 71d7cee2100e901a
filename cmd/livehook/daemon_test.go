package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// logSink collects a daemon's JSON log lines for assertions.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// records returns every log record so far.
func (s *logSink) records() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(s.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls the log until match holds for some record, or fails.
func (s *logSink) waitFor(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	if !testwait.Within(5*time.Second, func() bool {
		for _, r := range s.records() {
			if match(r) {
				found = r
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no log record %s within 5s; log:\n%s", what, s.buf.String())
	}
	return found
}

// count counts the records for which match holds.
func (s *logSink) count(match func(map[string]any) bool) int {
	n := 0
	for _, r := range s.records() {
		if match(r) {
			n++
		}
	}
	return n
}

// testDaemon is a daemon running in-process on loopback ports.
type testDaemon struct {
	*daemon
	log  *logSink
	stop func()
	done chan error
}

func startDaemon(t *testing.T, rulesPath string) *testDaemon {
	t.Helper()
	return startDaemonWith(t, serveConfig{rules: rulesPath, watch: true})
}

// startDaemonWith starts a daemon with c, on loopback ports.
func startDaemonWith(t *testing.T, c serveConfig) *testDaemon {
	t.Helper()
	sink := &logSink{}
	logger := slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c.listen, c.admin, c.shutdownTimeout = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second
	if c.data == "" {
		c.data = t.TempDir()
	}
	d, err := newDaemon(c, logger)
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{daemon: d, log: sink, stop: cancel, done: make(chan error, 1)}
	go func() { td.done <- d.serve(ctx) }()
	<-d.ready
	t.Cleanup(func() {
		cancel()
		if err := <-td.done; err != nil {
			t.Errorf("daemon exited with %v", err)
		}
	})
	return td
}

func (d *testDaemon) url(path string) string    { return "http://" + d.public.Addr().String() + path }
func (d *testDaemon) admURL(path string) string { return "http://" + d.admin.Addr().String() + path }

// post sends body and returns the status and decoded JSON reply.
func post(t *testing.T, url, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("POST %s: reply is not JSON: %q", url, raw)
	}
	return resp.StatusCode, m
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func msgIs(msg string) func(map[string]any) bool {
	return func(r map[string]any) bool { return r["msg"] == msg }
}

// TestEndToEndSeedCallbacks posts each of the product note's example
// callbacks to a running daemon and checks which rules fired and what
// their log actions wrote.
func TestEndToEndSeedCallbacks(t *testing.T) {
	d := startDaemon(t, filepath.Join("..", "..", "rules.example.yaml"))
	cases := []struct {
		name   string
		file   string
		rules  []string // rules that must fire, in order
		logged string   // the message the rule's log action must write
		level  string
	}{
		{name: "file generated", file: "file_flv.json", rules: []string{"flv-ready"},
			logged: "new recording live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv: 69s, 54s wall clock", level: "INFO"},
		{name: "short file stops later rules", file: "file_short_m3u8.json", rules: []string{"short-recording"},
			logged: "short file record/live/room42/0_2024-05-01-20:00:03_2024-05-01-20:00:08.m3u8 (4.5s)", level: "WARN"},
		{name: "record_started", file: "record_started.json", rules: nil},
		{name: "record_paused", file: "record_paused.json", rules: []string{"recording-paused"}, logged: "gs_stream: paused", level: "INFO"},
		{name: "record_resumed", file: "record_resumed.json", rules: []string{"recording-paused"}, logged: "gs_stream: resumed", level: "INFO"},
		{name: "record_error", file: "record_error.json", rules: []string{"recording-failed"},
			logged: "recording failed: gs_domain/gs_app/gs_stream", level: "ERROR"},
		{name: "record_error with detail", file: "record_error_detail.json", rules: []string{"recording-failed"},
			logged: "recording failed: play.example.com/live/room42 (BucketNotFound: Bucket not found)", level: "ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, reply := post(t, d.url("/callbacks/record"), "", readFile(t, filepath.Join("..", "..", "testdata", "events", tc.file)))
			id, _ := reply["id"].(string)
			if status != http.StatusOK || reply["ok"] != true || id == "" {
				t.Fatalf("reply %d %v, want 200 {ok:true,id}", status, reply)
			}
			// The event's page appears once it is evaluated, with every
			// rule that matched: only then is it safe to say which did not.
			ev := d.waitEvaluated(t, id)
			fired := slices.DeleteFunc(slices.Clone(ev.Matched), func(r string) bool { return slices.Contains(ev.Throttled, r) })
			if strings.Join(fired, ",") != strings.Join(tc.rules, ",") {
				t.Fatalf("rules fired %v (matched %v, throttled %v), want %v", fired, ev.Matched, ev.Throttled, tc.rules)
			}
			if tc.logged == "" {
				return
			}
			rec := d.log.waitFor(t, "from the log action", func(r map[string]any) bool {
				return r["msg"] == tc.logged && r["event_id"] == id
			})
			if rec["level"] != tc.level || rec["rule"] != tc.rules[0] {
				t.Errorf("log action wrote %v, want level %s rule %s", rec, tc.level, tc.rules[0])
			}
		})
	}
}

// TestEndpointsRefuseBadInput checks the documented statuses and that the
// daemon keeps serving after each bad request.
func TestEndpointsRefuseBadInput(t *testing.T) {
	d := startDaemon(t, filepath.Join("..", "..", "rules.example.yaml"))
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		errHas string
	}{
		{"empty body", "POST", "/callbacks/record", "", 400, "empty body"},
		{"not JSON", "POST", "/callbacks/record", "domain=x", 400, "not valid JSON"},
		{"array", "POST", "/callbacks/record", `[{"domain":"a"}]`, 400, "JSON array"},
		{"string", "POST", "/callbacks/record", `"hello"`, 400, "JSON string"},
		{"missing stream", "POST", "/callbacks/record", `{"domain":"d","app":"a"}`, 400, `"stream"`},
		{"duration a word", "POST", "/callbacks/record", `{"domain":"d","app":"a","stream":"s","uri":"x.flv","duration":"long"}`, 400, `"duration"`},
		{"start_time an object", "POST", "/callbacks/record", `{"domain":"d","app":"a","stream":"s","start_time":{}}`, 400, `"start_time"`},
		{"huge body", "POST", "/callbacks/record", `{"domain":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too large"},
		{"wrong method", "GET", "/callbacks/record", "", 405, "not allowed"},
		{"wrong method generic", "PUT", "/events/jobs", "{}", 405, "not allowed"},
		{"unknown path", "POST", "/callback", "{}", 404, "not found"},
		{"generic not an object", "POST", "/events/jobs", `[1,2]`, 400, "JSON array"},
		{"generic bad source", "POST", "/events/..%2f", `{}`, 404, "source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, d.url(tc.path), strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var reply map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
				t.Fatalf("reply is not JSON: %v", err)
			}
			msg, _ := reply["error"].(string)
			if resp.StatusCode != tc.status || reply["ok"] != false || !strings.Contains(msg, tc.errHas) {
				t.Errorf("got %d %v, want %d with error containing %q", resp.StatusCode, reply, tc.status, tc.errHas)
			}
		})
	}
	// Still serving, and nothing was processed for the refused requests:
	// once the daemon is drained, the good event is the only one stored.
	status, reply := post(t, d.url("/events/jobs"), "text/plain", []byte(`{"job":"done"}`))
	if status != http.StatusOK {
		t.Fatalf("after bad input the daemon answered %d to a good event", status)
	}
	d.waitDrained(t)
	if n := sumSeries(d.metrics(t), "livehook_rule_matches_total"); n != 0 {
		t.Errorf("%v rules fired for refused requests", n)
	}
	var list struct {
		Events []struct {
			Event struct{ ID string }
		}
	}
	getJSON(t, d.admURL("/api/events?limit=100"), &list)
	if len(list.Events) != 1 || list.Events[0].Event.ID != reply["id"] {
		t.Errorf("/api/events lists %+v, want only the good event %v", list.Events, reply["id"])
	}
}
