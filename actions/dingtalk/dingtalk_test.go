package dingtalk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/livehook/livehook/actions/actiontest"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

const testSecret = "SECtestsecret0123456789abcdef"

var input = actionapi.Input{
	Event: &event.Event{
		ID: "ev1", Source: event.SourceRecord, Kind: event.KindFile, Domain: "live.example.com",
		App: "live", Stream: "room42", URI: "record/live/room42/0.m3u8", Format: "m3u8", Duration: 1800,
	},
	Rule:       "recording-ready",
	DeliveryID: "d1",
}

// openYAML opens a dingtalk instance through the registry, as the rules
// loader does; now is the daemon's clock.
func openYAML(t *testing.T, src string, now func() time.Time) (*instance, error) {
	t.Helper()
	return openPaced(t, src, now, nil)
}

// openPaced opens an instance on pacer, as the engine does on its store.
func openPaced(t *testing.T, src string, now func() time.Time, pacer store.Pacer) (*instance, error) {
	t.Helper()
	typ, ok := actionapi.Default().Lookup("dingtalk")
	if !ok {
		t.Fatal("type dingtalk is not registered")
	}
	s := actiontest.Settings(t, "oncall", "dingtalk", src)
	s.Deps.Now = now
	s.Deps.Pacer = pacer
	inst, err := typ.Open(s)
	if err != nil {
		return nil, err
	}
	return inst.(*instance), nil
}

func mustOpen(t *testing.T, src string) *instance {
	t.Helper()
	inst, err := openYAML(t, src, time.Now)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return inst
}

// config is an instance's settings with fast retries; extra adds lines.
func config(url string, extra ...string) string {
	return fmt.Sprintf("url: %s\ntimeout: 2s\nretry: {attempts: 3, min_backoff: 10ms, max_backoff: 50ms}\n%s\n",
		url, strings.Join(extra, "\n"))
}

func stepFor(t *testing.T, inst *instance, with string) (actionapi.Step, error) {
	t.Helper()
	return inst.Step(actionapi.Params{File: "rules.yaml", Node: actiontest.Node(t, with)})
}

// The vector was computed independently of sign (see domain.md §2).
func TestSignVector(t *testing.T) {
	const want = "VZsf35ZqniSPnG1a9g%2Fdr9IV%2B9Fqyp3aKt9aNufyGDw%3D"
	if got := sign("1714564803000", "SECtestsecret"); got != want {
		t.Errorf("sign = %s, want %s", got, want)
	}
}

