package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/livehook/livehook/actions/actiontest"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// openHook opens a webhook instance from YAML settings through the registry.
func openHook(t *testing.T, settings string) (actionapi.Instance, *secret.Redactor, error) {
	t.Helper()
	typ, ok := actionapi.Default().Lookup("webhook")
	if !ok {
		t.Fatal("webhook is not registered")
	}
	s := actiontest.Settings(t, "hook", "webhook", settings)
	inst, err := typ.Open(s)
	return inst, s.Secrets, err
}

func mustStep(t *testing.T, settings, with string) actionapi.Step {
	t.Helper()
	inst, _, err := openHook(t, settings)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return actiontest.Step(t, inst, with)
}

func testEvent() *event.Event {
	return &event.Event{
		ID: "ev-1", Source: event.SourceRecord, Kind: event.KindStatus,
		Domain: "live.example.com", App: "live", Stream: "room 42",
		Event: "record_error", PushArgs: map[string]string{"token": "abc"},
		ReceivedAt: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
		Payload:    map[string]any{"domain": "live.example.com", "event": "record_error", "n": 3.5},
	}
}

func input() actionapi.Input {
	return actionapi.Input{Event: testEvent(), Rule: "failed", DeliveryID: "dlv-1"}
}

func wantOutcome(t *testing.T, r actionapi.Result, want actionapi.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome = %v (detail %q, err %v), want %v", r.Outcome, r.Detail, r.Err, want)
	}
}

func TestDefaultBodyIsEventJSON(t *testing.T) {
	rc := newReceiver(t, "")
	st := mustStep(t, fmt.Sprintf("url: %s/hook", rc.srv.URL), "")
	p, r := actiontest.Deliver(t, st, input())
	wantOutcome(t, r, actionapi.Delivered)

	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("receiver saw %d requests, want 1", len(got))
	}
	req := got[0]
	if req.method != http.MethodPost || req.path != "/hook" {
		t.Errorf("request = %s %s, want POST /hook", req.method, req.path)
	}
	if ct := req.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var ev event.Event
	if err := json.Unmarshal(req.body, &ev); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, req.body)
	}
	if !reflect.DeepEqual(&ev, testEvent()) {
		t.Errorf("body decodes to\n%+v\nwant the event\n%+v", ev, *testEvent())
	}
	if shown, _ := json.Marshal(p.Body); string(shown) != string(req.body) {
		t.Errorf("plan body %s differs from the body sent %s", shown, req.body)
	}
	if id := req.header.Get("webhook-id"); id != "dlv-1" {
		t.Errorf("webhook-id = %q, want the delivery id", id)
	}
	if req.header.Get("webhook-signature") != "" {
		t.Error("an unsigned instance sent webhook-signature")
	}
}

