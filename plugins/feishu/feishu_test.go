package main

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/plugins/protocol"
	"github.com/livehook/livehook/plugins/sdk"
	"github.com/livehook/livehook/plugins/sdk/sdkhttp"
)

func TestSignMatchesTheVector(t *testing.T) {
	const want = "PhQCc3+zfF7+KmnD1jzhrXrfbcfmwH4J21uib30h4gM="
	if got := sign(1714564803, "feishusecret"); got != want {
		t.Errorf("sign(1714564803, feishusecret) = %s, want %s", got, want)
	}
}

// testHandler is the plugin's handler with quick HTTP retries.
func testHandler(now time.Time) handler {
	c := sdkhttp.Client()
	c.RetryWaitMin, c.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	return handler{client: c, now: func() time.Time { return now }}
}

func request(t *testing.T, settings, params any) *sdk.Request {
	t.Helper()
	s, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return &sdk.Request{Plugin: "feishu", DeliveryID: "d1", Timeout: 10 * time.Second, Settings: s, Params: p}
}

func jsonOf(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMessages(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		want   string // the message Feishu receives, without timestamp and sign
	}{
		{
			name:   "text by default",
			params: map[string]any{"text": "room42 failed <at user_id=\"all\">所有人</at>"},
			want:   `{"msg_type":"text","content":{"text":"room42 failed <at user_id=\"all\">所有人</at>"}}`,
		},
		{
			name:   "a whole card",
			params: map[string]any{"msg_type": "interactive", "card": map[string]any{"elements": []any{map[string]any{"tag": "div", "text": map[string]any{"tag": "lark_md", "content": "**x**"}}}}},
			want:   `{"msg_type":"interactive","card":{"elements":[{"tag":"div","text":{"tag":"lark_md","content":"**x**"}}]}}`,
		},
		{
			name:   "a card from title, text and color",
			params: map[string]any{"msg_type": "interactive", "title": "Recording failed", "text": "**room42**", "color": "red"},
			want: `{"msg_type":"interactive","card":{"config":{"wide_screen_mode":true},` +
				`"header":{"title":{"tag":"plain_text","content":"Recording failed"},"template":"red"},` +
				`"elements":[{"tag":"div","text":{"tag":"lark_md","content":"**room42**"}}]}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeFeishu(t, "tok", "")
			resp := testHandler(time.Now()).handle(context.Background(), request(t, settings{URL: fake.url()}, tc.params))
			if resp.Outcome != protocol.Delivered || resp.Detail != "code 0: success" {
				t.Fatalf("response %+v, want delivered with code 0: success", resp)
			}
			got := fake.messages()
			if len(got) != 1 || !reflect.DeepEqual(got[0], jsonOf(t, tc.want)) {
				t.Errorf("Feishu got %v\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSignedMessages(t *testing.T) {
	vectorTime := time.Unix(1714564803, 0)
	tests := []struct {
		name        string
		botSecret   string
		ourSecret   string
		clock       time.Time // the plugin's clock; the bot's is vectorTime
		wantOutcome protocol.Outcome
		wantDetail  string
	}{
		{name: "right secret", botSecret: "feishusecret", ourSecret: "feishusecret", clock: vectorTime,
			wantOutcome: protocol.Delivered, wantDetail: "code 0: success"},
		{name: "wrong secret", botSecret: "feishusecret", ourSecret: "other", clock: vectorTime,
			wantOutcome: protocol.Permanent, wantDetail: "code 19021: sign match fail or timestamp is not within one hour from current time"},
		{name: "clock two hours off", botSecret: "feishusecret", ourSecret: "feishusecret", clock: vectorTime.Add(-2 * time.Hour),
			wantOutcome: protocol.Permanent, wantDetail: "code 19021: sign match fail"},
		{name: "a signing bot without our secret", botSecret: "feishusecret", clock: vectorTime,
			wantOutcome: protocol.Permanent, wantDetail: "code 19021"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeFeishu(t, "tok", tc.botSecret)
			fake.now = func() time.Time { return vectorTime }
			req := request(t, settings{URL: fake.url(), Secret: tc.ourSecret}, map[string]any{"text": "hi"})
			resp := testHandler(tc.clock).handle(context.Background(), req)
			if resp.Outcome != tc.wantOutcome || !strings.HasPrefix(resp.Detail, tc.wantDetail) {
				t.Fatalf("response %+v, want %s %q", resp, tc.wantOutcome, tc.wantDetail)
			}
			if tc.wantOutcome != protocol.Delivered {
				return
			}
			got := fake.messages()[0]
			if got["timestamp"] != "1714564803" || got["sign"] != "PhQCc3+zfF7+KmnD1jzhrXrfbcfmwH4J21uib30h4gM=" {
				t.Errorf("timestamp %v sign %v, want the vector's", got["timestamp"], got["sign"])
			}
		})
	}
}

func TestFailures(t *testing.T) {
	status := func(code int, header, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			if header != "" {
				k, v, _ := strings.Cut(header, ": ")
				w.Header().Set(k, v)
			}
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}
	}
	tests := []struct {
		name         string
		script       []func(http.ResponseWriter, *http.Request)
		params       map[string]any
		wantOutcome  protocol.Outcome
		wantDetail   string
		wantRetry    time.Duration
		wantRequests int
	}{
		{name: "no text", params: map[string]any{"msg_type": "text"},
			wantOutcome: protocol.Permanent, wantDetail: "text is required for msg_type text", wantRequests: 0},
		{name: "interactive without card or title", params: map[string]any{"msg_type": "interactive", "text": "x"},
			wantOutcome: protocol.Permanent, wantDetail: "msg_type interactive needs card, or title and text", wantRequests: 0},
		{name: "unknown msg_type", params: map[string]any{"msg_type": "image", "text": "x"},
			wantOutcome: protocol.Permanent, wantDetail: `msg_type "image": want text or interactive`, wantRequests: 0},
		{name: "rate limited by code", script: []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, _ *http.Request) { reply(w, 11232, "frequency limited") }},
			wantOutcome: protocol.Retryable, wantDetail: "code 11232: frequency limited", wantRequests: 1},
		{name: "rate limited by code with a long Retry-After", script: []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"code":11232,"msg":"frequency limited","data":{}}`))
			}},
			wantOutcome: protocol.Retryable, wantDetail: "code 11232: frequency limited", wantRetry: 120 * time.Second, wantRequests: 1},
		{name: "a 429 with a long Retry-After goes back to livehook with it", script: []func(http.ResponseWriter, *http.Request){
			status(429, "Retry-After: 120", "slow down")},
			wantOutcome: protocol.Retryable, wantDetail: "HTTP 429: slow down", wantRetry: 120 * time.Second, wantRequests: 1},
		{name: "a 429 with a short Retry-After is retried inside the run", script: []func(http.ResponseWriter, *http.Request){
			status(429, "Retry-After: 0", "slow down")},
			wantOutcome: protocol.Delivered, wantDetail: "code 0: success", wantRequests: 2},
		{name: "500 is retried and then succeeds", script: []func(http.ResponseWriter, *http.Request){
			status(500, "", "oops")},
			wantOutcome: protocol.Delivered, wantDetail: "code 0: success", wantRequests: 2},
		{name: "500 on every try", script: []func(http.ResponseWriter, *http.Request){
			status(502, "", "bad gateway"), status(502, "", "bad gateway"), status(502, "", "bad gateway")},
			wantOutcome: protocol.Retryable, wantDetail: "HTTP 502: bad gateway", wantRequests: 3},
		{name: "a proxy's page with 200", script: []func(http.ResponseWriter, *http.Request){
			status(200, "", "<html>login</html>")},
			wantOutcome: protocol.Retryable, wantDetail: `HTTP 200 with a reply that is not Feishu's JSON: "<html>login</html>"`, wantRequests: 1},
		{name: "400 without Feishu's JSON", script: []func(http.ResponseWriter, *http.Request){
			status(400, "", "bad")},
			wantOutcome: protocol.Permanent, wantDetail: "HTTP 400: bad", wantRequests: 1},
		{name: "an error code with HTTP 400", script: []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(400)
				_, _ = w.Write([]byte(`{"code":9499,"msg":"Bad Request","data":{}}`))
			}},
			wantOutcome: protocol.Permanent, wantDetail: "code 9499: Bad Request", wantRequests: 1},
		{name: "the legacy StatusCode reply", script: []func(http.ResponseWriter, *http.Request){
			status(200, "", `{"Extra":null,"StatusCode":0,"StatusMessage":"success"}`)},
			wantOutcome: protocol.Delivered, wantDetail: "code 0: success", wantRequests: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeFeishu(t, "tok", "")
			fake.then(tc.script...)
			params := tc.params
			if params == nil {
				params = map[string]any{"text": "hi"}
			}
			resp := testHandler(time.Now()).handle(context.Background(), request(t, settings{URL: fake.url()}, params))
			if resp.Outcome != tc.wantOutcome || resp.Detail != tc.wantDetail || resp.RetryAfter != tc.wantRetry {
				t.Errorf("response %+v, want %s %q retry after %s", resp, tc.wantOutcome, tc.wantDetail, tc.wantRetry)
			}
			if n := fake.count(); n != tc.wantRequests {
				t.Errorf("Feishu got %d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestNetworkErrorIsRetryableAndHidesTheToken(t *testing.T) {
	fake := newFakeFeishu(t, "secret-token-123", "")
	url := fake.url()
	fake.srv.Close()
	resp := testHandler(time.Now()).handle(context.Background(), request(t, settings{URL: url}, map[string]any{"text": "hi"}))
	if resp.Outcome != protocol.Retryable || !strings.Contains(resp.Detail, "POST:") {
		t.Fatalf("response %+v, want retryable POST error", resp)
	}
	if strings.Contains(resp.Detail, "secret-token-123") {
		t.Errorf("detail %q shows the webhook's token", resp.Detail)
	}
}