func TestDeliver(t *testing.T) {
	tests := []struct {
		name     string
		robot    robot
		settings []string
		with     string
		want     string // the message DingTalk received, as JSON
	}{
		{
			name:     "text with mentions",
			settings: []string{`text: "{{ .stream }} 录制完成"`, `at_mobiles: ["13800000000"]`, `at_user_ids: [user123]`},
			want:     `{"msgtype":"text","text":{"content":"room42 录制完成"},"at":{"atMobiles":["13800000000"],"atUserIds":["user123"],"isAtAll":false}}`,
		},
		{
			name:     "text to everyone, set by with",
			settings: []string{`text: "{{ .stream }} 录制完成"`},
			with:     `{text: "{{ .app }}/{{ .stream }} failed", at_all: true}`,
			want:     `{"msgtype":"text","text":{"content":"live/room42 failed"},"at":{"isAtAll":true}}`,
		},
		{
			name: "markdown gets the @mobile it lacks",
			settings: []string{
				`msgtype: markdown`, `title: 录制完成`,
				`text: "### {{ .stream }}\n- 时长: {{ .duration }}s @13900000000"`,
				`at_mobiles: ["13800000000", "13900000000"]`,
			},
			want: `{"msgtype":"markdown","markdown":{"title":"录制完成","text":"### room42\n- 时长: 1800s @13900000000\n\n@13800000000"},"at":{"atMobiles":["13800000000","13900000000"],"isAtAll":false}}`,
		},
		{
			name: "actionCard with buttons",
			settings: []string{
				`msgtype: actionCard`, `title: "录制失败 {{ .stream }}"`, `text: "### {{ .stream }}\nBucketNotFound"`,
				`btn_orientation: 1`,
				`btns: [{title: 重试, action_url: "https://console.example.com/retry/{{ .stream }}"}, {title: 忽略, action_url: "https://console.example.com/ignore"}]`,
			},
			want: `{"msgtype":"actionCard","actionCard":{"title":"录制失败 room42","text":"### room42\nBucketNotFound","btnOrientation":"1",` +
				`"btns":[{"title":"重试","actionURL":"https://console.example.com/retry/room42"},{"title":"忽略","actionURL":"https://console.example.com/ignore"}]}}`,
		},
		{
			name: "actionCard with a single button",
			settings: []string{
				`msgtype: actionCard`, `title: 录制完成`, `text: "{{ .stream }} 已生成"`,
				`single_title: 打开`, `single_url: "https://console.example.com/r/{{ .stream }}"`,
			},
			want: `{"msgtype":"actionCard","actionCard":{"title":"录制完成","text":"room42 已生成","singleTitle":"打开","singleURL":"https://console.example.com/r/room42"}}`,
		},
		{
			name:     "signed robot with a keyword",
			robot:    robot{secret: testSecret, keyword: "录制"},
			settings: []string{"secret: " + testSecret, `text: "{{ .stream }} 录制完成"`},
			want:     `{"msgtype":"text","text":{"content":"room42 录制完成"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDingTalk(t, tt.robot)
			_, res := actiontest.Deliver(t, actiontest.Step(t, mustOpen(t, config(f.URL(), tt.settings...)), tt.with), input)
			if res.Outcome != actionapi.Delivered || res.Detail != "errcode 0: ok" {
				t.Fatalf("result = %v %q (%v), want delivered", res.Outcome, res.Detail, res.Err)
			}
			requests, got, _, _ := f.stats()
			if requests != 1 || len(got) != 1 {
				t.Fatalf("dingtalk saw %d requests and posted %d messages, want 1 and 1", requests, len(got))
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got[0], want) {
				b, _ := json.Marshal(got[0])
				t.Errorf("dingtalk received\n%s\nwant\n%s", b, tt.want)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name           string
		robot          robot
		settings       []string
		clock          time.Duration // the daemon's clock error
		replies        func(f *fakeDingTalk) []http.HandlerFunc
		want           actionapi.Outcome
		wantRequests   int
		wantDelivered  int
		wantDetail     string
		wantRetryAfter time.Duration
	}{
		{
			name:         "wrong secret",
			robot:        robot{secret: testSecret},
			settings:     []string{"secret: SECwrongsecret0123456789"},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "errcode 310000: sign not match",
		},
		{
			name:         "clock more than an hour off",
			robot:        robot{secret: testSecret},
			settings:     []string{"secret: " + testSecret},
			clock:        -2 * time.Hour,
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "errcode 310000: invalid timestamp",
		},
		{
			name:         "signed robot without a secret",
			robot:        robot{secret: testSecret},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "errcode 310000: invalid timestamp",
		},
		{
			name:         "keyword missing from the text",
			robot:        robot{keyword: "告警"},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "errcode 310000: keywords not in content",
		},
		{
			name: "robot deleted",
			replies: func(*fakeDingTalk) []http.HandlerFunc {
				return []http.HandlerFunc{errcode(300001, "token is not exist")}
			},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "errcode 300001: token is not exist",
		},
		{
			name: "send too fast ends the attempt: DingTalk throttles the robot for 10 minutes",
			replies: func(*fakeDingTalk) []http.HandlerFunc {
				return []http.HandlerFunc{errcode(130101, "send too fast, exceed 20 times per minute")}
			},
			want:           actionapi.Retryable,
			wantRequests:   1,
			wantDetail:     "errcode 130101: send too fast",
			wantRetryAfter: 10 * time.Minute,
		},
		{
			name: "500 then 200",
			replies: func(*fakeDingTalk) []http.HandlerFunc {
				return []http.HandlerFunc{status(http.StatusInternalServerError, "text/plain", "internal error")}
			},
			want:          actionapi.Delivered,
			wantRequests:  2,
			wantDelivered: 1,
			wantDetail:    "errcode 0: ok",
		},
		{
			name: "502 on every attempt",
			replies: func(*fakeDingTalk) []http.HandlerFunc {
				bad := status(http.StatusBadGateway, "text/html", "<html>502 Bad Gateway</html>")
				return []http.HandlerFunc{bad, bad, bad}
			},
			want:         actionapi.Retryable,
			wantRequests: 3,
			wantDetail:   "HTTP 502: <html>502 Bad Gateway</html>",
		},
		{
			name: "200 that is not JSON",
			replies: func(*fakeDingTalk) []http.HandlerFunc {
				return []http.HandlerFunc{status(http.StatusOK, "text/html", "<html>captive portal</html>")}
			},
			want:         actionapi.Retryable,
			wantRequests: 1,
			wantDetail:   `200 OK with a reply that is not DingTalk's JSON: "<html>captive portal</html>"`,
		},
		{
			name: "JSON errcode behind an HTTP 400",
			replies: func(*fakeDingTalk) []http.HandlerFunc {
				return []http.HandlerFunc{status(http.StatusBadRequest, "application/json", `{"errcode":310000,"errmsg":"keywords not in content"}`)}
			},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "errcode 310000: keywords not in content",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDingTalk(t, tt.robot)
			if tt.replies != nil {
				f.play(tt.replies(f)...)
			}
			inst, err := openYAML(t, config(f.URL(), append(tt.settings, `text: "{{ .stream }} 录制完成"`)...),
				func() time.Time { return time.Now().Add(tt.clock) })
			if err != nil {
				t.Fatal(err)
			}
			_, res := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input)
			if res.Outcome != tt.want || !strings.Contains(res.Detail, tt.wantDetail) {
				t.Fatalf("result = %v %q, want %v containing %q", res.Outcome, res.Detail, tt.want, tt.wantDetail)
			}
			if (res.Err != nil) != (tt.want != actionapi.Delivered) {
				t.Errorf("err = %v with outcome %v", res.Err, res.Outcome)
			}
			requests, delivered, _, _ := f.stats()
			if requests != tt.wantRequests || len(delivered) != tt.wantDelivered {
				t.Errorf("dingtalk saw %d requests and posted %d messages, want %d and %d",
					requests, len(delivered), tt.wantRequests, tt.wantDelivered)
			}
			if res.RetryAfter != tt.wantRetryAfter {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, tt.wantRetryAfter)
			}
		})
	}
}

