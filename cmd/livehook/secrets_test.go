package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// chatFake stands in for Slack and a signed DingTalk robot: it checks the
// credentials each checks and answers as each does.
type chatFake struct {
	srv                   *httptest.Server
	slackPath, dingToken  string
	dingSecret            string
	mu                    sync.Mutex
	slackOK, dingOK, seen int
}

func newChatFake(t *testing.T, slackPath, dingToken, dingSecret string) *chatFake {
	f := &chatFake{slackPath: slackPath, dingToken: dingToken, dingSecret: dingSecret}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.seen++
		switch {
		case strings.HasPrefix(r.URL.Path, "/services/"):
			if r.URL.Path != f.slackPath {
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, "invalid_token")
				return
			}
			f.slackOK++
			io.WriteString(w, "ok")
		case r.URL.Path == "/robot/send":
			q := r.URL.Query()
			ts := q.Get("timestamp")
			m := hmac.New(sha256.New, []byte(f.dingSecret))
			io.WriteString(m, ts+"\n"+f.dingSecret)
			ms, _ := strconv.ParseInt(ts, 10, 64)
			switch {
			case q.Get("access_token") != f.dingToken:
				io.WriteString(w, `{"errcode":300001,"errmsg":"token is not exist"}`)
			case q.Get("sign") != base64.StdEncoding.EncodeToString(m.Sum(nil)) || time.Since(time.UnixMilli(ms)).Abs() > time.Hour:
				io.WriteString(w, `{"errcode":310000,"errmsg":"sign not match"}`)
			default:
				f.dingOK++
				io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
			}
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *chatFake) delivered() (slack, ding int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.slackOK, f.dingOK
}

const leakRules = `sources:
  aliyun_live_record:
    auth:
      notify_auth_keys:
        - ${LH_LEAK_NOTIFY_NEW}
        - ${LH_LEAK_NOTIFY_OLD}
      callback_host: hooks.example.com
  jobs:
    auth:
      bearer_token: ${LH_LEAK_BEARER}
actions:
  slack:
    type: slack
    url: ${LH_LEAK_SLACK_URL}
    text: "recording failed: {{ .stream }}"
  ding:
    type: dingtalk
    url: ${LH_LEAK_DING_URL}
    secret: ${LH_LEAK_DING_SECRET}
    msgtype: text
    text: "recording failed: {{ .stream }}"
  unreachable:
    type: slack
    url: ${LH_LEAK_DEAD_SLACK}
    text: "x"
    retry: { attempts: 1 }
    delivery: { max_attempts: 1 }
rules:
  - name: failed
    when: event == "record_error"
    do:
      - action: slack
      - action: ding
      - action: unreachable
`

// leakBroken misuses secrets where yaml.v3 quotes the value it refuses.
const leakBroken = `sources:
  jobs:
    enabled: ${LH_LEAK_BEARER}
    auth:
      bearer_tokens: ${LH_LEAK_NOTIFY_NEW}
actions:
  slack:
    type: slack
    url: ${LH_LEAK_SLACK_URL}
    text: x
    timeout: ${LH_LEAK_DING_SECRET}
  lg:
    type: log
    level: ${LH_LEAK_DING_URL}
rules:
  - name: r
    do: [{action: slack}, {action: lg}]
`

