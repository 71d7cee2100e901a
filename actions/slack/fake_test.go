package slack

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSlack is an incoming webhook that checks what Slack checks and answers
// as Slack does: 200 with the plain-text body "ok", or an HTTP error status
// with Slack's error string as a plain-text body.
type fakeSlack struct {
	srv  *httptest.Server
	path string // the webhook's secret path

	mu        sync.Mutex
	script    []http.HandlerFunc // canned replies, one per request, before the real behaviour
	requests  int
	delivered []map[string]any // messages Slack would have posted
	arrivals  []time.Time      // when each delivered message arrived
	release   chan struct{}    // closed at cleanup, so hanging handlers end
}

const testToken = "SeCrEtToKeN0123456789abcd"

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{path: "/services/T0001/B0002/" + testToken, release: make(chan struct{})}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.release) }) // runs first: cleanups are LIFO
	return f
}

// URL is the webhook URL, token included.
func (f *fakeSlack) URL() string { return f.srv.URL + f.path }

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	if r.Method != http.MethodPost || r.URL.Path != f.path {
		answer(w, http.StatusNotFound, "no_service")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		answer(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var msg map[string]any
	if err := json.Unmarshal(raw, &msg); err != nil {
		answer(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	text, _ := msg["text"].(string)
	blocks, hasBlocks := msg["blocks"]
	if hasBlocks {
		if _, ok := blocks.([]any); !ok {
			answer(w, http.StatusBadRequest, "invalid_blocks_format")
			return
		}
	}
	if strings.TrimSpace(text) == "" && !hasBlocks {
		answer(w, http.StatusBadRequest, "no_text")
		return
	}
	f.mu.Lock()
	f.delivered = append(f.delivered, msg)
	f.arrivals = append(f.arrivals, time.Now())
	f.mu.Unlock()
	answer(w, http.StatusOK, "ok")
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// play queues canned replies for the next requests.
func (f *fakeSlack) play(replies ...http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, replies...)
}

// reply is a canned Slack answer; headers are name, value pairs.
func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		answer(w, status, body)
	}
}

// hang never answers: the client has to give up.
func (f *fakeSlack) hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.release:
	}
}

func (f *fakeSlack) stats() (requests int, delivered []map[string]any, arrivals []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, append([]map[string]any(nil), f.delivered...), append([]time.Time(nil), f.arrivals...)
}