// "Send too fast" ends the attempt at once, whatever the retry policy, and
// the robot's other deliveries are not sent until the penalty is over.
func TestSendTooFastHoldsTheRobot(t *testing.T) {
	f := newFakeDingTalk(t, robot{})
	f.play(errcode(130101, "send too fast, exceed 20 times per minute"))
	clock := time.Now()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	inst, err := openYAML(t, fmt.Sprintf("url: %s\nretry: {attempts: 5, min_backoff: 1m, max_backoff: 1m}\ntext: hi\n", f.URL()), now)
	if err != nil {
		t.Fatal(err)
	}
	st := actiontest.Step(t, inst, "")

	start := time.Now()
	_, res := actiontest.Deliver(t, st, input)
	if res.Outcome != actionapi.Retryable || res.RetryAfter != 10*time.Minute || !strings.Contains(res.Detail, "errcode 130101") {
		t.Fatalf("result = %v %q, retry after %v; want retryable after 10m", res.Outcome, res.Detail, res.RetryAfter)
	}
	// The old pause slept a minute between resends.
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v: the attempt waited instead of ending", took)
	}

	mu.Lock()
	clock = clock.Add(4 * time.Minute)
	mu.Unlock()
	_, res = actiontest.Deliver(t, st, input)
	if res.Outcome != actionapi.Retryable || res.RetryAfter != 6*time.Minute ||
		!strings.HasPrefix(res.Detail, "not sent: the service asked to wait until ") || !strings.Contains(res.Detail, "errcode 130101") {
		t.Errorf("during the penalty: %v %q, retry after %v; want not sent, retry after 6m", res.Outcome, res.Detail, res.RetryAfter)
	}
	if requests, _, _, _ := f.stats(); requests != 1 {
		t.Errorf("dingtalk saw %d requests, want 1: nothing is sent during the penalty", requests)
	}

	mu.Lock()
	clock = clock.Add(6 * time.Minute)
	mu.Unlock()
	if _, res = actiontest.Deliver(t, st, input); res.Outcome != actionapi.Delivered {
		t.Errorf("after the penalty: %v %q, want delivered", res.Outcome, res.Detail)
	}
}

