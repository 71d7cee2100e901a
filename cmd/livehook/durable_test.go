package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// receiver is a webhook endpoint whose answers the test scripts.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	status   int            // what to answer; 0 means 200
	hold     chan struct{}  // if set, requests wait for it to close
	requests []receivedCall // every request, in order
}

type receivedCall struct {
	At        time.Time
	WebhookID string
	Event     struct {
		ID  string `json:"id"`
		URI string `json:"uri"`
	}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		call := receivedCall{At: time.Now(), WebhookID: r.Header.Get("webhook-id")}
		_ = json.Unmarshal(body, &call.Event)
		rc.mu.Lock()
		rc.requests = append(rc.requests, call)
		status, hold := rc.status, rc.hold
		rc.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) set(status int, hold chan struct{}) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.status, rc.hold = status, hold
}

func (rc *receiver) calls() []receivedCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedCall(nil), rc.requests...)
}

// waitCalls waits until the receiver has seen at least n requests.
func (rc *receiver) waitCalls(t *testing.T, n int, within time.Duration) []receivedCall {
	t.Helper()
	if !testwait.Within(within, func() bool { return len(rc.calls()) >= n }) {
		t.Fatalf("receiver saw %d request(s), want %d within %s", len(rc.calls()), n, within)
	}
	return rc.calls()
}

// webhookRules sends every file event to url, with quick persisted retries.
func webhookRules(url, delivery string) string {
	return `actions:
  hook:
    type: webhook
    url: ` + url + `/hook
    retry: { attempts: 1 }
    delivery: ` + delivery + `
rules:
  - name: every-file
    when: kind == "file"
    do:
      - action: hook
`
}

func fileCallback(uri string) []byte {
	return []byte(`{"domain":"live.example.com","app":"live","stream":"room1","uri":"` + uri + `","duration":61.5,"start_time":1714564803,"stop_time":1714564865}`)
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	if status := tryGetJSON(t, url, out); status != http.StatusOK {
		t.Fatalf("GET %s: %d", url, status)
	}
}

// tryGetJSON decodes a 200 reply into out and returns the status.
func tryGetJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestAliyunRetriesAreProcessedOnce(t *testing.T) {
	rc := newReceiver(t)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, webhookRules(rc.URL, "{}")+`  - name: every-status
    when: kind == "status"
    do:
      - action: hook
`)
	d := startDaemon(t, p)
	var ids []string
	for range 6 { // the first try and Aliyun's 5 retries
		status, reply := post(t, d.url("/callbacks/record"), "", fileCallback("live/room1/a.flv"))
		if status != http.StatusOK {
			t.Fatalf("retry answered %d", status)
		}
		ids = append(ids, reply["id"].(string))
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("retries got ids %v: want the first one's id every time", ids)
		}
	}
	// Status events: the same body is a retry only with the same timestamp.
	statusBody := []byte(`{"domain":"live.example.com","app":"live","stream":"room1","event":"record_error"}`)
	postWithTS := func(ts string) string {
		req, _ := http.NewRequest(http.MethodPost, d.url("/callbacks/record"), strings.NewReader(string(statusBody)))
		req.Header.Set("ALI-LIVE-TIMESTAMP", ts)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return decodeJSON(t, resp.Body)["id"].(string)
	}
	a1, a2, b := postWithTS("1714564803"), postWithTS("1714564803"), postWithTS("1714564900")
	if a1 != a2 || a1 == b {
		t.Errorf("status ids %s %s %s: the same timestamp is one event, another timestamp another", a1, a2, b)
	}

	delivered := map[string]int{}
	for _, c := range rc.waitCalls(t, 3, 5*time.Second) {
		delivered[c.Event.ID]++
	}
	if len(delivered) != 3 || delivered[ids[0]] != 1 || delivered[a1] != 1 || delivered[b] != 1 {
		t.Errorf("deliveries per event %v, want one each for the file event %s and the status events %s and %s", delivered, ids[0], a1, b)
	}
	d.waitDrained(t) // nothing is left that could make a fourth delivery
	if calls := rc.calls(); len(calls) != 3 {
		t.Fatalf("receiver saw %d deliveries, want 3 (one file event, two status events)", len(calls))
	}
	var list struct{ Events []map[string]any }
	getJSON(t, d.admURL("/api/events?limit=100"), &list)
	if len(list.Events) != 3 {
		t.Errorf("/api/events lists %d events, want 3", len(list.Events))
	}
	// The retries are counted on their originals.
	var retried struct {
		Events []struct {
			Event      struct{ ID string }
			Duplicates int
			Outcome    string
		}
	}
	getJSON(t, d.admURL("/api/events?outcome=duplicate"), &retried)
	got := map[string]int{}
	for _, e := range retried.Events {
		got[e.Event.ID] = e.Duplicates
		if e.Outcome != "delivered" {
			t.Errorf("event %s: outcome %q, want delivered", e.Event.ID, e.Outcome)
		}
	}
	if len(got) != 2 || got[ids[0]] != 5 || got[a1] != 1 {
		t.Errorf("retried events %v, want %s with 5 duplicates and %s with 1", got, ids[0], a1)
	}
}

