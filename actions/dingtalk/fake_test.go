package dingtalk

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "ToKeN0123456789abcdefSeCrEt"

// robot is how a fake robot is set up in DingTalk's console.
type robot struct {
	secret  string // 加签 secret; "" for an unsigned robot
	keyword string // security keyword; "" for none
}

// fakeDingTalk is a custom robot endpoint that checks what DingTalk checks
// and answers as it does: HTTP 200 with {"errcode":…,"errmsg":…}, failures
// included.
type fakeDingTalk struct {
	srv   *httptest.Server
	robot robot

	mu        sync.Mutex
	script    []http.HandlerFunc // canned replies, one per request, before the real behaviour
	requests  int
	delivered []map[string]any // messages DingTalk would have posted
	sizes     []int            // their body sizes
	arrivals  []time.Time
	release   chan struct{} // closed at cleanup, so hanging handlers end
}

func newFakeDingTalk(t *testing.T, r robot) *fakeDingTalk {
	t.Helper()
	f := &fakeDingTalk{robot: r, release: make(chan struct{})}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.release) }) // runs first: cleanups are LIFO
	return f
}

// URL is the robot's webhook URL, token included.
func (f *fakeDingTalk) URL() string { return f.srv.URL + "/robot/send?access_token=" + testToken }

func (f *fakeDingTalk) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	var canned http.HandlerFunc
	if len(f.script) > 0 {
		canned, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if canned != nil {
		canned(w, r)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/robot/send" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	switch tok := q.Get("access_token"); {
	case tok == "":
		errcode(40035, "缺少参数 access_token")(w, r)
		return
	case tok != testToken:
		errcode(300001, "token is not exist")(w, r)
		return
	}
	if f.robot.secret != "" {
		if code, msg := f.checkSign(q.Get("timestamp"), q.Get("sign")); code != 0 {
			errcode(code, msg)(w, r)
			return
		}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		errcode(40035, "缺少参数 json")(w, r)
		return
	}
	raw, _ := io.ReadAll(r.Body)
	if len(raw) > 20000 {
		errcode(460101, "message too long, exceed 20000 bytes")(w, r)
		return
	}
	var msg map[string]any
	if err := json.Unmarshal(raw, &msg); err != nil {
		errcode(40035, "缺少参数 json")(w, r)
		return
	}
	content, missing := required(msg)
	if missing != "" {
		errcode(40035, "缺少参数 "+missing)(w, r)
		return
	}
	if f.robot.keyword != "" && !strings.Contains(content, f.robot.keyword) {
		errcode(310000, "keywords not in content, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]")(w, r)
		return
	}
	f.mu.Lock()
	f.delivered = append(f.delivered, msg)
	f.sizes = append(f.sizes, len(raw))
	f.arrivals = append(f.arrivals, time.Now())
	f.mu.Unlock()
	errcode(0, "ok")(w, r)
}

// checkSign verifies 加签 with the fake's own copy of the secret.
func (f *fakeDingTalk) checkSign(timestamp, sign string) (int, string) {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || time.Since(time.UnixMilli(ts)).Abs() > time.Hour {
		return 310000, "invalid timestamp, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]"
	}
	m := hmac.New(sha256.New, []byte(f.robot.secret))
	m.Write([]byte(timestamp + "\n" + f.robot.secret))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(sign), []byte(want)) {
		return 310000, "sign not match, more: [https://open.dingtalk.com/document/robots/customize-robot-security-settings]"
	}
	return 0, ""
}

// required checks a message's msgtype-specific fields, by their exact JSON
// names, and returns the text a keyword is looked for in, or the missing
// field.
func required(msg map[string]any) (content, missing string) {
	str := func(o map[string]any, k string) string { s, _ := o[k].(string); return s }
	typ := str(msg, "msgtype")
	body, _ := msg[typ].(map[string]any)
	switch typ {
	case "text":
		if str(body, "content") == "" {
			return "", "text.content"
		}
		return str(body, "content"), ""
	case "markdown", "actionCard":
		for _, k := range []string{"title", "text"} {
			if str(body, k) == "" {
				return "", typ + "." + k
			}
		}
		if typ == "actionCard" && (str(body, "singleTitle") == "" || str(body, "singleURL") == "") {
			btns, _ := body["btns"].([]any)
			if len(btns) == 0 {
				return "", "actionCard.btns"
			}
			for _, b := range btns {
				b, _ := b.(map[string]any)
				if str(b, "title") == "" || str(b, "actionURL") == "" {
					return "", "actionCard.btns.actionURL"
				}
			}
		}
		return str(body, "title") + str(body, "text"), ""
	}
	return "", "msgtype"
}

// errcode is DingTalk's reply: HTTP 200 whatever the errcode.
func errcode(code int, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"errcode": code, "errmsg": msg})
	}
}

// status is a reply from something in front of DingTalk.
func status(code int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

// play queues canned replies for the next requests.
func (f *fakeDingTalk) play(replies ...http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, replies...)
}

// hang never answers: the client has to give up.
func (f *fakeDingTalk) hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.release:
	}
}

func (f *fakeDingTalk) stats() (requests int, delivered []map[string]any, sizes []int, arrivals []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, append([]map[string]any(nil), f.delivered...), append([]int(nil), f.sizes...), append([]time.Time(nil), f.arrivals...)
}