// A Retry-After longer than a quick retry's ends the attempt and holds the
// robot's other deliveries as well.
func TestLongRetryAfterEndsTheAttempt(t *testing.T) {
	f := newFakeDingTalk(t, robot{})
	f.play(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		status(http.StatusTooManyRequests, "text/plain", "slow down")(w, r)
	})
	inst := mustOpen(t, config(f.URL(), "text: hi"))
	st := actiontest.Step(t, inst, "")
	_, res := actiontest.Deliver(t, st, input)
	if res.Outcome != actionapi.Retryable || res.RetryAfter != 120*time.Second || !strings.Contains(res.Detail, "HTTP 429: slow down") {
		t.Fatalf("result = %v %q, retry after %v; want retryable after 120s", res.Outcome, res.Detail, res.RetryAfter)
	}
	_, res = actiontest.Deliver(t, st, input)
	if res.Outcome != actionapi.Retryable || res.RetryAfter <= 110*time.Second || res.RetryAfter > 120*time.Second {
		t.Errorf("next delivery: %v %q, retry after %v; want held for the rest of 120s", res.Outcome, res.Detail, res.RetryAfter)
	}
	if requests, _, _, _ := f.stats(); requests != 1 {
		t.Errorf("dingtalk saw %d requests, want 1", requests)
	}
}

func TestHangingReceiverTimesOut(t *testing.T) {
	f := newFakeDingTalk(t, robot{})
	f.play(f.hang, f.hang)
	inst := mustOpen(t, fmt.Sprintf("url: %s\ntimeout: 200ms\nretry: {attempts: 2, min_backoff: 10ms, max_backoff: 20ms}\ntext: hi\n", f.URL()))
	_, res := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input)
	if res.Outcome != actionapi.Retryable || !strings.Contains(res.Detail, "exceeded") { // "context deadline exceeded" or "Client.Timeout exceeded"
		t.Fatalf("result = %v %q, want retryable after a client timeout", res.Outcome, res.Detail)
	}
	if requests, _, _, _ := f.stats(); requests != 2 {
		t.Errorf("dingtalk saw %d requests, want 2 (one retry)", requests)
	}
}

func TestOversizeIsTruncated(t *testing.T) {
	long := strings.Repeat("录制失败 ", 4000) // 52000 bytes of multi-byte text
	tests := []struct {
		name     string
		settings []string
		text     func(msg map[string]any) string
		wantTail string
	}{
		{
			name:     "text",
			settings: []string{`text: "{{ .payload.log }}"`},
			text:     func(msg map[string]any) string { return msg["text"].(map[string]any)["content"].(string) },
			wantTail: marker,
		},
		{
			name:     "markdown keeps its mention",
			settings: []string{`msgtype: markdown`, `title: 录制失败`, `text: "{{ .payload.log }} @13800000000"`, `at_mobiles: ["13800000000"]`},
			text:     func(msg map[string]any) string { return msg["markdown"].(map[string]any)["text"].(string) },
			wantTail: marker + "\n\n@13800000000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDingTalk(t, robot{})
			st := actiontest.Step(t, mustOpen(t, config(f.URL(), tt.settings...)), "")
			in := input
			in.Event = &event.Event{Stream: "room42", Payload: map[string]any{"log": long}}
			plan, err := st.Plan(in)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Info["truncated"] != true {
				t.Errorf("plan info = %v, want truncated", plan.Info)
			}
			res := st.Do(context.Background(), plan)
			if res.Outcome != actionapi.Delivered {
				t.Fatalf("result = %v %q, want delivered", res.Outcome, res.Detail)
			}
			_, got, sizes, _ := f.stats()
			if len(got) != 1 {
				t.Fatalf("dingtalk posted %d messages, want 1", len(got))
			}
			text := tt.text(got[0])
			if !utf8.ValidString(text) || strings.ContainsRune(text, utf8.RuneError) {
				t.Errorf("truncated text is not clean UTF-8: ...%q", text[len(text)-40:])
			}
			if !strings.HasSuffix(text, tt.wantTail) {
				t.Errorf("text ends %q, want the marker %q", text[max(0, len(text)-60):], tt.wantTail)
			}
			// Cut to fit, not cut short.
			if sizes[0] > maxBody || sizes[0] < maxBody-20 {
				t.Errorf("body is %d bytes, want just under %d", sizes[0], maxBody)
			}
		})
	}
}

