package main

import (
	"crypto/hmac"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeFeishu is a Feishu custom bot. It checks what Feishu checks (the
// token in the path, a JSON body with a known msg_type and its content,
// and for a signing bot the timestamp and sign in the body) and answers
// as Feishu does: HTTP 200 with a JSON code.
type fakeFeishu struct {
	token  string
	secret string // when set, the bot verifies signatures
	now    func() time.Time

	mu       sync.Mutex
	requests int
	got      []map[string]any                               // accepted messages
	script   []func(w http.ResponseWriter, r *http.Request) // played first, in order, one per request
	srv      *httptest.Server
}

func newFakeFeishu(t *testing.T, token, secret string) *fakeFeishu {
	f := &fakeFeishu{token: token, secret: secret, now: time.Now}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeFeishu) url() string { return f.srv.URL + "/open-apis/bot/v2/hook/" + f.token }

// then queues scripted replies, played before the normal behaviour.
func (f *fakeFeishu) then(replies ...func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, replies...)
}

func (f *fakeFeishu) messages() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.got...)
}

func (f *fakeFeishu) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func reply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	body := map[string]any{"code": code, "msg": msg, "data": map[string]any{}}
	_ = json.NewEncoder(w).Encode(body)
}

func (f *fakeFeishu) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	var scripted func(http.ResponseWriter, *http.Request)
	if len(f.script) > 0 {
		scripted, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if scripted != nil {
		scripted(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path != "/open-apis/bot/v2/hook/"+f.token {
		// The code for an unknown token is not confirmed by the spec.
		reply(w, 19001, "param invalid: incoming webhook access token invalid")
		return
	}
	var msg map[string]any
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		reply(w, 9499, "Bad Request")
		return
	}
	if f.secret != "" && !f.signed(msg) {
		reply(w, 19021, "sign match fail or timestamp is not within one hour from current time")
		return
	}
	if problem := contentProblem(msg); problem != "" {
		reply(w, 9499, problem)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, msg)
	f.mu.Unlock()
	reply(w, 0, "success")
}

// signed checks timestamp (seconds, as a string, within an hour of now)
// and sign as Feishu does.
func (f *fakeFeishu) signed(msg map[string]any) bool {
	tsText, _ := msg["timestamp"].(string)
	got, _ := msg["sign"].(string)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || got == "" {
		return false
	}
	if d := f.now().Sub(time.Unix(ts, 0)); d > time.Hour || d < -time.Hour {
		return false
	}
	return hmac.Equal([]byte(got), []byte(sign(ts, f.secret)))
}

func contentProblem(msg map[string]any) string {
	switch msg["msg_type"] {
	case "text":
		content, _ := msg["content"].(map[string]any)
		if text, _ := content["text"].(string); text == "" {
			return "text content is empty"
		}
	case "interactive":
		if _, ok := msg["card"].(map[string]any); !ok {
			return "card is not an object"
		}
	default:
		return "unknown msg_type"
	}
	return ""
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
