package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// fakeWeCom is a WeCom group robot. It checks what WeCom checks (the key,
// a JSON body with a known msgtype and its content, text content of at
// most 2048 bytes, string lists of mentions, 20 messages a minute) and
// answers as WeCom does: HTTP 200 with errcode and errmsg. The codes other
// than 0 are the commonly quoted ones; the spec marks them unconfirmed.
type fakeWeCom struct {
	key string

	mu       sync.Mutex
	requests int
	got      []map[string]any
	srv      *httptest.Server
}

func newFakeWeCom(t *testing.T, key string) *fakeWeCom {
	f := &fakeWeCom{key: key}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeWeCom) url() string { return f.srv.URL + "/cgi-bin/webhook/send?key=" + f.key }

func (f *fakeWeCom) messages() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.got...)
}

func (f *fakeWeCom) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func answer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"errcode": code, "errmsg": msg})
}

func (f *fakeWeCom) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	accepted := len(f.got)
	f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/cgi-bin/webhook/send" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.URL.Query().Get("key") != f.key {
		answer(w, 93000, "invalid webhook url, hint: [1714564803_1]")
		return
	}
	if accepted >= 20 { // 20 messages a minute; the fake's minute never ends
		answer(w, 45009, "api freq out of limit")
		return
	}
	var msg map[string]any
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		answer(w, 40001, "invalid json")
		return
	}
	if problem := wecomProblem(msg); problem != "" {
		answer(w, 40008, problem)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, msg)
	f.mu.Unlock()
	answer(w, 0, "ok")
}

func wecomProblem(msg map[string]any) string {
	switch msg["msgtype"] {
	case "text":
		text, _ := msg["text"].(map[string]any)
		content, _ := text["content"].(string)
		if content == "" {
			return "empty content"
		}
		if len(content) > 2048 {
			return "content exceed max length 2048"
		}
		for _, k := range []string{"mentioned_list", "mentioned_mobile_list"} {
			if v, ok := text[k]; ok {
				list, ok := v.([]any)
				if !ok {
					return k + " is not a list"
				}
				for _, e := range list {
					if _, ok := e.(string); !ok {
						return k + " holds a non-string"
					}
				}
			}
		}
	case "markdown":
		md, _ := msg["markdown"].(map[string]any)
		if content, _ := md["content"].(string); content == "" {
			return "empty content"
		}
	default:
		return "invalid message type"
	}
	return ""
}