func TestShortMessageIsNotTruncated(t *testing.T) {
	plan, err := actiontest.Step(t, mustOpen(t, config("https://oapi.dingtalk.com/robot/send?access_token="+testToken, "text: hi")), "").Plan(input)
	if err != nil {
		t.Fatal(err)
	}
	if _, cut := plan.Info["truncated"]; cut || plan.Body.(*message).Text.Content != "hi" {
		t.Errorf("plan = %+v, want hi untouched", plan)
	}
}

// Messages beyond the rate are queued, never dropped.
func TestRateLimitQueues(t *testing.T) {
	const (
		n        = 6
		interval = 40 * time.Millisecond
	)
	f := newFakeDingTalk(t, robot{})
	inst := mustOpen(t, config(f.URL(), `text: "{{ .stream }}"`))
	inst.pace = actionapi.Deps{}.WithDefaults().Pacing("oncall", "dingtalk", testToken, interval, 1)

	start := time.Now()
	results := make([]actionapi.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		st := actiontest.Step(t, inst, fmt.Sprintf("text: message %d", i))
		wg.Go(func() { _, results[i] = actiontest.Deliver(t, st, input) })
	}
	wg.Wait()

	for i, r := range results {
		if r.Outcome != actionapi.Delivered {
			t.Errorf("message %d: %v %q", i, r.Outcome, r.Detail)
		}
	}
	_, delivered, _, arrivals := f.stats()
	seen := map[any]bool{}
	for _, m := range delivered {
		seen[m["text"].(map[string]any)["content"]] = true
	}
	if len(delivered) != n || len(seen) != n {
		t.Fatalf("dingtalk posted %d messages (%d distinct), want %d", len(delivered), len(seen), n)
	}
	// n messages at one per interval need at least n-1 intervals.
	last := arrivals[0]
	for _, a := range arrivals {
		if a.After(last) {
			last = a
		}
	}
	if span, want := last.Sub(start), (n-1)*interval*9/10; span < want {
		t.Errorf("%d messages arrived within %v, want them spaced over at least %v", n, span, want)
	}
}

// Instances sending through one robot, in any replica, draw on one
// allowance of at most 20 messages a minute (a token bucket lets through
// at most burst + rate×60s in any minute); the store knows the robot by a
// key without its token.
func TestPaceFitsDingTalk(t *testing.T) {
	f := newFakeDingTalk(t, robot{})
	pacer := &actiontest.Pacer{}
	openOn := func(src string) *instance {
		inst, err := openPaced(t, src, time.Now, pacer)
		if err != nil {
			t.Fatal(err)
		}
		return inst
	}
	for _, inst := range []*instance{openOn(config(f.URL(), "text: hi")), openOn(config(f.URL(), "text: hello"))} {
		if _, res := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input); res.Outcome != actionapi.Delivered {
			t.Fatalf("%v %q", res.Outcome, res.Detail)
		}
	}
	other := openOn(config("https://oapi.dingtalk.com/robot/send?access_token=another"+testToken, "text: hi"))
	if err := other.pace.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, r := range pacer.TwoAccounts(t, testToken) {
		if most := float64(r.Burst) + float64(time.Minute)/float64(r.Every); most > 20 {
			t.Errorf("pace allows up to %.1f messages a minute, DingTalk allows 20", most)
		}
	}
}

// Two replicas sharing a store, each with its own instance of one robot,
// send 6 messages together at DingTalk's rate: 5 at once, the sixth a
// turn later.
func TestReplicasShareTheRobotsRate(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := newFakeDingTalk(t, robot{})
	var replicas []actionapi.Instance
	for range 2 {
		inst, err := openPaced(t, config(f.URL()), time.Now, st)
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, inst)
	}
	const n = sendBurst + 1
	start := time.Now()
	actiontest.DeliverAtOnce(t, input, n, replicas...)
	_, delivered, _, arrivals := f.stats()
	if len(delivered) != n {
		t.Fatalf("dingtalk posted %d messages, want %d", len(delivered), n)
	}
	last := slices.MaxFunc(arrivals, time.Time.Compare)
	if span, want := last.Sub(start), sendInterval*9/10; span < want {
		t.Errorf("%d messages through two replicas arrived within %v, want the last a turn (%v) later", n, span, want)
	}
}

