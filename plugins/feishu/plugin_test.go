package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/yamlconf"
	"github.com/livehook/livehook/plugins/internal/plugintest"
)

// These tests run the plugin binary built from this folder, through
// livehook's plugin host, as the daemon does.

// pluginsDir holds the plugin, built once by TestMain.
var pluginsDir string

func TestMain(m *testing.M) { plugintest.Main(m, &pluginsDir, "feishu") }

func rulesFor(url, secret, extra string) string {
	return `actions:
  oncall:
    type: feishu
    url: ` + url + `
    secret: ` + secret + `
    color: blue
` + extra + `
rules:
  - name: failed
    do:
      - action: oncall
        with:
          text: "{{ .stream }} failed ({{ .delivery_id }})"
`
}

func TestBinaryDeliversASignedMessage(t *testing.T) {
	fake := newFakeFeishu(t, "tok", "s3cret-signing-key")
	var log plugintest.Log
	set, err := plugintest.Load(t, pluginsDir, nil, rulesFor(fake.url(), "s3cret-signing-key", ""), log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	plan, res := plugintest.Deliver(t, set, "failed", plugintest.Event("ev1", "room42"))
	if res.Outcome != actionapi.Delivered || res.Detail != "code 0: success" {
		t.Fatalf("result %+v, want delivered: code 0: success", res)
	}
	got := fake.messages()
	if len(got) != 1 {
		t.Fatalf("Feishu accepted %d messages, want 1", len(got))
	}
	content, _ := got[0]["content"].(map[string]any)
	if content["text"] != "room42 failed (ev1.failed.0)" {
		t.Errorf("text %q, want the rendered template", content["text"])
	}
	// What livehook test shows holds no secret.
	for _, s := range []string{"s3cret-signing-key", "/hook/tok"} {
		if strings.Contains(strings.Join([]string{plan.Target, toJSON(t, plan.Body), toJSON(t, plan.Info)}, " "), s) {
			t.Errorf("the plan shows %q", s)
		}
	}
}

func TestBinaryFailures(t *testing.T) {
	tests := []struct {
		name         string
		secret       string
		script       []func(http.ResponseWriter, *http.Request)
		wantOutcome  actionapi.Outcome
		wantDetail   string
		wantRetry    time.Duration
		wantRequests int
	}{
		{name: "wrong secret is permanent and not retried", secret: "wrong-secret",
			wantOutcome: actionapi.Permanent, wantDetail: "code 19021: sign match fail", wantRequests: 1},
		{name: "rate limited is retryable, left to livehook's delivery policy", secret: "s3cret-signing-key",
			script: []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, _ *http.Request) { reply(w, 11232, "frequency limited") },
			},
			wantOutcome: actionapi.Retryable, wantDetail: "code 11232: frequency limited", wantRequests: 1},
		{name: "a 503 is retried inside the run", secret: "s3cret-signing-key",
			script: []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			},
			wantOutcome: actionapi.Delivered, wantDetail: "code 0: success", wantRequests: 2},
		{name: "a long Retry-After ends the run at once and goes to livehook's runner", secret: "s3cret-signing-key",
			script: []func(http.ResponseWriter, *http.Request){
				func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Retry-After", "120")
					w.WriteHeader(http.StatusServiceUnavailable)
				},
			},
			wantOutcome: actionapi.Retryable, wantDetail: "HTTP 503: ", wantRetry: 120 * time.Second, wantRequests: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeFeishu(t, "tok", "s3cret-signing-key")
			fake.then(tc.script...)
			var log plugintest.Log
			set, err := plugintest.Load(t, pluginsDir, nil, rulesFor(fake.url(), tc.secret, ""), log.Logger())
			if err != nil {
				t.Fatal(err)
			}
			_, res := plugintest.Deliver(t, set, "failed", plugintest.Event("ev1", "room42"))
			if res.Outcome != tc.wantOutcome || !strings.HasPrefix(res.Detail, tc.wantDetail) || res.RetryAfter != tc.wantRetry {
				t.Errorf("result %s %q retry after %s, want %s %q retry after %s", res.Outcome, res.Detail, res.RetryAfter, tc.wantOutcome, tc.wantDetail, tc.wantRetry)
			}
			if n := fake.count(); n != tc.wantRequests {
				t.Errorf("Feishu got %d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestBinaryLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		extra string // more keys on the instance, at line 7
		want  string
	}{
		{name: "unknown setting", extra: "    colour: red", want: `:7:5: unknown key "colour" (want one of card, color, msg_type, secret, text, timeout, title, url)`},
		{name: "value outside the enum", extra: "    msg_type: post", want: `:7:15: msg_type: "post": want one of text, interactive`},
		{name: "wrong type for livehook's own key", extra: "    timeout: soon", want: `:7:14: timeout: want a duration such as 30s or 5m`},
		{name: "template that does not parse", extra: "    title: \"{{ .stream \"", want: `:7:12: title: template: 1: unclosed action`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plugintest.Load(t, pluginsDir, nil, rulesFor("https://open.feishu.cn/open-apis/bot/v2/hook/x", "k", tc.extra), nil)
			ds := yamlconf.Diagnostics(err)
			if len(ds) != 1 || !strings.Contains(ds[0].String(), tc.want) {
				t.Errorf("load error:\n%v\nwant one diagnostic containing %q", err, tc.want)
			}
		})
	}
}
