package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// absenceRules fire the webhook at url for a recording started that got
// no file within 2 s; the body carries the trigger's id, its stream and
// whether it fired late.
func absenceRules(url string) string {
	return `actions:
  hook:
    type: webhook
    url: ` + url + `/hook
    body: '{"id":"{{.id}}","uri":"{{.key.stream}} late={{.late}}"}'
    retry: { attempts: 1 }
    delivery: { backoff: 50ms, max_backoff: 500ms }
rules:
  - name: started-without-file
    when: event == "record_started"
    expect: { match: kind == "file", within: 2s }
    do: [ { action: hook } ]
`
}

// recordStarted sends the daemon listening at listen a record_started
// callback for stream and returns the event's id.
func recordStarted(t *testing.T, listen, stream string) string {
	t.Helper()
	status, reply := post(t, "http://"+listen+"/callbacks/record", "application/json",
		fmt.Appendf(nil, `{"domain":"live.example.com","app":"live","stream":"%s","event":"record_started"}`, stream))
	if status != http.StatusOK {
		t.Fatalf("record_started for %s: %d %v", stream, status, reply)
	}
	return reply["id"].(string)
}

// The real binary with a rule over time: a recording that started and got
// no file within 2 s fires once, about 2 s later; one that got its file
// does not; and a timer pending when the daemon is killed fires after the
// restart, late, once.
func TestAbsenceAgainstTheRealBinary(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	data := t.TempDir()
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, absenceRules(rc.URL))
	args := []string{"--rules", rulesPath, "--data", data}

	first := startBinary(t, bin, args...)
	listen := first.listen
	sent := time.Now() // before the request: the window starts when the daemon receives it
	room1 := recordStarted(t, listen, "room1")
	recordStarted(t, listen, "room2")
	if status, reply := post(t, "http://"+listen+"/callbacks/record", "application/json",
		[]byte(`{"domain":"live.example.com","app":"live","stream":"room2","uri":"live/room2/a.flv","duration":1.5,"start_time":1714564803,"stop_time":1714564805}`)); status != http.StatusOK {
		t.Fatalf("room2's file: %d %v", status, reply)
	}
	calls := rc.waitCalls(t, 1, 15*time.Second)
	if calls[0].Event.ID != room1 || calls[0].Event.URI != "room1 late=false" {
		t.Fatalf("fired %+v, want room1's trigger %s, not late", calls[0].Event, room1)
	}
	if waited := calls[0].At.Sub(sent); waited < 2*time.Second {
		t.Errorf("fired %v after record_started, before its 2s window ended", waited)
	}

	// room1's delivery is recorded before the kill (a delivery in flight at
	// a kill may run again, which at-least-once allows, and would blur what
	// this test looks at); room3's timer is pending when the daemon is
	// killed, and it stays down past the deadline.
	waitDrainedAt(t, first.admin, "")
	room3 := recordStarted(t, listen, "room3")
	first.stop(t, syscall.SIGKILL)
	// The outage lasts until room3's deadline has passed while nothing runs.
	killedAt := time.Now()
	testwait.Until(t, 10*time.Second, "room3's deadline to pass", func() bool { return time.Since(killedAt) > 2500*time.Millisecond })
	second := startBinary(t, bin, args...)
	calls = rc.waitCalls(t, 2, 15*time.Second)
	if calls[1].Event.ID != room3 || calls[1].Event.URI != "room3 late=true" {
		_ = second.cmd.Process.Kill() // its log is read below
		_ = second.cmd.Wait()
		t.Fatalf("after the restart fired %+v, want room3's trigger %s, late\nfirst run:\n%s\nsecond run:\n%s", calls[1].Event, room3, first.logs, second.logs)
	}
	// Everything is settled: nothing else is pending (timers included),
	// and nothing fired twice.
	waitDrainedAt(t, second.admin, "")
	if n := sumSeries(scrapeMetrics(t, second.admin, ""), "livehook_timers_pending"); n != 0 {
		t.Errorf("livehook_timers_pending = %v after the restart's firing, want 0", n)
	}
	var ids []string
	for _, c := range rc.calls() {
		ids = append(ids, c.Event.ID)
	}
	if !slices.Equal(ids, []string{room1, room3}) {
		t.Errorf("fired for %v, want room1 and room3 once each", ids)
	}
}
