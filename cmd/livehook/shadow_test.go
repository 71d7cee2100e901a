package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// The real binary with a rule in shadow mode beside a live one: the
// shadow rule's match is in the event's detail and in its metric, and
// only the live rule delivers; its absence, an expectation, fires in
// shadow too, recorded with the event that set it.
func TestShadowRuleAgainstTheRealBinary(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, `actions:
  hook:
    type: webhook
    url: `+rc.URL+`/hook
    body: '{"id":"{{.id}}","uri":"{{.event}}"}'
    retry: { attempts: 1 }
rules:
  - name: watched-failure
    mode: shadow
    when: event == "record_error"
    do: [ { action: hook } ]
  - name: watched-absence
    mode: shadow
    when: event == "record_started"
    expect: { match: kind == "file", within: 1s }
    do: [ { action: hook } ]
  - name: live-failure
    when: event == "record_error"
    do: [ { action: hook } ]
`)
	d := startBinary(t, bin, "--rules", rulesPath, "--data", t.TempDir())
	send := func(event string) string {
		t.Helper()
		status, reply := post(t, "http://"+d.listen+"/callbacks/record", "application/json",
			[]byte(`{"domain":"live.example.com","app":"live","stream":"room1","event":"`+event+`"}`))
		if status != http.StatusOK {
			t.Fatalf("%s: %d %v", event, status, reply)
		}
		return reply["id"].(string)
	}
	failed := send("record_error")
	started := send("record_started")

	type detail struct {
		Shadow []struct {
			Rule   string          `json:"rule"`
			Firing json.RawMessage `json:"firing"`
		} `json:"shadow"`
		Jobs []struct {
			Rule string `json:"rule"`
		} `json:"jobs"`
	}
	// shown waits until the event's record shows a shadow firing.
	shown := func(id string) detail {
		t.Helper()
		var got detail
		var status int
		var body []byte
		if !testwait.Within(15*time.Second, func() bool {
			status, body = adminGet(t, d.admin, "", "/api/events/"+id)
			if status != http.StatusOK {
				return false
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("GET /api/events/%s: %v", id, err)
			}
			return len(got.Shadow) > 0
		}) {
			t.Fatalf("GET /api/events/%s: %d %s; want a shadow firing\n%s", id, status, body, d.logs)
		}
		return got
	}
	got := shown(failed)
	if got.Shadow[0].Rule != "watched-failure" || len(got.Jobs) != 1 || got.Jobs[0].Rule != "live-failure" {
		t.Errorf("record_error's detail: %+v; want watched-failure in shadow and live-failure's delivery only", got)
	}
	got = shown(started) // after its 1s window
	if got.Shadow[0].Rule != "watched-absence" || len(got.Shadow[0].Firing) == 0 || len(got.Jobs) != 0 {
		t.Errorf("record_started's detail: %+v; want watched-absence's firing in shadow and no delivery", got)
	}
	waitDrainedAt(t, d.admin, "")
	m := scrapeMetrics(t, d.admin, "")
	for series, want := range map[string]float64{
		`livehook_rule_matches_total{mode="shadow",rule="watched-failure"}`: 1,
		`livehook_rule_matches_total{mode="shadow",rule="watched-absence"}`: 1,
		`livehook_rule_matches_total{mode="live",rule="live-failure"}`:      1,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if calls := rc.calls(); len(calls) != 1 || calls[0].Event.ID != failed || calls[0].Event.URI != "record_error" {
		t.Errorf("deliveries %+v, want live-failure's one for %s", calls, failed)
	}
}