func TestPlan(t *testing.T) {
	inst := mustOpen(t, config("https://oapi.dingtalk.com/robot/send?access_token="+testToken,
		"secret: "+testSecret, "msgtype: markdown", "title: 录制完成", `text: "{{ .stream }} <font color=\"info\">ok</font> & done"`))
	plan, err := actiontest.Step(t, inst, "").Plan(input)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://oapi.dingtalk.com/robot/send?access_token=****"; plan.Target != want || plan.Method != http.MethodPost {
		t.Errorf("plan = %s %s, want POST %s", plan.Method, plan.Target, want)
	}
	shown, _ := json.Marshal(plan)
	want := `{"method":"POST","target":"https://oapi.dingtalk.com/robot/send?access_token=****",` +
		`"body":{"msgtype":"markdown","markdown":{"title":"录制完成","text":"room42 \u003cfont color=\"info\"\u003eok\u003c/font\u003e \u0026 done"}},` +
		`"info":{"msgtype":"markdown","signed":true}}`
	if string(shown) != want {
		t.Errorf("plan shows\n%s\nwant\n%s", shown, want)
	}
	// What is sent keeps markdown's <, > and & as they are.
	if body := string(plan.Payload.([]byte)); !strings.Contains(body, `<font color=\"info\">ok</font> & done`) {
		t.Errorf("body = %s, want markdown unescaped", body)
	}
}

// The token and the signing secret must not show in a plan, a result or an
// error, whatever went wrong.
func TestSecretsStayHidden(t *testing.T) {
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL + "/robot/send?access_token=" + testToken
	refused.Close()

	tests := []struct {
		name    string
		robot   robot
		url     string
		secret  string
		replies func(f *fakeDingTalk) []http.HandlerFunc
		want    actionapi.Outcome
	}{
		{name: "delivered", robot: robot{secret: testSecret}, secret: testSecret, want: actionapi.Delivered},
		{name: "sign not match", robot: robot{secret: "SECothersecret012345678"}, secret: testSecret, want: actionapi.Permanent},
		{
			name:    "timeout",
			secret:  testSecret,
			replies: func(f *fakeDingTalk) []http.HandlerFunc { return []http.HandlerFunc{f.hang, f.hang, f.hang} },
			want:    actionapi.Retryable,
		},
		{name: "connection refused", url: refusedURL, secret: testSecret, want: actionapi.Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDingTalk(t, tt.robot)
			url := f.URL()
			if tt.url != "" {
				url = tt.url
			}
			if tt.replies != nil {
				f.play(tt.replies(f)...)
			}
			inst := mustOpen(t, fmt.Sprintf("url: %s\nsecret: %s\ntimeout: 200ms\nretry: {attempts: 3, min_backoff: 10ms, max_backoff: 20ms}\ntext: hi\n", url, tt.secret))
			plan, res := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input)
			if res.Outcome != tt.want {
				t.Fatalf("outcome = %v %q, want %v", res.Outcome, res.Detail, tt.want)
			}
			t.Logf("detail: %s", res.Detail)
			shown, _ := json.Marshal(plan)
			texts := map[string]string{"plan": string(shown), "detail": res.Detail}
			if res.Err != nil {
				texts["error"] = res.Err.Error()
			}
			for where, s := range texts {
				if strings.Contains(s, testToken) || strings.Contains(s, testSecret) {
					t.Errorf("%s reveals the token or the secret: %s", where, s)
				}
			}
			if tt.want == actionapi.Retryable && !strings.Contains(res.Detail, "/robot/send?access_token=****&timestamp=") {
				t.Errorf("transport error %q should name the redacted URL", res.Detail)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	const hook = "https://oapi.dingtalk.com/robot/send?access_token=" + testToken
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{name: "missing url", src: "text: hi\n", wantErr: "oncall: url is required"},
		{name: "unknown key", src: "url: " + hook + "\nsecret: " + testSecret + "\nat_mobile: ['138']\n", wantErr: `rules.yaml:3:1: unknown key "at_mobile"`},
		{name: "unknown button key", src: "url: " + hook + "\nbtns:\n  - {title: a, url: b}\n", wantErr: `rules.yaml:3:16: unknown key "url"`},
		{name: "not an http url", src: "url: oapi.dingtalk.com/robot/send?access_token=" + testToken + "\n", wantErr: "oncall: url: want the robot's webhook URL"},
		{name: "no access_token", src: "url: https://oapi.dingtalk.com/robot/send?token=" + testToken + "\n", wantErr: "oncall: url: missing the access_token query parameter"},
		{name: "unknown msgtype", src: "url: " + hook + "\nmsgtype: feedCard\n", wantErr: `oncall: msgtype "feedCard": want text, markdown or actionCard`},
		{name: "bad btn_orientation", src: "url: " + hook + "\nbtn_orientation: horizontal\n", wantErr: `oncall: btn_orientation "horizontal"`},
		{name: "broken template", src: "url: " + hook + "\ntitle: '{{ .stream '\n", wantErr: "rules.yaml:2:8:"},
		{name: "at_all not a bool", src: "url: " + hook + "\nat_all: everyone\n", wantErr: "rules.yaml:2:1: cannot unmarshal !!str `everyone` into bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openYAML(t, tt.src, time.Now)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("open error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("error reveals the token or the secret: %v", err)
			}
		})
	}
}

