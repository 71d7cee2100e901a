package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"

	"github.com/livehook/livehook/internal/testwait"
)

// The Live callback family against the real daemon: publish callbacks
// name the ingest domain, recording callbacks the streaming domain, and
// the rules' domains: map joins them.

// fixturePath is a file of testdata/events.
func fixturePath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "testdata", "events"}, parts...)...)
}

// listedEvent is what GET /api/events shows of one event.
type listedEvent struct {
	Event     *event.Event `json:"event"`
	Matched   []string     `json:"matched"`
	Throttled []string     `json:"throttled"`
}

// evaluatedEvents waits until /api/events lists n evaluated events from
// the sources named, and returns them by source.
func evaluatedEvents(t *testing.T, d *testDaemon, n int, sources ...string) map[string]listedEvent {
	t.Helper()
	const within = 10 * time.Second
	var got map[string]listedEvent
	var body string
	if !testwait.Within(within, func() bool {
		var status int
		status, body = do(t, http.MethodGet, d.admURL("/api/events?limit=100"), nil, "")
		if status != http.StatusOK {
			t.Fatalf("GET /api/events: %d %s", status, body)
		}
		var list struct {
			Events []listedEvent `json:"events"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("GET /api/events: %v: %s", err, body)
		}
		got = map[string]listedEvent{}
		for _, e := range list.Events {
			if e.Event != nil && e.Matched != nil && slices.Contains(sources, e.Event.Source) {
				got[e.Event.Source] = e
			}
		}
		return len(got) >= n
	}) {
		t.Fatalf("within %v /api/events listed %d evaluated events from %v, want %d: %s", within, len(got), sources, n, body)
	}
	return got
}

const (
	testStreamKey = "STREAMkey0123456789"
	testRecordKey = "RECORDkey0123456789"
)

// TestPublishJoinsItsRecordingThroughDomains: a publish GET signed as
// Aliyun signs it (over the ingest domain) and a recording file callback
// for the same stream (on the streaming domain) reach the same rule key,
// by: [domain, app, stream], because domains: maps the one to the other.
func TestPublishJoinsItsRecordingThroughDomains(t *testing.T) {
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	writeFile(t, rulesPath, `domains:
  push.example.com: play.example.com
sources:
  aliyun_live_stream:
    auth:
      notify_auth_key: `+testStreamKey+`
      callback_host: push.example.com
  aliyun_live_record:
    auth:
      notify_auth_key: `+testRecordKey+`
      callback_host: 127.0.0.1
rules:
  - name: joined
    when: source in ["aliyun_live_stream", "aliyun_live_record"]
    throttle: {by: [domain, app, stream], window: 1h}
    do:
      - type: log
        with: { message: "first of {{ .domain }}/{{ .app }}/{{ .stream }}" }
`)
	d := startDaemonWith(t, serveConfig{rules: rulesPath})
	now := time.Now().Unix()
	publish := filepath.Join(dir, "publish.json")
	writeFile(t, publish, fmt.Sprintf(`{"action":"publish","ip":"203.0.113.7","id":"room42","app":"push.example.com",
  "appname":"live","time":"%d","usrargs":"callback_orderid=A1001","node":"cdnvideocenter0101","height":"720","width":"1280"}`, now))
	file := filepath.Join(dir, "file.json")
	writeFile(t, file, fmt.Sprintf(`{"domain":"play.example.com","app":"live","stream":"room42",
  "uri":"record/live/room42/0_2024-05-01-20:00:03_2024-05-01-20:30:03.flv","duration":1799.52,"start_time":%d,"stop_time":%d}`, now, now+1800))

	for _, tt := range []struct {
		name   string
		args   []string
		env    map[string]string
		status string
	}{
		{"unsigned", nil, nil, "401 Unauthorized"},
		{"signed over the callback URL's host", []string{"--key", testStreamKey, "--host", "127.0.0.1"}, nil, "401 Unauthorized"},
		{"signed with another key", []string{"--key", testRecordKey}, nil, "401 Unauthorized"},
		// send signs over the ingest domain, app in the query, by default.
		{"signed over the ingest domain", nil, map[string]string{"LIVEHOOK_SEND_KEY": testStreamKey}, "200 OK"},
	} {
		args := append(append([]string{"send", "--source", event.SourceStream, "--url", d.url("")}, tt.args...), publish)
		if stdout, stderr, code := runCLI(t, tt.env, args...); !strings.HasPrefix(stdout, tt.status) {
			t.Fatalf("publish %s: exit %d, %q %q; want %s", tt.name, code, stdout, stderr, tt.status)
		}
	}
	if stdout, stderr, code := runCLI(t, nil, "send", "--key", testRecordKey, "--url", d.url(""), file); !strings.HasPrefix(stdout, "200 OK") {
		t.Fatalf("file callback: exit %d, %q %q", code, stdout, stderr)
	}

	got := evaluatedEvents(t, d, 2, event.SourceStream, event.SourceRecord)
	pub, rec := got[event.SourceStream], got[event.SourceRecord]
	if e := pub.Event; e.Kind != event.KindStream || e.Event != "publish" || e.Domain != "play.example.com" ||
		e.IngestDomain != "push.example.com" || e.App != "live" || e.Stream != "room42" || e.Time != now ||
		e.Width != 1280 || e.ClientIP != "203.0.113.7" || e.PushArgs["callback_orderid"] != "A1001" {
		t.Errorf("the publish in /api/events: %+v", e)
	}
	if e := rec.Event; e.Kind != event.KindFile || e.Domain != "play.example.com" || e.IngestDomain != "" || e.Stream != "room42" {
		t.Errorf("the recording in /api/events: %+v", e)
	}
	// One throttle key for both: the first delivered, the second held back.
	if !slices.Contains(pub.Matched, "joined") || !slices.Contains(rec.Matched, "joined") ||
		len(pub.Throttled)+len(rec.Throttled) != 1 {
		t.Errorf("matched %v / %v, throttled %v / %v: want both matched and one of them throttled", pub.Matched, rec.Matched, pub.Throttled, rec.Throttled)
	}
}

// callbackFixtures is one example callback of each kind, as its source
// takes it.
var callbackFixtures = []struct {
	source, file, kind string
}{
	{event.SourceStream, "stream/publish.json", event.KindStream},
	{event.SourceSnapshot, "snapshot/live_snapshot.json", event.KindSnapshot},
	{event.SourceVideoModeration, "moderation/video.json", event.KindModeration},
	{event.SourceAudioModeration, "moderation/audio.json", event.KindModeration},
	{event.SourceRelay, "relay/running.json", event.KindRelay},
	{event.SourceVOD, "vod/live_record_complete.json", event.KindVOD},
}

// TestSendAndTestTakeEveryKind: `livehook send` sends each kind's example
// as its sender would (a GET with the query for stream callbacks, signed
// when the source asks), the daemon takes it, and `livehook test` decodes
// it as the daemon does, domains: included.
func TestSendAndTestTakeEveryKind(t *testing.T) {
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, `domains:
  example.aliyundoc.com: play.example.com
sources:
  aliyun_live_snapshot:
    auth:
      notify_auth_key: `+testRecordKey+`
      callback_host: 127.0.0.1
rules:
  - name: every-event
    do:
      - type: log
`)
	d := startDaemonWith(t, serveConfig{rules: rulesPath})
	for _, tt := range callbackFixtures {
		t.Run(tt.source, func(t *testing.T) {
			args := []string{"send", "--source", tt.source, "--url", d.url("")}
			if tt.source == event.SourceSnapshot {
				args = append(args, "--key", testRecordKey)
			}
			if stdout, stderr, code := runCLI(t, nil, append(args, fixturePath(tt.file))...); code != 0 || !strings.HasPrefix(stdout, "200 OK") {
				t.Errorf("send: exit %d, %q %q", code, stdout, stderr)
			}
			stdout, stderr, code := runCLI(t, nil, "test", "--json", "--source", tt.source, rulesPath, fixturePath(tt.file))
			var rep testReport
			if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || rep.Event == nil {
				t.Fatalf("test: exit %d, %v: %s %s", code, err, stdout, stderr)
			}
			if rep.Event.Source != tt.source || rep.Event.Kind != tt.kind || len(rep.Matches) != 1 {
				t.Errorf("test: %+v", rep)
			}
		})
	}
	got := evaluatedEvents(t, d, len(callbackFixtures), event.SourceStream, event.SourceSnapshot,
		event.SourceVideoModeration, event.SourceAudioModeration, event.SourceRelay, event.SourceVOD)
	if e := got[event.SourceStream].Event; e.Domain != "play.example.com" || e.IngestDomain != "example.aliyundoc.com" {
		t.Errorf("the publish was not mapped: %+v", e)
	}

	// `livehook test` maps the domain as the daemon does.
	stdout, _, _ := runCLI(t, nil, "test", "--json", "--source", event.SourceStream, rulesPath, fixturePath("stream", "publish.json"))
	var rep testReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Event.Domain != "play.example.com" || rep.Event.IngestDomain != "example.aliyundoc.com" {
		t.Errorf("test: %v %s", err, stdout)
	}
}

// TestCallbackFamilyRefusesBadInput: the daemon answers a broken callback
// of each kind 400, saying what is wrong, and a wrong method 405.
func TestCallbackFamilyRefusesBadInput(t *testing.T) {
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, "rules:\n  - name: r\n    do:\n      - type: log\n")
	d := startDaemonWith(t, serveConfig{rules: rulesPath})
	long := strings.Repeat("a", event.MaxQueryValue+1)
	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"stream: no query", "GET", "/callbacks/stream", "", 400, "no query"},
		{"stream: no stream name", "GET", "/callbacks/stream?action=publish&app=push.example.com&appname=live", "", 400, `missing required parameter "id"`},
		{"stream: a time that is no number", "GET", "/callbacks/stream?action=publish&id=s&app=d&appname=a&time=now", "", 400, `parameter "time": want a whole number`},
		{"stream: a parameter twice", "GET", "/callbacks/stream?action=publish&id=s&id=t&app=d&appname=a", "", 400, `"id" is given 2 times`},
		{"stream: an oversized query", "GET", "/callbacks/stream?action=publish&id=s&app=d&appname=a&usrargs=" + long, "", 400, `"usrargs" is 4097 bytes`},
		{"stream: POSTed", "POST", "/callbacks/stream", "{}", 405, "use GET"},
		{"snapshot: no stream", "POST", "/callbacks/snapshot", `{"domain":"d","app":"a"}`, 400, `missing required field "stream"`},
		{"video moderation: a numeric domain", "POST", "/callbacks/moderation/video", `{"DomainName":1,"AppName":"a","StreamName":"s"}`, 400, `"DomainName": want a string`},
		{"audio moderation: not JSON", "POST", "/callbacks/moderation/audio", `{"domain":`, 400, "not valid JSON"},
		{"relay: no task", "POST", "/callbacks/relay", `{"Event":"LivePullToPushRunning"}`, 400, `missing required field "TaskId"`},
		{"vod: a time in another form", "POST", "/callbacks/vod", `{"EventType":"AddLiveRecordVideoComplete","VideoId":"v","Status":"success","EventTime":"08/12/2017"}`, 400, `"EventTime": want a time such as`},
		{"vod: by GET", "GET", "/callbacks/vod", "", 405, "use POST"},
	} {
		status, reply := do(t, tt.method, d.url(tt.path), map[string]string{"Content-Type": "application/json"}, tt.body)
		var answer struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(reply), &answer); err != nil || status != tt.status || answer.OK || !strings.Contains(answer.Error, tt.msg) {
			t.Errorf("%s: %d %s; want %d saying %q", tt.name, status, reply, tt.status, tt.msg)
		}
	}
}