func TestOutageRetriesThenDeadLetterAndReplay(t *testing.T) {
	rc := newReceiver(t)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, webhookRules(rc.URL, "{ max_attempts: 4, backoff: 100ms, max_backoff: 1s }"))
	d := startDaemon(t, p)

	// Down for three attempts, then back: delivered on the fourth.
	rc.set(http.StatusServiceUnavailable, nil)
	_, reply := post(t, d.url("/callbacks/record"), "", fileCallback("live/room1/b.flv"))
	id := reply["id"].(string)
	if down := rc.waitCalls(t, 3, 10*time.Second); len(down) != 3 {
		t.Fatalf("receiver saw %d attempts while down, want 3 before it comes back", len(down))
	}
	rc.set(http.StatusOK, nil)
	calls := rc.waitCalls(t, 4, 10*time.Second)
	gaps := []time.Duration{calls[1].At.Sub(calls[0].At), calls[2].At.Sub(calls[1].At), calls[3].At.Sub(calls[2].At)}
	if gaps[0] < 40*time.Millisecond || gaps[2] <= gaps[0] {
		t.Errorf("gaps between attempts %v: want them to grow from the 100ms backoff", gaps)
	}
	for _, c := range calls {
		if c.WebhookID != calls[0].WebhookID || c.Event.ID != id {
			t.Errorf("attempt %+v: every retry must carry the same webhook-id and event", c)
		}
	}
	var detail struct {
		Jobs []struct {
			State    string
			Attempts []struct{ Outcome, Detail string }
		}
	}
	waitState := func(state string) {
		t.Helper()
		// 404 until the ingester has stored the event: not yet.
		if !testwait.Within(10*time.Second, func() bool {
			status := tryGetJSON(t, d.admURL("/api/events/"+id), &detail)
			return status == http.StatusOK && len(detail.Jobs) == 1 && detail.Jobs[0].State == state
		}) {
			t.Fatalf("job state %+v, want %s", detail.Jobs, state)
		}
	}
	waitState("delivered")
	if a := detail.Jobs[0].Attempts; len(a) != 4 || a[0].Outcome != "retryable" || !strings.Contains(a[0].Detail, "503") || a[3].Outcome != "delivered" {
		t.Errorf("attempt history %+v, want 3 retryable 503s then delivered", a)
	}

	// Down for good: four attempts, then a dead letter.
	rc.set(http.StatusServiceUnavailable, nil)
	before := len(rc.calls())
	_, reply = post(t, d.url("/callbacks/record"), "", fileCallback("live/room1/c.flv"))
	id = reply["id"].(string)
	waitState("dead")
	if n := len(rc.calls()) - before; n != 4 {
		t.Errorf("%d attempts before the dead letter, want max_attempts=4", n)
	}
	var dead struct {
		Deadletters []struct {
			ID        string `json:"id"`
			LastError string `json:"last_error"`
		}
	}
	getJSON(t, d.admURL("/api/deadletters"), &dead)
	if len(dead.Deadletters) != 1 || !strings.Contains(dead.Deadletters[0].LastError, "gave up after 4 attempts") {
		t.Fatalf("dead letters %+v", dead.Deadletters)
	}

	// The receiver is back; the operator replays.
	rc.set(http.StatusOK, nil)
	stdout, stderr, code := runCLI(t, nil, "deadletters", "replay", "--all", "--admin", d.admURL(""))
	if code != 0 || !strings.Contains(stdout, "1 dead letter(s) replayed") {
		t.Fatalf("deadletters replay --all: exit %d %q %q", code, stdout, stderr)
	}
	waitState("delivered")
	getJSON(t, d.admURL("/api/deadletters"), &dead)
	if len(dead.Deadletters) != 0 {
		t.Errorf("dead letters after the replay: %+v", dead.Deadletters)
	}
	stdout, _, code = runCLI(t, nil, "events", "--admin", d.admURL(""))
	if code != 0 || !strings.Contains(stdout, id) || !strings.Contains(stdout, "rules: every-file  delivered") {
		t.Errorf("events list: exit %d\n%s", code, stdout)
	}
	// Filtered: nothing is dead any more.
	stdout, _, code = runCLI(t, nil, "events", "--outcome", "dead", "--stream", "", "--admin", d.admURL(""))
	if code != 0 || strings.Contains(stdout, id) {
		t.Errorf("events --outcome dead after the replay: exit %d\n%s", code, stdout)
	}
	_, stderr, code = runCLI(t, nil, "events", "--outcome", "lost", "--admin", d.admURL(""))
	if code == 0 || !strings.Contains(stderr, "outcome") {
		t.Errorf("events --outcome lost: exit %d %q", code, stderr)
	}
}

func TestShutdownDuringDeliveryFinishesOnNextStart(t *testing.T) {
	rc := newReceiver(t)
	hold := make(chan struct{})
	rc.set(0, hold) // every delivery hangs until released
	data := t.TempDir()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, p, webhookRules(rc.URL, "{ concurrency: 1, backoff: 50ms }"))
	cfg := serveConfig{rules: p, data: data, watch: false}

	first := startDaemonWith(t, cfg)
	var ids []string
	for _, uri := range []string{"x/1.flv", "x/2.flv", "x/3.flv"} {
		_, reply := post(t, first.url("/callbacks/record"), "", fileCallback(uri))
		ids = append(ids, reply["id"].(string))
	}
	rc.waitCalls(t, 1, 5*time.Second) // one delivery in flight, two waiting
	first.cfg.shutdownTimeout = 200 * time.Millisecond
	first.stop()
	select {
	case err := <-first.done:
		if err != nil {
			t.Fatalf("SIGTERM: serve returned %v, want a clean exit", err)
		}
		first.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	close(hold)
	rc.set(0, nil)

	startDaemonWith(t, cfg)
	seen := map[string]bool{}
	if !testwait.Within(10*time.Second, func() bool {
		for _, c := range rc.calls() {
			seen[c.Event.ID] = true
		}
		return seen[ids[0]] && seen[ids[1]] && seen[ids[2]]
	}) {
		t.Fatalf("after the restart the receiver saw %v, want all of %v", seen, ids)
	}
}