// TestSecretsNeverLeak runs a daemon and the CLI with every kind of secret
// configured, through successes, failures, refusals and a broken reload,
// and looks for the secrets in everything shown: logs, CLI output, API
// replies and error replies.
func TestSecretsNeverLeak(t *testing.T) {
	const adminToken = "AdminTokenLEAK0123456789"
	fake := newChatFake(t, "/services/T0LEAK/B0LEAK/SlackTokenLEAK0123456789", "DingTokenLEAK0123456789", "SECdingLEAK0123456789abcdef")
	env := map[string]string{
		"LH_LEAK_NOTIFY_NEW":  "NotifyNEW0123456789abcd",
		"LH_LEAK_NOTIFY_OLD":  "NotifyOLD0123456789abcd",
		"LH_LEAK_BEARER":      "BearerLEAK0123456789",
		"LH_LEAK_SLACK_URL":   fake.srv.URL + fake.slackPath,
		"LH_LEAK_DING_URL":    fake.srv.URL + "/robot/send?access_token=" + fake.dingToken,
		"LH_LEAK_DING_SECRET": fake.dingSecret,
		"LH_LEAK_DEAD_SLACK":  "http://127.0.0.1:1/services/T1/B1/DeadSlackLEAK0123456789",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	// What must never be shown: each value, the token inside each URL, and
	// the first 7 bytes of each key (yaml.v3 quotes long values so).
	secrets := []string{adminToken, "SlackTokenLEAK0123456789", "DingTokenLEAK0123456789", "DeadSlackLEAK0123456789"}
	for _, k := range []string{"LH_LEAK_NOTIFY_NEW", "LH_LEAK_NOTIFY_OLD", "LH_LEAK_BEARER", "LH_LEAK_DING_SECRET"} {
		secrets = append(secrets, env[k], env[k][:7])
	}
	secrets = append(secrets, env["LH_LEAK_SLACK_URL"], env["LH_LEAK_DING_URL"], env["LH_LEAK_DEAD_SLACK"])

	var shown []string // everything a person could see
	cli := func(cliEnv map[string]string, args ...string) string {
		stdout, stderr, _ := runCLI(t, cliEnv, args...)
		shown = append(shown, stdout, stderr)
		return stdout
	}
	admin := func(method, path string, token string) (int, string) {
		h := map[string]string{}
		if token != "" {
			h["Authorization"] = "Bearer " + token
		}
		status, body := do(t, method, path, h, "")
		shown = append(shown, body)
		return status, body
	}
	dir := t.TempDir()
	rulesPath, broken := filepath.Join(dir, "rules.yaml"), filepath.Join(t.TempDir(), "broken.yaml")
	writeFile(t, rulesPath, leakRules)
	writeFile(t, broken, leakBroken)
	event := filepath.Join(dir, "event.json")
	writeFile(t, event, `{"domain":"play.example.com","app":"live","stream":"room42","event":"record_error"}`)

	if out := cli(env, "check", rulesPath); !strings.HasPrefix(out, "ok:") {
		t.Fatalf("check: %s", out)
	}
	if out := cli(env, "check", broken); !strings.Contains(out, "****") {
		t.Errorf("check of the broken rules shows no redacted value:\n%s", out)
	}
	if out := cli(env, "test", rulesPath, event); !strings.Contains(out, "rule failed") {
		t.Errorf("test: %s", out)
	}
	cli(env, "test", "--json", rulesPath, event)

	d := startDaemonWith(t, serveConfig{rules: rulesPath, hardening: hardeningConfig{adminToken: adminToken}})
	recordURL := d.url("/callbacks/record")
	if out := cli(map[string]string{"LIVEHOOK_SEND_KEY": env["LH_LEAK_NOTIFY_OLD"]}, "send", "--url", recordURL, "--host", "hooks.example.com", event); !strings.HasPrefix(out, "200") {
		t.Fatalf("signed send: %s", out)
	}
	if out := cli(nil, "send", "--url", recordURL, "--key", "WrongKey0123456789", "--host", "hooks.example.com", event); !strings.HasPrefix(out, "401") {
		t.Errorf("wrongly signed send: %s", out)
	}
	cli(map[string]string{"LIVEHOOK_SEND_TOKEN": env["LH_LEAK_BEARER"]}, "send", "--url", d.url("/events/jobs"), event)
	cli(nil, "send", "--url", d.url("/events/jobs"), "--token", "WrongToken0123456789", event)

	if !testwait.Within(10*time.Second, func() bool { s, dt := fake.delivered(); return s > 0 && dt > 0 }) {
		s, dt := fake.delivered()
		t.Fatalf("the secrets were never used: slack %d, dingtalk %d deliveries", s, dt)
	}
	// Drained, the unreachable action has failed for good: its dead letter
	// is shown below, and its failure is in the log read at the end.
	d.waitDrained(t)

	for _, p := range []string{"/api/rules", "/metrics", "/api/events", "/api/deadletters",
		"/api/events?stream=room&outcome=dead", "/api/events?rule=failed&kind=status&limit=1"} {
		if status, body := admin("GET", d.admURL(p), adminToken); status != 200 {
			t.Errorf("GET %s: %d %s", p, status, body)
		}
	}
	var events struct {
		Events []struct {
			Event struct {
				ID string `json:"id"`
			} `json:"event"`
		} `json:"events"`
	}
	_, body := admin("GET", d.admURL("/api/events"), adminToken)
	if err := json.Unmarshal([]byte(body), &events); err != nil || len(events.Events) == 0 {
		t.Fatalf("/api/events: %v %s", err, body)
	}
	// Every event's page, where each delivery attempt's reply is shown.
	for _, e := range events.Events {
		if status, body := admin("GET", d.admURL("/api/events/"+e.Event.ID), adminToken); status != 200 || !strings.Contains(body, `"attempts"`) {
			t.Errorf("GET /api/events/%s: %d %s", e.Event.ID, status, body)
		}
	}
	// The console's pages, which show the same records as HTML.
	consolePages := []string{"/", "/deadletters", "/rules", "/state", "/status", "/playground",
		"/?stream=room&outcome=dead", "/?outcome=duplicate", "/?rule=failed&source=aliyun_live_record&from=2020-01-01T00:00&limit=1",
		"/deadletters?action=unreachable", "/deadletters/preview?op=replay", "/deadletters/preview?op=delete&action=unreachable"}
	for _, e := range events.Events {
		// The playground renders what every step of the rule would send, and
		// shows the fields its condition reads and any error it meets.
		play := url.Values{"id": {e.Event.ID}, "rule": {"failed"}, "when": {`event == "record_error" && push_args.x == "y"`}}
		consolePages = append(consolePages, "/events/"+e.Event.ID, "/playground?"+play.Encode(),
			"/playground?"+url.Values{"id": {e.Event.ID}, "when": {"${LH_LEAK_BEARER} == stream"}}.Encode())
	}
	for _, p := range consolePages {
		status, body := admin("GET", d.admURL(p), adminToken)
		if status != 200 || !strings.Contains(body, "<html") {
			t.Errorf("GET %s: %d %s", p, status, body)
		}
		if strings.HasPrefix(p, "/playground") && strings.Contains(p, "rule=failed") && (!strings.Contains(body, "<h3>ding <small>(dingtalk)</small></h3>") || !strings.Contains(body, `class="target"`)) {
			t.Errorf("the playground does not plan the rule's steps: %s", body)
		}
	}
	admin("GET", d.admURL("/api/rules"), "WrongAdmin0123456789")
	adminEnv := map[string]string{"LIVEHOOK_ADMIN_TOKEN": adminToken, "LIVEHOOK_ADMIN_URL": "http://" + d.admin.Addr().String()}
	if out := cli(adminEnv, "events"); !strings.Contains(out, "room42") {
		t.Errorf("livehook events: %s", out)
	}
	if out := cli(adminEnv, "deadletters"); !strings.Contains(out, "unreachable") {
		t.Errorf("livehook deadletters: %s", out)
	}
	cli(adminEnv, "events", "show", events.Events[0].Event.ID)

	// A broken reload: the daemon logs every problem and shows them in its
	// reply and in /api/rules.
	writeFile(t, rulesPath, leakBroken)
	if status, body := admin("POST", d.admURL("/-/reload"), adminToken); status != http.StatusUnprocessableEntity || !strings.Contains(body, "****") {
		t.Errorf("broken reload: %d %s", status, body)
	}
	if _, body := admin("GET", d.admURL("/api/rules"), adminToken); !strings.Contains(body, "cannot unmarshal") {
		t.Errorf("/api/rules does not show the failed reload: %s", body)
	}
	for _, p := range []string{"/rules", "/status"} {
		if _, body := admin("GET", d.admURL(p), adminToken); !strings.Contains(body, "failed") {
			t.Errorf("console %s does not show the failed reload: %s", p, body)
		}
	}
	// Stop the daemon, so its shutdown logs are read too, and hand the
	// outcome back for startDaemonWith's cleanup to check.
	d.stop()
	err := <-d.done
	d.done <- err
	shown = append(shown, d.log.buf.String())
	// The failures must be among what is searched: a secret is most likely
	// to slip into the log line of a delivery that failed.
	if d.log.count(msgIs("delivery failed for good: dead letter")) == 0 {
		t.Error("the unreachable action's failure is not in the log")
	}

	all := strings.Join(shown, "\n")
	for _, s := range secrets {
		if i := strings.Index(all, s); i >= 0 {
			lo, hi := max(0, i-150), min(len(all), i+len(s)+50)
			t.Errorf("secret %q shown: …%s…", s, all[lo:hi])
		}
	}
}
