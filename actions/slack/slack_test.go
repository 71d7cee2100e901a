package slack

import (
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

	"github.com/livehook/livehook/actions/actiontest"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
)

var input = actionapi.Input{
	Event: &event.Event{
		ID: "ev1", Source: event.SourceRecord, Kind: event.KindFile, Domain: "live.example.com",
		App: "live", Stream: "room42", URI: "record/live/room42/0.m3u8", Format: "m3u8", Duration: 1800,
	},
	Rule:       "recording-ready",
	DeliveryID: "d1",
}

// openYAML opens a slack instance through the registry, as the rules loader does.
func openYAML(t *testing.T, src string) (*instance, error) {
	t.Helper()
	return openWith(t, actiontest.Settings(t, "oncall", "slack", src))
}

func openWith(t *testing.T, s actionapi.Settings) (*instance, error) {
	t.Helper()
	typ, ok := actionapi.Default().Lookup("slack")
	if !ok {
		t.Fatal("type slack is not registered")
	}
	inst, err := typ.Open(s)
	if err != nil {
		return nil, err
	}
	return inst.(*instance), nil
}

// openPaced opens instance name on pacer, as the engine does on its store.
func openPaced(t *testing.T, name, src string, pacer store.Pacer) *instance {
	t.Helper()
	s := actiontest.Settings(t, name, "slack", src)
	s.Deps.Pacer = pacer
	inst, err := openWith(t, s)
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

func mustOpen(t *testing.T, src string) *instance {
	t.Helper()
	inst, err := openYAML(t, src)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return inst
}

func TestDeliver(t *testing.T) {
	tests := []struct {
		name       string
		params     []string // instance lines
		with       string
		wantText   string
		wantBlocks string // JSON of the blocks Slack received; "" for none
	}{
		{
			name:     "text from the instance",
			params:   []string{`text: "{{ .stream }} recorded ({{ .duration }}s)"`},
			wantText: "room42 recorded (1800s)",
		},
		{
			name:     "with overrides the instance text",
			params:   []string{`text: "{{ .stream }} recorded"`},
			with:     `text: "*{{ .app }}/{{ .stream }}* ready"`,
			wantText: "*live/room42* ready",
		},
		{
			name: "blocks are sent as a JSON array",
			params: []string{
				`text: "{{ .stream }} ready"`,
				`blocks: '[{"type":"section","text":{"type":"mrkdwn","text":"*{{ .stream }}* <https://console.example.com/r/{{ .stream }}|open>"}}]'`,
			},
			wantText:   "room42 ready",
			wantBlocks: `[{"text":{"text":"*room42* <https://console.example.com/r/room42|open>","type":"mrkdwn"},"type":"section"}]`,
		},
		{
			name: "blocks that render to whitespace are left out",
			params: []string{
				`text: "{{ .stream }} ready"`,
				`blocks: '{{ if eq .kind "status" }}[{"type":"divider"}]{{ end }}  '`,
			},
			wantText: "room42 ready",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			_, res := actiontest.Deliver(t, actiontest.Step(t, mustOpen(t, config(f.URL(), tt.params...)), tt.with), input)
			if res.Outcome != actionapi.Delivered || res.Detail != "ok" {
				t.Fatalf("result = %v %q (%v), want delivered ok", res.Outcome, res.Detail, res.Err)
			}
			requests, got, _ := f.stats()
			if requests != 1 || len(got) != 1 {
				t.Fatalf("slack saw %d requests and posted %d messages, want 1 and 1", requests, len(got))
			}
			if got[0]["text"] != tt.wantText {
				t.Errorf("text = %q, want %q", got[0]["text"], tt.wantText)
			}
			blocks, has := got[0]["blocks"]
			switch {
			case tt.wantBlocks == "" && has:
				t.Errorf("blocks = %v, want none", blocks)
			case tt.wantBlocks != "":
				var want any
				if err := json.Unmarshal([]byte(tt.wantBlocks), &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(blocks, want) {
					t.Errorf("blocks = %#v, want %s", blocks, tt.wantBlocks)
				}
			}
		})
	}
}

// A step's with: must not leak into the instance's defaults, which other
// steps share.
func TestWithLeavesDefaultsAlone(t *testing.T) {
	inst := mustOpen(t, config("https://hooks.slack.com/services/T0001/B0002/"+testToken, `text: "default {{ .stream }}"`))
	override := actiontest.Step(t, inst, `text: "override"`)
	plain := actiontest.Step(t, inst, "")
	for _, c := range []struct {
		name string
		st   actionapi.Step
		want string
	}{
		{name: "override", st: override, want: "override"},
		{name: "default", st: plain, want: "default room42"},
	} {
		plan, err := c.st.Plan(input)
		if err != nil {
			t.Fatalf("%s: plan: %v", c.name, err)
		}
		if got := plan.Body.(message).Text; got != c.want {
			t.Errorf("%s: text = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name    string
		params  []string
		wantErr string
	}{
		{
			name:    "text that renders empty",
			params:  []string{`text: "{{ if eq .kind \"status\" }}status{{ end }} "`},
			wantErr: "text rendered empty (slack rejects it with no_text)",
		},
		{
			name:    "blocks that render to an object",
			params:  []string{`text: hi`, `blocks: '{"type":"section","text":{"type":"mrkdwn","text":"{{ .stream }}"}}'`},
			wantErr: "blocks: want a JSON array of block objects",
		},
		{
			name:    "blocks that render to invalid JSON",
			params:  []string{`text: hi`, `blocks: '[{"type":"section",]'`},
			wantErr: "blocks: want a JSON array of block objects",
		},
		{
			name:    "blocks that are not objects",
			params:  []string{`text: hi`, `blocks: '["{{ .stream }}"]'`},
			wantErr: "blocks: want a JSON array of block objects",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := actiontest.Step(t, mustOpen(t, config("https://hooks.slack.com/services/T0001/B0002/"+testToken, tt.params...)), "")
			_, err := st.Plan(input)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("plan error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name           string
		replies        []http.HandlerFunc
		want           actionapi.Outcome
		wantRequests   int
		wantDelivered  int
		wantDetail     string
		minElapsed     time.Duration
		wantRetryAfter time.Duration
	}{
		{
			name:          "429 with Retry-After is waited out",
			replies:       []http.HandlerFunc{reply(http.StatusTooManyRequests, "rate_limited", "Retry-After", "1")},
			want:          actionapi.Delivered,
			wantRequests:  2,
			wantDelivered: 1,
			wantDetail:    "ok",
			minElapsed:    900 * time.Millisecond,
		},
		{
			name:          "500 then 200 is retried",
			replies:       []http.HandlerFunc{reply(http.StatusInternalServerError, "rollup_error")},
			want:          actionapi.Delivered,
			wantRequests:  2,
			wantDelivered: 1,
			wantDetail:    "ok",
		},
		{
			name:         "channel_not_found is permanent",
			replies:      []http.HandlerFunc{reply(http.StatusNotFound, "channel_not_found")},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "HTTP 404: channel_not_found",
		},
		{
			name:         "channel_is_archived is permanent",
			replies:      []http.HandlerFunc{reply(http.StatusGone, "channel_is_archived")},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "HTTP 410: channel_is_archived",
		},
		{
			name:         "action_prohibited is permanent",
			replies:      []http.HandlerFunc{reply(http.StatusForbidden, "action_prohibited")},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "HTTP 403: action_prohibited",
		},
		{
			name:         "invalid_payload is permanent",
			replies:      []http.HandlerFunc{reply(http.StatusBadRequest, "invalid_payload")},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   "HTTP 400: invalid_payload",
		},
		{
			name: "5xx on every attempt is retryable",
			replies: []http.HandlerFunc{
				reply(http.StatusServiceUnavailable, "service_unavailable"),
				reply(http.StatusServiceUnavailable, "service_unavailable"),
				reply(http.StatusServiceUnavailable, "service_unavailable"),
			},
			want:         actionapi.Retryable,
			wantRequests: 3,
			wantDetail:   "HTTP 503: service_unavailable",
		},
		{
			name: "429 on every attempt is retryable and keeps Retry-After",
			replies: []http.HandlerFunc{
				reply(http.StatusTooManyRequests, "rate_limited", "Retry-After", "1"),
				reply(http.StatusTooManyRequests, "rate_limited", "Retry-After", "1"),
				reply(http.StatusTooManyRequests, "rate_limited", "Retry-After", "1"),
			},
			want:           actionapi.Retryable,
			wantRequests:   3,
			wantDetail:     "HTTP 429: rate_limited",
			minElapsed:     1800 * time.Millisecond,
			wantRetryAfter: time.Second,
		},
		{
			name:         "200 with a body other than ok is not counted as delivered",
			replies:      []http.HandlerFunc{reply(http.StatusOK, "<html>portal</html>")},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantDetail:   `unexpected reply "<html>portal</html>"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			f.play(tt.replies...)
			st := actiontest.Step(t, mustOpen(t, config(f.URL(), `text: "{{ .stream }} ready"`)), "")
			start := time.Now()
			_, res := actiontest.Deliver(t, st, input)
			elapsed := time.Since(start)
			if res.Outcome != tt.want || !strings.Contains(res.Detail, tt.wantDetail) {
				t.Fatalf("result = %v %q, want %v containing %q", res.Outcome, res.Detail, tt.want, tt.wantDetail)
			}
			if (res.Err != nil) != (tt.want != actionapi.Delivered) {
				t.Errorf("err = %v with outcome %v", res.Err, res.Outcome)
			}
			requests, delivered, _ := f.stats()
			if requests != tt.wantRequests || len(delivered) != tt.wantDelivered {
				t.Errorf("slack saw %d requests and posted %d messages, want %d and %d",
					requests, len(delivered), tt.wantRequests, tt.wantDelivered)
			}
			if elapsed < tt.minElapsed {
				t.Errorf("took %v, want at least %v", elapsed, tt.minElapsed)
			}
			if res.RetryAfter != tt.wantRetryAfter {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, tt.wantRetryAfter)
			}
		})
	}
}

// A 429 asking for longer than a quick retry's wait ends the attempt at
// once, and the webhook's other deliveries are not sent until the wait is
// over: Slack may revoke a webhook that ignores its 429s.
func TestLongRetryAfterHoldsTheWebhook(t *testing.T) {
	f := newFakeSlack(t)
	f.play(reply(http.StatusTooManyRequests, "rate_limited", "Retry-After", "120"))
	inst := mustOpen(t, config(f.URL(), "text: hi"))
	clock := time.Now()
	var mu sync.Mutex
	inst.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	st := actiontest.Step(t, inst, "")

	start := time.Now()
	_, res := actiontest.Deliver(t, st, input)
	if res.Outcome != actionapi.Retryable || res.RetryAfter != 120*time.Second || !strings.Contains(res.Detail, "HTTP 429: rate_limited") {
		t.Fatalf("result = %v %q, retry after %v; want retryable after 120s", res.Outcome, res.Detail, res.RetryAfter)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v: the attempt slept through the Retry-After instead of ending", took)
	}

	advance(30 * time.Second)
	_, res = actiontest.Deliver(t, st, input)
	if res.Outcome != actionapi.Retryable || res.RetryAfter != 90*time.Second || !strings.HasPrefix(res.Detail, "not sent: ") {
		t.Errorf("during the wait: %v %q, retry after %v; want not sent, retry after 90s", res.Outcome, res.Detail, res.RetryAfter)
	}
	if requests, _, _ := f.stats(); requests != 1 {
		t.Errorf("slack saw %d requests, want 1: nothing is sent during the wait", requests)
	}

	advance(90 * time.Second)
	if _, res = actiontest.Deliver(t, st, input); res.Outcome != actionapi.Delivered {
		t.Errorf("after the wait: %v %q, want delivered", res.Outcome, res.Detail)
	}
}

func TestHangingReceiverTimesOut(t *testing.T) {
	f := newFakeSlack(t)
	f.play(f.hang, f.hang)
	inst := mustOpen(t, fmt.Sprintf("url: %s\ntimeout: 200ms\nretry: {attempts: 2, min_backoff: 10ms, max_backoff: 20ms}\ntext: hi\n", f.URL()))
	_, res := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input)
	if res.Outcome != actionapi.Retryable || !strings.Contains(res.Detail, "exceeded") { // "context deadline exceeded" or "Client.Timeout exceeded"
		t.Fatalf("result = %v %q, want retryable after a client timeout", res.Outcome, res.Detail)
	}
	if requests, _, _ := f.stats(); requests != 2 {
		t.Errorf("slack saw %d requests, want 2 (one retry)", requests)
	}
}

// Messages beyond the rate are queued, never dropped.
func TestRateLimitQueues(t *testing.T) {
	const (
		n        = 6
		interval = 40 * time.Millisecond
	)
	f := newFakeSlack(t)
	inst := mustOpen(t, config(f.URL(), `text: "{{ .stream }}"`))
	inst.pace = actionapi.Deps{}.WithDefaults().Pacing("oncall", "slack", f.URL(), interval, 1)

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
	_, delivered, arrivals := f.stats()
	seen := map[any]bool{}
	for _, m := range delivered {
		seen[m["text"]] = true
	}
	if len(delivered) != n || len(seen) != n {
		t.Fatalf("slack posted %d messages (%d distinct), want %d", len(delivered), len(seen), n)
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

// Instances sending to one webhook, in any replica, draw on one rate of
// at most one message a second with bursts of 3; the store knows the
// webhook by a key without its token.
func TestPaceFitsSlack(t *testing.T) {
	f, other := newFakeSlack(t), newFakeSlack(t)
	pacer := &actiontest.Pacer{}
	for _, inst := range []*instance{
		openPaced(t, "oncall", config(f.URL(), "text: hi"), pacer),
		openPaced(t, "ops", config(f.URL(), "text: hello"), pacer),
		openPaced(t, "elsewhere", config(other.URL(), "text: hi"), pacer),
	} {
		if _, res := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input); res.Outcome != actionapi.Delivered {
			t.Fatalf("%s: %v %q", inst.name, res.Outcome, res.Detail)
		}
	}
	for _, r := range pacer.TwoAccounts(t, testToken) {
		if r.Every < time.Second || r.Burst > 3 {
			t.Errorf("paced at one every %v with bursts of %d, want at most 1/s and a burst of 3", r.Every, r.Burst)
		}
	}
}

// Two replicas sharing a store, each with its own instance of one webhook,
// send 5 messages together at Slack's rate: 3 at once, then one a second.
func TestReplicasShareTheWebhooksRate(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := newFakeSlack(t)
	replicas := []actionapi.Instance{openPaced(t, "oncall", config(f.URL()), st), openPaced(t, "oncall", config(f.URL()), st)}
	const n = 5
	start := time.Now()
	actiontest.DeliverAtOnce(t, input, n, replicas...)
	_, delivered, arrivals := f.stats()
	if len(delivered) != n {
		t.Fatalf("slack posted %d messages, want %d", len(delivered), n)
	}
	last := slices.MaxFunc(arrivals, time.Time.Compare)
	if span, want := last.Sub(start), (n-sendBurst)*sendInterval*9/10; span < want {
		t.Errorf("%d messages through two replicas arrived within %v, want them paced over at least %v", n, span, want)
	}
}

func TestTarget(t *testing.T) {
	tests := []struct {
		name string
		url  string
		want string
	}{
		{name: "slack webhook", url: "https://hooks.slack.com/services/T0001/B0002/" + testToken, want: "https://hooks.slack.com/services/****"},
		{name: "proxy with the token in path and query", url: "https://proxy.example.com/" + testToken + "?key=" + testToken, want: "https://proxy.example.com/****"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := actiontest.Step(t, mustOpen(t, config(tt.url, "text: hi")), "").Plan(input)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Target != tt.want || plan.Method != http.MethodPost {
				t.Errorf("plan = %s %s, want POST %s", plan.Method, plan.Target, tt.want)
			}
		})
	}
}

// The webhook URL is a credential: it must not show in a plan, a result or
// an error, whatever went wrong.
func TestSecretsStayHidden(t *testing.T) {
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL + "/services/T0001/B0002/" + testToken
	refused.Close()

	tests := []struct {
		name    string
		url     func(f *fakeSlack) string
		replies func(f *fakeSlack) []http.HandlerFunc
		want    actionapi.Outcome
	}{
		{name: "delivered", want: actionapi.Delivered},
		{
			name: "error reply",
			replies: func(*fakeSlack) []http.HandlerFunc {
				return []http.HandlerFunc{reply(http.StatusNotFound, "channel_not_found")}
			},
			want: actionapi.Permanent,
		},
		{
			name:    "timeout",
			replies: func(f *fakeSlack) []http.HandlerFunc { return []http.HandlerFunc{f.hang, f.hang, f.hang} },
			want:    actionapi.Retryable,
		},
		{
			name: "connection refused",
			url:  func(*fakeSlack) string { return refusedURL },
			want: actionapi.Retryable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			url := f.URL()
			if tt.url != nil {
				url = tt.url(f)
			}
			if tt.replies != nil {
				f.play(tt.replies(f)...)
			}
			inst := mustOpen(t, fmt.Sprintf("url: %s\ntimeout: 200ms\nretry: {attempts: 3, min_backoff: 10ms, max_backoff: 20ms}\ntext: hi\n", url))
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
				if strings.Contains(s, testToken) {
					t.Errorf("%s reveals the webhook token: %s", where, s)
				}
			}
			if tt.want == actionapi.Retryable && !strings.Contains(res.Detail, `/services/****"`) {
				t.Errorf("transport error %q should name the redacted URL", res.Detail)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	const hook = "https://hooks.slack.com/services/T0001/B0002/" + testToken
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{name: "missing url", src: "text: hi\n", wantErr: "oncall: url is required"},
		{name: "unknown key", src: "url: " + hook + "\ntxt: hi\n", wantErr: `rules.yaml:2:1: unknown key "txt"`},
		{name: "not an http url", src: "url: hooks.slack.com/services/T0001/B0002/" + testToken + "\n", wantErr: "oncall: url: want an http(s) webhook URL"},
		{name: "bad timeout", src: "url: " + hook + "\ntimeout: soon\n", wantErr: "rules.yaml:2:1: cannot unmarshal !!str `soon` into time.Duration"},
		{name: "broken template", src: "url: " + hook + "\ntext: '{{ .stream '\n", wantErr: "rules.yaml:2:7:"},
		{name: "misspelt field", src: "url: " + hook + "\nblocks: '[{{ .steam }}]'\n", wantErr: `unknown field "steam"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openYAML(t, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("open error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error reveals the webhook token: %v", err)
			}
		})
	}
}

func TestStepErrors(t *testing.T) {
	tests := []struct {
		name     string
		instance string
		with     string
		wantErr  string
	}{
		{name: "no text anywhere", wantErr: "oncall: text is required"},
		{name: "unknown with key", instance: "text: hi", with: "\ntexts: hi\n", wantErr: `rules.yaml:2:1: unknown key "texts"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := mustOpen(t, config("https://hooks.slack.com/services/T0001/B0002/"+testToken, tt.instance))
			var p actionapi.Params
			if tt.with != "" {
				p = actionapi.Params{File: "rules.yaml", Node: actiontest.Node(t, tt.with)}
			}
			_, err := inst.Step(p)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("step error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
