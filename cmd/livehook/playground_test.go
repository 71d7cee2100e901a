package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// TestPlaygroundSendsNothing runs the console's playground on a daemon
// whose rule posts to a receiver: the page shows what the webhook would
// send, its token hidden, and the receiver sees no request, until a real
// callback shows that it would have seen one.
func TestPlaygroundSendsNothing(t *testing.T) {
	const token = "PlayTokenLEAK0123456789"
	var seen atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		seen.Add(1)
	}))
	t.Cleanup(receiver.Close)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	writeFile(t, rules, `actions:
  hook:
    type: webhook
    url: `+receiver.URL+`/in?token=`+token+`
    body: '{"stream": "{{ .stream }}"}'
rules:
  - name: notify
    when: stream startsWith "room"
    do: [ { action: hook } ]
`)
	d := startDaemonWith(t, serveConfig{rules: rules})
	q := url.Values{"when": {`stream == "room7"`}, "rule": {"notify"},
		"event": {`{"source": "generic", "kind": "unknown", "stream": "room7"}`}}
	status, page := do(t, "GET", d.admURL("/playground?"+q.Encode()), nil, "")
	if status != http.StatusOK {
		t.Fatalf("playground: %d\n%s", status, page)
	}
	for _, want := range []string{`<strong class="match">true</strong>`, "It matches", `POST ` + receiver.URL + `/in?token=`, `&#34;stream&#34;: &#34;room7&#34;`} {
		if !strings.Contains(page, want) {
			t.Errorf("the playground lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, token) {
		t.Errorf("the playground shows the webhook's token:\n%s", page)
	}
	d.waitDrained(t)
	if n := seen.Load(); n != 0 {
		t.Fatalf("the playground sent %d requests", n)
	}
	// The receiver is reachable: a callback does reach it.
	if status, _ := post(t, d.url("/events/generic"), "application/json", []byte(`{"stream": "room7"}`)); status != http.StatusOK {
		t.Fatalf("callback: %d", status)
	}
	testwait.Until(t, 10*time.Second, "the callback's delivery reaches the receiver", func() bool { return seen.Load() == 1 })
}
