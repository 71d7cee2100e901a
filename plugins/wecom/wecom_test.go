package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/yamlconf"
	"github.com/livehook/livehook/plugins/internal/plugintest"
	"github.com/livehook/livehook/plugins/protocol"
	"github.com/livehook/livehook/plugins/sdk"
	"github.com/livehook/livehook/plugins/sdk/sdkhttp"
)

// pluginsDir holds the plugin binary, built once by TestMain.
var pluginsDir string

func TestMain(m *testing.M) { plugintest.Main(m, &pluginsDir, "wecom") }

func handle(t *testing.T, url string, params map[string]any) sdk.Response {
	t.Helper()
	s, _ := json.Marshal(settings{URL: url})
	p, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	req := &sdk.Request{Plugin: "wecom", DeliveryID: "d1", Timeout: 10 * time.Second, Settings: s, Params: p}
	return handler{client: sdkhttp.Client()}.handle(context.Background(), req)
}

func TestMessages(t *testing.T) {
	long := strings.Repeat("录", 700) // 2100 bytes
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{
			name:   "text with mentions",
			params: map[string]any{"content": "room42 failed", "mentioned_list": []string{"@all"}, "mentioned_mobile_list": []string{"13800000000"}},
			want:   `{"msgtype":"text","text":{"content":"room42 failed","mentioned_list":["@all"],"mentioned_mobile_list":["13800000000"]}}`,
		},
		{
			name:   "markdown",
			params: map[string]any{"msgtype": "markdown", "content": "**录制完成** room42\n> 时长 <font color=\"info\">30m</font>"},
			want:   `{"msgtype":"markdown","markdown":{"content":"**录制完成** room42\n> 时长 <font color=\"info\">30m</font>"}}`,
		},
		{
			name:   "text over 2048 bytes is cut at a character",
			params: map[string]any{"content": long},
			want:   `{"msgtype":"text","text":{"content":"` + strings.Repeat("录", 681) + `…"}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeWeCom(t, "k-123")
			resp := handle(t, fake.url(), tc.params)
			if resp.Outcome != protocol.Delivered || resp.Detail != "errcode 0: ok" {
				t.Fatalf("response %+v, want delivered: errcode 0: ok", resp)
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if got := fake.messages(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Errorf("WeCom got %v\nwant %v", got, want)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name         string
		wrongKey     bool
		params       map[string]any
		wantOutcome  protocol.Outcome
		wantDetail   string
		wantRequests int
	}{
		{name: "invalid key", wrongKey: true, params: map[string]any{"content": "x"},
			wantOutcome: protocol.Permanent, wantDetail: "errcode 93000: invalid webhook url", wantRequests: 1},
		{name: "no content", params: map[string]any{"msgtype": "text"},
			wantOutcome: protocol.Permanent, wantDetail: "content is required", wantRequests: 0},
		{name: "mentions with markdown", params: map[string]any{"msgtype": "markdown", "content": "x", "mentioned_mobile_list": []string{"1"}},
			wantOutcome: protocol.Permanent, wantDetail: "mentioned_list and mentioned_mobile_list work with msgtype text only", wantRequests: 0},
		{name: "unknown msgtype", params: map[string]any{"msgtype": "news", "content": "x"},
			wantOutcome: protocol.Permanent, wantDetail: `msgtype "news": want text or markdown`, wantRequests: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeWeCom(t, "k-123")
			url := fake.url()
			if tc.wrongKey {
				url = strings.Replace(url, "k-123", "k-999", 1)
			}
			resp := handle(t, url, tc.params)
			if resp.Outcome != tc.wantOutcome || !strings.HasPrefix(resp.Detail, tc.wantDetail) {
				t.Errorf("response %+v, want %s %q", resp, tc.wantOutcome, tc.wantDetail)
			}
			if n := fake.count(); n != tc.wantRequests {
				t.Errorf("WeCom got %d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestRateLimitIsRetryableAfterAMinute(t *testing.T) {
	fake := newFakeWeCom(t, "k-123")
	for i := range 20 {
		if resp := handle(t, fake.url(), map[string]any{"content": "x"}); resp.Outcome != protocol.Delivered {
			t.Fatalf("message %d: %+v, want delivered", i+1, resp)
		}
	}
	resp := handle(t, fake.url(), map[string]any{"content": "x"})
	if resp.Outcome != protocol.Retryable || resp.Detail != "errcode 45009: api freq out of limit" || resp.RetryAfter != time.Minute {
		t.Errorf("21st message: %+v, want retryable errcode 45009 after 1m", resp)
	}
}

func rules(url, with string) string {
	return `actions:
  team:
    type: wecom
    url: "` + url + `"
    timeout: 20s
rules:
  - name: failed
    do:
      - action: team
        with:
` + with
}

func TestBinaryDelivers(t *testing.T) {
	fake := newFakeWeCom(t, "k-123")
	var log plugintest.Log
	set, err := plugintest.Load(t, pluginsDir, nil, rules(fake.url(), `          content: "{{ .stream }} failed"
          mentioned_mobile_list: ["{{ .push_args.oncall }}", "13900000000"]
`), log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	ev := plugintest.Event("ev1", "room42")
	ev.PushArgs = map[string]string{"oncall": "13800000000"}
	_, res := plugintest.Deliver(t, set, "failed", ev)
	if res.Outcome != actionapi.Delivered || res.Detail != "errcode 0: ok" {
		t.Fatalf("result %+v, want delivered", res)
	}
	want := map[string]any{"msgtype": "text", "text": map[string]any{"content": "room42 failed",
		"mentioned_mobile_list": []any{"13800000000", "13900000000"}}}
	if got := fake.messages(); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("WeCom got %v, want %v", got, want)
	}
}

func TestBinaryPermanentFailureIsNotRetried(t *testing.T) {
	fake := newFakeWeCom(t, "k-123")
	set, err := plugintest.Load(t, pluginsDir, nil, rules(strings.Replace(fake.url(), "k-123", "k-999", 1), "          content: hi\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, res := plugintest.Deliver(t, set, "failed", plugintest.Event("ev1", "room42"))
	if res.Outcome != actionapi.Permanent || !strings.HasPrefix(res.Detail, "errcode 93000") || fake.count() != 1 {
		t.Errorf("result %s %q after %d requests, want permanent errcode 93000 after 1", res.Outcome, res.Detail, fake.count())
	}
}

func TestBinaryLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		url  string
		with string
		want string
	}{
		{name: "missing required param", url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
			with: "          msgtype: markdown\n", want: `:11:11: team: content is required`},
		{name: "list given a string", url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
			with: "          content: hi\n          mentioned_mobile_list: 13800000000\n", want: `:12:34: mentioned_mobile_list: want a list of strings`},
		{name: "url without a key", url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
			with: "          content: hi\n", want: `:4:10: url: does not match`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plugintest.Load(t, pluginsDir, nil, rules(tc.url, tc.with), nil)
			ds := yamlconf.Diagnostics(err)
			if len(ds) != 1 || !strings.Contains(ds[0].String(), tc.want) {
				t.Errorf("load error:\n%v\nwant one diagnostic containing %q", err, tc.want)
			}
		})
	}
}
