package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"

	"github.com/livehook/livehook/internal/testwait"
)

const testOnDemandKey = "ONDEMANDkey0123456789"

// onDemandRules answer rec_ streams from a rule, fail for stream odd (a
// query value is text, and text > 3 fails), and leave the rest to the
// source's default_answer.
const onDemandRules = `sources:
  aliyun_live_ondemand:
    auth:
      notify_auth_key: ` + testOnDemandKey + `
      callback_host: 127.0.0.1
    default_answer: { need_record: true, formats: [flv] }
rules:
  - name: record-on-request
    when: source == "aliyun_live_ondemand" && stream startsWith "rec_"
    answer: { need_record: true, formats: [mp4], interval: { mp4: 1800 } }
  - name: picky
    when: stream == "odd" && payload.vbitrate > 3
    answer: { need_record: false }
  - name: answered
    when: kind == "ondemand"
    do:
      - type: log
        with: { message: "{{ .stream }}: record {{ .answer.need_record }} ({{ .answer.rule }})" }
`

// TestOnDemandAnsweredFromRules runs the real binary: `livehook send`
// asks as Aliyun does (a GET, signed over the callback URL's host), the
// reply is the rule's answer in Live's format, a retry gets the same
// answer and no second event, and /api/events shows the decision.
func TestOnDemandAnsweredFromRules(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, onDemandRules)
	d := startBinary(t, bin, "--rules", rulesPath, "--data", t.TempDir(), "--watch=false")
	base := "http://" + d.listen

	send := func(env []string, file string) (string, error) {
		cmd := exec.Command(bin, "send", "--source", event.SourceOnDemand, "--url", base, fixturePath("ondemand", file))
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		return string(out), err
	}
	if out, err := send(nil, "rec_stream.json"); err == nil || !strings.HasPrefix(out, "401 Unauthorized") {
		t.Fatalf("unsigned: %q, %v; want 401", out, err)
	}
	out, err := send([]string{"LIVEHOOK_SEND_KEY=" + testOnDemandKey}, "rec_stream.json")
	status, body, _ := strings.Cut(out, "\n")
	if err != nil || status != "200 OK" {
		t.Fatalf("signed: %q, %v", out, err)
	}
	assertReply(t, body, `{"ApiVersion":"1.0","NeedRecord":true,"Interval":{"Mp4":1800},"Format":["mp4"]}`)

	// Aliyun's retry of one question: the same query and timestamp.
	q := url.Values{"domain": {"test.com"}, "app": {"test123"}, "stream": {"teststream"}, "vbitrate": {"2000"}, "codec": {"h264"}}
	signed := aliHeaders("127.0.0.1", testOnDemandKey, time.Now())
	var replies []string
	for range 2 {
		code, reply := do(t, http.MethodGet, base+"/callbacks/ondemand?"+q.Encode(), signed, "")
		if code != http.StatusOK {
			t.Fatalf("GET: %d %s", code, reply)
		}
		replies = append(replies, reply)
	}
	for _, r := range replies {
		assertReply(t, r, `{"ApiVersion":"1.0","NeedRecord":true,"Format":["flv"]}`) // no rule: default_answer
	}

	q.Set("stream", "odd")
	code, reply := do(t, http.MethodGet, base+"/callbacks/ondemand?"+q.Encode(), aliHeaders("127.0.0.1", testOnDemandKey, time.Now()), "")
	if code != http.StatusOK {
		t.Fatalf("GET odd: %d %s", code, reply)
	}
	assertReply(t, reply, `{"ApiVersion":"1.0","NeedRecord":true,"Format":["flv"]}`) // the rule failed: default_answer

	for _, tt := range []struct {
		method, query string
		status        int
		msg           string
	}{
		{http.MethodGet, "domain=d&app=a", http.StatusBadRequest, `missing required parameter \"stream\"`},
		{http.MethodGet, "domain=d&app=a&stream=s&vbitrate=fast", http.StatusBadRequest, `\"vbitrate\": want the video bitrate in kbps`},
		{http.MethodPost, "domain=d&app=a&stream=s", http.StatusMethodNotAllowed, "use GET"},
	} {
		code, body := do(t, tt.method, base+"/callbacks/ondemand?"+tt.query, aliHeaders("127.0.0.1", testOnDemandKey, time.Now()), "")
		if code != tt.status || !strings.Contains(body, tt.msg) {
			t.Errorf("%s ?%s: %d %s; want %d with %s", tt.method, tt.query, code, body, tt.status, tt.msg)
		}
	}

	// Three questions, one event each: the retry is the first copy.
	got := onDemandEvents(t, d.admin, 3)
	for stream, want := range map[string]event.Answer{
		"rec_room42": {NeedRecord: true, Formats: []string{"mp4"}, Interval: map[string]int64{"mp4": 1800}, Rule: "record-on-request"},
		"teststream": {NeedRecord: true, Formats: []string{"flv"}, Default: true},
	} {
		e, ok := got[stream]
		if !ok || !reflect.DeepEqual(e.Event.Answer, want) {
			t.Errorf("/api/events: %s answered %+v, want %+v", stream, e.Event.Answer, want)
		}
		if len(e.Matched) != 1 || e.Matched[0] != "answered" {
			t.Errorf("/api/events: %s matched %v, want the rule with steps only", stream, e.Matched)
		}
	}
	if odd := got["odd"].Event.Answer; !odd.Default || !strings.Contains(odd.Error, `rule "picky": when:`) {
		t.Errorf("/api/events: odd answered %+v, want the default and why", odd)
	}
	if n := sumSeries(scrapeMetrics(t, d.admin, ""), `livehook_rule_evaluation_errors_total{rule="picky"}`); n != 1 {
		t.Errorf("livehook_rule_evaluation_errors_total{rule=picky} = %v, want 1", n)
	}
	if n := sumSeries(scrapeMetrics(t, d.admin, ""), `livehook_events_duplicate_total{source="aliyun_live_ondemand"}`); n != 1 {
		t.Errorf("livehook_events_duplicate_total{source=aliyun_live_ondemand} = %v, want 1", n)
	}

	// `livehook test` shows the answer the daemon gives.
	cmd := exec.Command(bin, "test", "--source", event.SourceOnDemand, rulesPath, fixturePath("ondemand", "rec_stream.json"))
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out),
		`answer: {"ApiVersion":"1.0","NeedRecord":true,"Interval":{"Mp4":1800},"Format":["mp4"]} (rule record-on-request)`) {
		t.Errorf("livehook test: %v\n%s", err, out)
	}
}