func TestTemplatedURL(t *testing.T) {
	rc := newReceiver(t, "")
	tests := []struct {
		name       string
		settings   string
		wantMethod string
		wantPath   string
		wantQuery  string
		wantTarget string
		wantBody   string
	}{
		{
			name:       "path and query",
			settings:   `url: '%s/hooks/{{ .app }}/{{ .event }}?stream={{ .stream | urlquery }}&token=tok-s3cret'`,
			wantMethod: http.MethodPost,
			wantPath:   "/hooks/live/record_error",
			wantQuery:  "stream=room+42&token=tok-s3cret",
			wantTarget: "/hooks/live/record_error?stream=****&token=****",
		},
		{
			name:       "GET sends no body",
			settings:   "url: '%s/status?id={{ .id }}'\nmethod: get",
			wantMethod: http.MethodGet,
			wantPath:   "/status",
			wantQuery:  "id=ev-1",
			wantTarget: "/status?id=****",
		},
		{
			name:       "no path",
			settings:   "url: '%s'\nbody: '{{ .stream }}'",
			wantMethod: http.MethodPost,
			wantPath:   "/",
			wantTarget: "",
			wantBody:   "room 42",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rc.requests())
			st := mustStep(t, fmt.Sprintf(tc.settings, rc.srv.URL), "")
			p, r := actiontest.Deliver(t, st, input())
			wantOutcome(t, r, actionapi.Delivered)
			got := rc.requests()[before:]
			if len(got) != 1 {
				t.Fatalf("receiver saw %d requests, want 1", len(got))
			}
			req := got[0]
			if req.method != tc.wantMethod || req.path != tc.wantPath || req.query != tc.wantQuery {
				t.Errorf("request = %s %s ? %s, want %s %s ? %s", req.method, req.path, req.query, tc.wantMethod, tc.wantPath, tc.wantQuery)
			}
			if tc.wantMethod == http.MethodGet && (len(req.body) != 0 || req.header.Get("Content-Type") != "") {
				t.Errorf("GET carried body %q with Content-Type %q", req.body, req.header.Get("Content-Type"))
			}
			if tc.wantBody != "" && string(req.body) != tc.wantBody {
				t.Errorf("body = %q, want %q", req.body, tc.wantBody)
			}
			if p.Method != tc.wantMethod || p.Target != rc.srv.URL+tc.wantTarget {
				t.Errorf("plan = %s %s, want %s %s", p.Method, p.Target, tc.wantMethod, rc.srv.URL+tc.wantTarget)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		want     string
	}{
		{name: "template in host", settings: "url: 'https://{{ .domain }}/hook'", want: "rules.yaml:1:6: url: the scheme and host must be literal"},
		{name: "template across host and path", settings: "url: 'https://example.com{{ \"/x\" }}'", want: "the scheme and host must be literal"},
		{name: "template in scheme", settings: "url: '{{ .source }}://example.com/'", want: "the scheme and host must be literal"},
		{name: "missing url", settings: "method: POST", want: "hook: url is required"},
		{name: "relative url", settings: "url: /hook", want: "want an absolute http:// or https:// URL"},
		{name: "other scheme", settings: "url: ftp://example.com/x", want: `scheme "ftp": want http or https`},
		{name: "bad path template", settings: "url: 'https://example.com/{{ .app '", want: "rules.yaml:1:6: url: template:"},
		{name: "unknown field in path", settings: "url: 'https://example.com/{{ .ap }}'", want: `unknown field "ap"`},
		{name: "bad method", settings: "url: https://example.com/\nmethod: TRACE", want: `method "TRACE": want one of GET, POST, PUT, PATCH, DELETE`},
		{name: "bad header name", settings: "url: https://example.com/\nheaders: {'X Bad': v}", want: `headers: "X Bad" is not a valid header name`},
		{name: "reserved header", settings: "url: https://example.com/\nheaders: {webhook-id: x}", want: "headers: Webhook-Id is set by livehook"},
		{name: "header twice", settings: "url: https://example.com/\nheaders: {x-a: '1', X-A: '2'}", want: "are the same header"},
		{name: "GET with body", settings: "url: https://example.com/\nmethod: GET\nbody: x", want: "a GET request carries no body"},
		{name: "bad whsec secret", settings: "url: https://example.com/\nsecret: whsec_!!notbase64", want: "the part after whsec_ is not valid base64"},
		{name: "unknown key", settings: "url: https://example.com/\nurl_path: /x", want: `rules.yaml:2:1: unknown key "url_path"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := openHook(t, tc.settings)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open error = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "notbase64") {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	rc := newReceiver(t, "")
	inst, _, err := openHook(t, fmt.Sprintf(`
url: %s/hook
headers:
  X-Stream: '{{ .stream }}'
  authorization: Bearer tok-abc123
  X-Dropped: 'x'
body: '{"text": "{{ .event }}"}'
`, rc.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		with        string
		wantHeaders map[string]string // "" means absent
		wantBody    string
		wantShown   map[string]string
	}{
		{
			name:        "instance defaults",
			wantHeaders: map[string]string{"X-Stream": "room 42", "Authorization": "Bearer tok-abc123", "X-Dropped": "x"},
			wantBody:    `{"text": "record_error"}`,
			wantShown:   map[string]string{"X-Stream": "room 42", "Authorization": "Bearer ****", "X-Dropped": "x", "Content-Type": "application/json", "Webhook-Id": "dlv-1"},
		},
		{
			name:        "with overrides headers and body",
			with:        "{headers: {x-stream: '{{ .app }}-{{ .stream }}', X-Api-Key: key-123456, X-Dropped: '', Content-Type: text/plain}, body: 'failed: {{ .stream }}'}",
			wantHeaders: map[string]string{"X-Stream": "live-room 42", "Authorization": "Bearer tok-abc123", "X-Api-Key": "key-123456", "X-Dropped": "", "Content-Type": "text/plain"},
			wantBody:    "failed: room 42",
			wantShown:   map[string]string{"X-Stream": "live-room 42", "Authorization": "Bearer ****", "X-Api-Key": "****", "Content-Type": "text/plain", "Webhook-Id": "dlv-1"},
		},
		{
			// A step's overrides must not leak into the instance's defaults.
			name:        "defaults again after an override",
			wantHeaders: map[string]string{"X-Stream": "room 42", "X-Api-Key": "", "X-Dropped": "x", "Content-Type": "application/json"},
			wantBody:    `{"text": "record_error"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rc.requests())
			p, r := actiontest.Deliver(t, actiontest.Step(t, inst, tc.with), input())
			wantOutcome(t, r, actionapi.Delivered)
			req := rc.requests()[before]
			for k, v := range tc.wantHeaders {
				if got := req.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if string(req.body) != tc.wantBody {
				t.Errorf("body = %q, want %q", req.body, tc.wantBody)
			}
			if tc.wantShown != nil && !reflect.DeepEqual(p.Info["headers"], tc.wantShown) {
				t.Errorf("plan headers = %v, want %v", p.Info["headers"], tc.wantShown)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		want     string
	}{
		{name: "line break in header", settings: "url: https://example.com/\nheaders: {X-Note: \"a{{ \\\"\\\\n\\\" }}b\"}", want: "header X-Note: the rendered value holds a control character"},
		{name: "path renders a host", settings: "url: 'https://example.com{{ \"\" }}/x'", want: "the scheme and host must be literal"},
		{name: "bad escape in rendered path", settings: "url: 'https://example.com/{{ .app }}%zz'", want: `url: rendered path or query: invalid URL escape "%zz"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst, _, err := openHook(t, tc.settings)
			if err == nil {
				_, err = actiontest.Step(t, inst, "").Plan(input())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSignedDelivery(t *testing.T) {
	tests := []struct {
		name         string
		secret       string // the sender's
		receiverKey  string // the receiver's own copy
		want         actionapi.Outcome
		wantInDetail string
	}{
		{name: "whsec secret", secret: testSecret, receiverKey: testSecret, want: actionapi.Delivered},
		{name: "raw secret", secret: "plain-shared-secret", receiverKey: "plain-shared-secret", want: actionapi.Delivered},
		{name: "receiver holds another secret", secret: testSecret, receiverKey: "whsec_b3RoZXItc2VjcmV0LWtleQ==", want: actionapi.Permanent, wantInDetail: "HTTP 401: invalid signature: no matching signature found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.receiverKey)
			st := mustStep(t, fmt.Sprintf("url: %s/hook\nsecret: %s", rc.srv.URL, tc.secret), "")
			p, r := actiontest.Deliver(t, st, input())
			wantOutcome(t, r, tc.want)
			if !strings.Contains(r.Detail, tc.wantInDetail) {
				t.Errorf("detail = %q, want it to contain %q", r.Detail, tc.wantInDetail)
			}
			got := rc.requests()
			if len(got) != 1 {
				t.Fatalf("receiver saw %d requests, want 1", len(got))
			}
			if id := got[0].header.Get("webhook-id"); id != "dlv-1" {
				t.Errorf("webhook-id = %q, want dlv-1", id)
			}
			if p.Info["signed"] != true {
				t.Errorf("plan info signed = %v, want true", p.Info["signed"])
			}
		})
	}
}

// TestSignatureVector delivers the Standard Webhooks example message and
// checks the signature the receiver gets against the one published with
// the spec's reference libraries and against an independent HMAC.
func TestSignatureVector(t *testing.T) {
	const (
		id   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts   = 1614265330
		body = `{"test": 2432232314}`
		// Published with the Standard Webhooks reference libraries.
		published = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	rc := newReceiver(t, "") // the example's timestamp is long past: do not check it
	typ, _ := actionapi.Default().Lookup("webhook")
	s := actiontest.Settings(t, "hook", "webhook", fmt.Sprintf("url: %s/hook\nsecret: %s\nbody: '%s'", rc.srv.URL, testSecret, body))
	s.Deps.Now = func() time.Time { return time.Unix(ts, 0) }
	inst, err := typ.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	in := input()
	in.DeliveryID = id
	_, r := actiontest.Deliver(t, actiontest.Step(t, inst, ""), in)
	wantOutcome(t, r, actionapi.Delivered)
	h := rc.requests()[0].header
	got := h.Get("webhook-signature")

	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte(fmt.Sprintf("%s.%d.%s", id, ts, body)))
	independent := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))

	if got != independent || got != published || h.Get("webhook-id") != id || h.Get("webhook-timestamp") != strconv.Itoa(ts) {
		t.Errorf("signature = %s, independent HMAC = %s, published = %s (headers %v)", got, independent, published, h)
	}

	rawKey, err := auth.WebhookKey("not-prefixed")
	if err != nil || string(rawKey) != "not-prefixed" {
		t.Errorf("a secret without whsec_ must be used as raw bytes, got %q, %v", rawKey, err)
	}
}

// TestReferenceLibraryVerifies delivers to a receiver that verifies with
// the Standard Webhooks specification's own Go library, as a consumer
// would, for a whsec_ secret and for a raw one.
func TestReferenceLibraryVerifies(t *testing.T) {
	for name, key := range map[string]string{"whsec secret": testSecret, "raw secret": "plain-shared-secret"} {
		t.Run(name, func(t *testing.T) {
			wh, err := standardwebhooks.NewWebhookRaw([]byte(key))
			if b64, ok := strings.CutPrefix(key, "whsec_"); ok {
				wh, err = standardwebhooks.NewWebhook(b64)
			}
			if err != nil {
				t.Fatal(err)
			}
			verdicts := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				err := wh.Verify(body, r.Header)
				if err != nil {
					w.WriteHeader(http.StatusUnauthorized)
				}
				verdicts <- err
			}))
			defer srv.Close()
			st := mustStep(t, fmt.Sprintf("url: %s/hook\nsecret: %s", srv.URL, key), "")
			_, r := actiontest.Deliver(t, st, input())
			if err := <-verdicts; err != nil || r.Outcome != actionapi.Delivered {
				t.Errorf("outcome %v (%s); the library says %v", r.Outcome, r.Detail, err)
			}
		})
	}
}

func TestSameIDAcrossRetries(t *testing.T) {
	rc := newReceiver(t, testSecret, reply{status: http.StatusInternalServerError, body: "busy"})
	st := mustStep(t, fmt.Sprintf("url: %s/hook\nsecret: %s\nretry: {attempts: 3, min_backoff: 10ms, max_backoff: 50ms}", rc.srv.URL, testSecret), "")
	_, r := actiontest.Deliver(t, st, input())
	wantOutcome(t, r, actionapi.Delivered)
	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("receiver saw %d requests, want 2 (500 then 200)", len(got))
	}
	for i, req := range got {
		if req.verifyErr != nil {
			t.Errorf("attempt %d failed verification: %v", i+1, req.verifyErr)
		}
		if id := req.header.Get("webhook-id"); id != "dlv-1" {
			t.Errorf("attempt %d webhook-id = %q, want dlv-1", i+1, id)
		}
	}
}

func TestDeliveryIDFallback(t *testing.T) {
	rc := newReceiver(t, testSecret)
	st := mustStep(t, fmt.Sprintf("url: %s/hook\nsecret: %s", rc.srv.URL, testSecret), "")
	in := input()
	in.DeliveryID = ""
	_, r := actiontest.Deliver(t, st, in)
	wantOutcome(t, r, actionapi.Delivered)
	if id := rc.requests()[0].header.Get("webhook-id"); id != "ev-1:failed" {
		t.Errorf("webhook-id = %q, want the event id and rule", id)
	}
}

func TestRetryAfter(t *testing.T) {
	rc := newReceiver(t, "", reply{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "1"}, body: "slow down"})
	st := mustStep(t, fmt.Sprintf("url: %s/hook\nretry: {attempts: 2, min_backoff: 10ms, max_backoff: 20ms}", rc.srv.URL), "")
	_, r := actiontest.Deliver(t, st, input())
	wantOutcome(t, r, actionapi.Delivered)
	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("receiver saw %d requests, want 2", len(got))
	}
	// Retry-After overrides the 20ms max backoff. Lower bound only, with
	// room for clock granularity.
	if gap := got[1].at.Sub(got[0].at); gap < 950*time.Millisecond {
		t.Errorf("retried after %v, want the 1s the receiver asked for", gap)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name         string
		replies      []reply
		retry        string
		want         actionapi.Outcome
		wantRequests int
		wantInDetail string
	}{
		{
			name:         "404 is permanent and not retried",
			replies:      []reply{{status: http.StatusNotFound, body: "no such hook\n"}},
			want:         actionapi.Permanent,
			wantRequests: 1,
			wantInDetail: "HTTP 404: no such hook",
		},
		{
			name:         "503 until retries run out",
			replies:      []reply{{status: 503, body: "down"}, {status: 503, body: "down"}, {status: 503, body: "still down"}},
			want:         actionapi.Retryable,
			wantRequests: 3,
			wantInDetail: "HTTP 503: still down",
		},
		{
			name:         "a hanging receiver times out",
			replies:      []reply{{hang: true}},
			retry:        "timeout: 200ms\nretry: {attempts: 1}",
			want:         actionapi.Retryable,
			wantRequests: 1,
			wantInDetail: "exceeded", // "context deadline exceeded" or "Client.Timeout exceeded"
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, "", tc.replies...)
			retry := tc.retry
			if retry == "" {
				retry = "retry: {attempts: 3, min_backoff: 10ms, max_backoff: 20ms}"
			}
			st := mustStep(t, fmt.Sprintf("url: %s/hook\n%s", rc.srv.URL, retry), "")
			_, r := actiontest.Deliver(t, st, input())
			wantOutcome(t, r, tc.want)
			if n := len(rc.requests()); n != tc.wantRequests {
				t.Errorf("receiver saw %d requests, want %d", n, tc.wantRequests)
			}
			if !strings.Contains(r.Detail, tc.wantInDetail) || r.Err == nil {
				t.Errorf("detail = %q, err = %v; want detail containing %q and an error", r.Detail, r.Err, tc.wantInDetail)
			}
		})
	}
}

func TestSecretsNeverShown(t *testing.T) {
	const (
		token  = "tok-9f8e7d6c"
		apiKey = "key-5a4b3c2d"
	)
	rawKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	leaks := []string{testSecret, strings.TrimPrefix(testSecret, "whsec_"), string(rawKey), token, apiKey}
	tests := []struct {
		name    string
		replies []reply
	}{
		{name: "delivered", replies: nil},
		{name: "rejected", replies: []reply{{status: http.StatusBadRequest, body: "bad payload"}}},
		{name: "timed out", replies: []reply{{hang: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, testSecret, tc.replies...)
			inst, red, err := openHook(t, fmt.Sprintf(`
url: '%s/hook/{{ .app }}?token=%s&stream={{ .stream | urlquery }}'
secret: %s
headers: {X-Api-Key: %s, Authorization: 'Basic %s'}
timeout: 300ms
retry: {attempts: 1}
`, rc.srv.URL, token, testSecret, apiKey, apiKey))
			if err != nil {
				t.Fatal(err)
			}
			p, r := actiontest.Deliver(t, actiontest.Step(t, inst, ""), input())
			if tc.replies == nil {
				wantOutcome(t, r, actionapi.Delivered)
			} else {
				wantOutcome(t, r, map[bool]actionapi.Outcome{true: actionapi.Retryable, false: actionapi.Permanent}[tc.replies[0].hang])
			}
			planJSON, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			shown := []string{string(planJSON), r.Detail}
			if r.Err != nil {
				shown = append(shown, r.Err.Error())
			}
			for _, text := range shown {
				for _, s := range leaks {
					if strings.Contains(text, s) {
						t.Errorf("%q leaks secret %q", text, s)
					}
				}
			}
			if !strings.Contains(p.Target, "token=****") {
				t.Errorf("target %q does not show the token redacted", p.Target)
			}
			// The engine scrubs any text with the Redactor: it must know
			// the URL's token as well as the signing secret.
			for _, s := range []string{token, testSecret} {
				if got := red.Redact("x " + s + " y"); got != "x **** y" {
					t.Errorf("redactor does not know %q: %q", s, got)
				}
			}
		})
	}
}

func TestURLCredentialsKnownToRedactor(t *testing.T) {
	tests := []struct {
		name       string
		url        string
		secret     []string // the Redactor must scrub these
		plain      []string // and leave these alone
		wantTarget string
	}{
		{
			name:       "query",
			url:        "https://example.com/h?app=live&token=abc1&sig=s%2Fx1&id=0123456789abcdef0&s={{ .stream }}",
			secret:     []string{"abc1", "s%2Fx1", "s/x1", "0123456789abcdef0"},
			plain:      []string{"live", "example.com"},
			wantTarget: "https://example.com/h?app=****&token=****&sig=****&id=****&s=****",
		},
		{
			name:       "token in the path",
			url:        "https://discord.example.com/api/webhooks/123456/AbCdEfGhIjKlMnOpQrStUvWxYz0123/{{ .app }}",
			secret:     []string{"AbCdEfGhIjKlMnOpQrStUvWxYz0123"},
			plain:      []string{"webhooks", "123456", "discord.example.com"},
			wantTarget: "https://discord.example.com/api/webhooks/123456/****/live",
		},
		{
			name:       "userinfo",
			url:        "https://robot:pw-12345@example.com/h",
			secret:     []string{"pw-12345"},
			plain:      []string{"robot"},
			wantTarget: "https://****@example.com/h",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst, red, err := openHook(t, fmt.Sprintf("url: '%s'", tc.url))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.secret {
				if got := red.Redact(s); got != secret.Redacted {
					t.Errorf("redactor leaves %q as %q, want it scrubbed", s, got)
				}
			}
			for _, s := range tc.plain {
				if got := red.Redact(s); got != s {
					t.Errorf("redactor scrubs plain %q", s)
				}
			}
			p, err := actiontest.Step(t, inst, "").Plan(input())
			if err != nil {
				t.Fatal(err)
			}
			if p.Target != tc.wantTarget {
				t.Errorf("target = %q, want %q", p.Target, tc.wantTarget)
			}
		})
	}
}

// A webhook instance delivers 64 at once unless its delivery: says
// otherwise, and keeps the alerting policy's other bounds.
func TestDefaultDeliveryPolicy(t *testing.T) {
	typ, ok := actionapi.Default().Lookup("webhook")
	if !ok {
		t.Fatal("webhook is not registered")
	}
	want := actionapi.Alerting
	want.Concurrency = 64
	if typ.Delivery != want {
		t.Errorf("webhook delivery policy %+v, want %+v", typ.Delivery, want)
	}
}