func TestStepErrors(t *testing.T) {
	tests := []struct {
		name     string
		instance []string
		with     string
		wantErr  string
	}{
		{name: "no text anywhere", wantErr: "oncall: text is required"},
		{name: "markdown without title", instance: []string{"text: hi"}, with: "msgtype: markdown", wantErr: "oncall: title is required for markdown"},
		{name: "title on text", instance: []string{"text: hi"}, with: "title: t", wantErr: "oncall: title applies to markdown and actionCard, not text"},
		{name: "actionCard without buttons", instance: []string{"msgtype: actionCard", "title: t", "text: hi"}, wantErr: "oncall: actionCard needs single_title/single_url or btns"},
		{name: "single_title alone", instance: []string{"msgtype: actionCard", "title: t", "text: hi"}, with: "single_title: open", wantErr: "single_title and single_url go together"},
		{
			name:     "single and btns",
			instance: []string{"msgtype: actionCard", "title: t", "text: hi", "btns: [{title: a, action_url: 'https://x'}]"},
			with:     "{single_title: open, single_url: 'https://x'}",
			wantErr:  "either single_title/single_url or btns, not both",
		},
		{name: "button without url", instance: []string{"msgtype: actionCard", "title: t", "text: hi"}, with: "btns: [{title: a}]", wantErr: "btns[0]: title and action_url are required"},
		{
			name:     "mentions on an actionCard",
			instance: []string{"at_all: true", "text: hi"},
			with:     "{msgtype: actionCard, title: t, single_title: open, single_url: 'https://x'}",
			wantErr:  "at_mobiles, at_user_ids and at_all apply to text and markdown, not actionCard",
		},
		{name: "buttons on markdown", instance: []string{"msgtype: markdown", "title: t", "text: hi"}, with: "btn_orientation: '1'", wantErr: "apply to actionCard, not markdown"},
		{name: "unknown msgtype in with", instance: []string{"text: hi"}, with: "msgtype: link", wantErr: `msgtype "link"`},
		{name: "unknown with key", instance: []string{"text: hi"}, with: "\ncontent: hi\n", wantErr: `rules.yaml:2:1: unknown key "content"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := mustOpen(t, config("https://oapi.dingtalk.com/robot/send?access_token="+testToken, tt.instance...))
			_, err := stepFor(t, inst, tt.with)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("step error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings []string
		wantErr  string
	}{
		{name: "text renders empty", settings: []string{`text: "{{ if eq .kind \"status\" }}x{{ end }}"`}, wantErr: "dingtalk: text rendered empty"},
		{name: "title renders empty", settings: []string{"msgtype: markdown", "text: hi", `title: "{{ .event }}"`}, wantErr: "dingtalk: title rendered empty"},
		{
			name:     "button url renders empty",
			settings: []string{"msgtype: actionCard", "title: t", "text: hi", `btns: [{title: a, action_url: "{{ .event }}"}]`},
			wantErr:  "dingtalk: btns[0].action_url rendered empty",
		},
		{name: "template fails", settings: []string{`text: "{{ fail \"no\" }}"`}, wantErr: "dingtalk: text: render template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := actiontest.Step(t, mustOpen(t, config("https://oapi.dingtalk.com/robot/send?access_token="+testToken, tt.settings...)), "")
			_, err := st.Plan(input)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("plan error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