// assertReply checks a reply is Live's answer want, and fits what Live
// reads of it.
func assertReply(t *testing.T, reply, want string) {
	t.Helper()
	var got, exp map[string]any
	if err := json.Unmarshal([]byte(reply), &got); err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("reply %s, want %s", reply, want)
	}
	if len(reply) > 2048 {
		t.Errorf("reply is %d bytes: Live cuts it at 2048", len(reply))
	}
}

// onDemandEvents waits until /api/events lists n evaluated on-demand
// events and returns them by stream.
func onDemandEvents(t *testing.T, admin string, n int) map[string]listedEvent {
	t.Helper()
	const within = 10 * time.Second
	var got map[string]listedEvent
	var body []byte
	if !testwait.Within(within, func() bool {
		var status int
		status, body = adminGet(t, admin, "", "/api/events?source="+event.SourceOnDemand)
		if status != http.StatusOK {
			t.Fatalf("GET /api/events: %d %s", status, body)
		}
		var list struct {
			Events []listedEvent `json:"events"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatalf("GET /api/events: %v: %s", err, body)
		}
		got = map[string]listedEvent{}
		for _, e := range list.Events {
			if e.Event != nil && e.Matched != nil {
				got[e.Event.Stream] = e
			}
		}
		if len(list.Events) > n && len(got) == len(list.Events) {
			t.Fatalf("/api/events lists %d on-demand events, want %d: %s", len(list.Events), n, body)
		}
		return len(list.Events) >= n && len(got) == len(list.Events)
	}) {
		t.Fatalf("within %v /api/events listed %d evaluated on-demand events, want %d: %s", within, len(got), n, body)
	}
	return got
}
