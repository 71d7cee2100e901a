package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store/postgres/pgtest"

	"github.com/livehook/livehook/internal/testwait"
)

// startReplicas runs two real daemons on rules and the PostgreSQL store
// dsn, each with a data directory of its own.
func startReplicas(t *testing.T, rules, dsn string) (a, b binaryDaemon) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, rules)
	replica := func() binaryDaemon {
		return startBinary(t, bin, "--rules", rulesPath, "--data", t.TempDir(), "--store", dsn)
	}
	return replica(), replica()
}

// TestTwoReplicasOnePostgres runs two real daemons on one database behind
// the test's own client: the same callback sent to both at once is one
// event and one delivery; a stream of callbacks spread over both survives
// one of them being killed mid-stream, every callback answered 200
// delivered at least once, and twice only for deliveries in flight at the
// kill.
func TestTwoReplicasOnePostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	rc := newReceiver(t)
	a, b := startReplicas(t, webhookRules(rc.URL, "{ concurrency: 4, backoff: 50ms, max_backoff: 500ms }"), dsn)
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(d binaryDaemon, uri string) (int, string) { return d.callback(client, fileCallback(uri)) }

	// One callback, both replicas at once.
	ids := make([]string, 2)
	var wg sync.WaitGroup
	for i, d := range []binaryDaemon{a, b} {
		wg.Go(func() {
			status, id := send(d, "live/room1/both.flv")
			if status != http.StatusOK {
				t.Errorf("the callback sent to both: %d", status)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("the callback sent to both answered ids %q and %q, want one event", ids[0], ids[1])
	}

	// A stream over both; a is killed in the middle of it.
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
	)
	stop, killed := make(chan struct{}), make(chan struct{})
	const senders = 16
	var streams sync.WaitGroup
	for s := range senders {
		streams.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := []binaryDaemon{a, b}[(s+i)%2]
				select {
				case <-killed:
					d = b
				default:
				}
				uri := fmt.Sprintf("live/room1/%02d-%05d.flv", s, i)
				if status, _ := send(d, uri); status == http.StatusOK {
					mu.Lock()
					accepted[uri] = true
					mu.Unlock()
				}
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	if !testwait.Within(30*time.Second, func() bool { return count() >= 600 && len(rc.calls()) >= 100 }) {
		t.Fatalf("only %d callbacks accepted and %d delivered in 30s:\n%s", count(), len(rc.calls()), a.logs.String())
	}
	a.stop(t, syscall.SIGKILL)
	close(killed)
	if atKill := count(); !testwait.Within(30*time.Second, func() bool { return count() >= atKill+300 }) {
		t.Fatalf("b took only %d callbacks after the kill", count()-atKill)
	}
	close(stop)
	streams.Wait()

	// Everything answered 200 is delivered: what a held when it died
	// passes to b after the grace period.
	perURI := func() map[string]int {
		seen := map[string]int{}
		for _, c := range rc.calls() {
			seen[c.Event.URI]++
		}
		return seen
	}
	want := count()
	var missing int
	if !testwait.Within(90*time.Second, func() bool {
		seen := perURI()
		missing = 0
		for uri := range accepted {
			if seen[uri] == 0 {
				missing++
			}
		}
		return missing == 0
	}) {
		t.Fatalf("%d of %d accepted callbacks never delivered after the kill:\n%s", missing, want, b.logs.String())
	}
	waitDrainedWithin(t, b.admin, "", time.Minute) // a delivered job a held passes to b after the grace period
	seen := perURI()
	if n := seen["live/room1/both.flv"]; n != 1 {
		t.Errorf("the callback sent to both was delivered %d times, want once", n)
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	if dups > 4 {
		t.Errorf("%d duplicate deliveries, want at most 4 (the deliveries in flight at the kill)", dups)
	}
	// Stopped, so its log is read after its last write.
	b.stop(t, syscall.SIGTERM)
	pw := dsnPassword(t, dsn)
	for name, d := range map[string]binaryDaemon{"a": a, "b": b} {
		if strings.Contains(d.logs.String(), pw) {
			t.Errorf("replica %s logged the DSN's password", name)
		}
	}
	t.Logf("%d callbacks accepted over two replicas, one killed mid-stream; all delivered, %d duplicates", want, dups)
}

// A rule over time's timer opened through replica a fires once, from b,
// after a is killed: the timer is the database's, and b takes it when it
// comes due.
func TestTimerFiresOnceFromTheSurvivingReplica(t *testing.T) {
	rc := newReceiver(t)
	a, b := startReplicas(t, absenceRules(rc.URL), pgtest.DSN(t))
	room1 := recordStarted(t, a.listen, "room1")
	waitEvaluatedAt(t, b.admin, "", room1)
	if n := scrapeMetrics(t, b.admin, "")["livehook_timers_pending"]; n != 1 {
		t.Fatalf("livehook_timers_pending = %v once room1's start is evaluated, want 1", n)
	}
	a.stop(t, syscall.SIGKILL)
	if n := len(rc.calls()); n != 0 {
		t.Fatalf("%d deliveries before the kill: the timer fired before its 2s were up", n)
	}

	calls := rc.waitCalls(t, 1, 15*time.Second)
	if calls[0].Event.ID != room1 || !strings.HasPrefix(calls[0].Event.URI, "room1 ") {
		t.Errorf("fired %+v, want room1's trigger %s", calls[0].Event, room1)
	}
	// Drained with no timer left, nothing could fire again: once.
	waitDrainedAt(t, b.admin, "")
	m := scrapeMetrics(t, b.admin, "")
	if n := m["livehook_timers_pending"]; n != 0 {
		t.Errorf("livehook_timers_pending = %v after the firing, want 0", n)
	}
	if n := len(rc.calls()); n != 1 {
		t.Errorf("%d deliveries, want the one firing", n)
	}
	if n := m[`livehook_rule_firings_total{rule="started-without-file"}`]; n != 1 {
		t.Errorf("b counts %v firings, want 1: b fired it", n)
	}
	if n := m[`livehook_deliveries_total{action="hook",result="delivered",type="webhook"}`]; n != 1 {
		t.Errorf("b counts %v deliveries, want 1: b delivered it", n)
	}
}

// A throttle window opened through replica a holds on b, a killed: the
// window is the database's.
func TestThrottleWindowHoldsAcrossReplicas(t *testing.T) {
	rc := newReceiver(t)
	rules := strings.Replace(webhookRules(rc.URL, "{ backoff: 50ms }"), `    when: kind == "file"
`, `    when: kind == "file"
    throttle: { by: [domain, app, stream], window: 1m }
`, 1)
	a, b := startReplicas(t, rules, pgtest.DSN(t))
	client := &http.Client{Timeout: 5 * time.Second}
	status, first := a.callback(client, fileCallback("live/room1/a.flv"))
	if status != http.StatusOK {
		t.Fatalf("the first file through a: %d", status)
	}
	rc.waitCalls(t, 1, 10*time.Second)
	waitDrainedAt(t, a.admin, "")
	if ev := waitEvaluatedAt(t, a.admin, "", first); !slices.Equal(ev.Matched, []string{"every-file"}) || len(ev.Throttled) != 0 {
		t.Fatalf("the first file: %+v, want matched and not throttled", ev)
	}
	a.stop(t, syscall.SIGKILL)

	status, second := b.callback(client, fileCallback("live/room1/b.flv"))
	if status != http.StatusOK || second == first {
		t.Fatalf("the second file through b: %d, id %q (the first was %q)", status, second, first)
	}
	if ev := waitEvaluatedAt(t, b.admin, "", second); !slices.Equal(ev.Throttled, []string{"every-file"}) {
		t.Errorf("the second file: %+v, want throttled by every-file", ev)
	}
	waitDrainedAt(t, b.admin, "")
	if n := len(rc.calls()); n != 1 {
		t.Errorf("%d deliveries, want 1: the second file is inside the window", n)
	}
	if n := scrapeMetrics(t, b.admin, "")[`livehook_rule_throttled_total{rule="every-file"}`]; n != 1 {
		t.Errorf("b counts %v throttled matches, want 1", n)
	}
}

// Two replicas under load while the database goes away: their
// connections are terminated by the server, then it is cut off for a
// while. A callback is answered 200 only once it is stored, so each one
// is found and delivered afterwards; while the database is cut off, both
// are not ready and answer 503; once it is back they recover by
// themselves.
func TestReplicasRideOutDatabaseCuts(t *testing.T) {
	base := pgtest.DSN(t)
	proxy, dsn := pgtest.NewProxy(t, base)
	rc := newReceiver(t)
	a, b := startReplicas(t, webhookRules(rc.URL, "{ concurrency: 4, backoff: 50ms, max_backoff: 500ms }"), dsn)
	replicas := []binaryDaemon{a, b}
	client := &http.Client{Timeout: 10 * time.Second}

	var (
		mu       sync.Mutex
		accepted = map[string]string{} // uri answered 200: its event id
		refused  int                   // answered 503
		odd      []string              // any other answer
	)
	stop := make(chan struct{})
	var senders sync.WaitGroup
	for s := range 8 {
		senders.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				uri := fmt.Sprintf("live/room1/%d-%05d.flv", s, i)
				status, id := replicas[(s+i)%2].callback(client, fileCallback(uri))
				mu.Lock()
				switch {
				case status == http.StatusOK:
					accepted[uri] = id
				case status == http.StatusServiceUnavailable:
					refused++
				default:
					odd = append(odd, fmt.Sprintf("%s: %d", uri, status))
				}
				mu.Unlock()
			}
		})
	}
	counts := func() (ok, refusedN int) {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted), refused
	}
	ready := func(d binaryDaemon) bool {
		status, _ := adminGet(t, d.admin, "", "/readyz")
		return status == http.StatusOK
	}
	// waitAccepts waits for n more callbacks answered 200.
	waitAccepts := func(n int, after string) {
		t.Helper()
		from, _ := counts()
		if !testwait.Within(20*time.Second, func() bool { ok, _ := counts(); return ok >= from+n }) {
			ok, r := counts()
			t.Fatalf("only %d callbacks accepted %s (%d refused):\na:\n%s\nb:\n%s", ok-from, after, r, a.logs, b.logs)
		}
	}
	waitAccepts(200, "at first")

	// The server ends every connection of the replicas, three times.
	schema := pgtest.Schema(t, dsn)
	for range 3 {
		pgtest.Exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"+schema+"'")
		waitAccepts(100, "after their connections were terminated")
	}

	// Cut off: both say so, and refuse what comes meanwhile.
	proxy.Cut()
	testwait.Until(t, 10*time.Second, "both replicas to be not ready", func() bool { return !ready(a) && !ready(b) })
	_, before := counts()
	testwait.Until(t, 10*time.Second, "100 callbacks refused while cut off", func() bool { _, r := counts(); return r >= before+100 })
	proxy.Restore()
	testwait.Until(t, 20*time.Second, "both replicas to be ready again", func() bool { return ready(a) && ready(b) })
	waitAccepts(200, "after the database came back")
	close(stop)
	senders.Wait()

	for _, o := range odd {
		t.Errorf("answered %s, want 200 or 503", o)
	}
	// Every 200 (one while cut off too) is stored and delivered, and
	// nothing is left behind: no delivery lease held by a lost reply, no
	// event claimed and forgotten.
	var missing int
	if !testwait.Within(30*time.Second, func() bool {
		seen := map[string]bool{}
		for _, c := range rc.calls() {
			seen[c.Event.URI] = true
		}
		missing = 0
		for uri := range accepted {
			if !seen[uri] {
				missing++
			}
		}
		return missing == 0
	}) {
		t.Errorf("%d of %d callbacks answered 200 never delivered", missing, len(accepted))
	}
	for _, d := range replicas {
		waitDrainedWithin(t, d.admin, "", 10*time.Second)
	}
	for uri, id := range accepted {
		var ev struct {
			Event struct{ URI string }
			Jobs  []struct{ State string }
		}
		if status := tryGetJSON(t, b.admin+"/api/events/"+id, &ev); status != http.StatusOK || ev.Event.URI != uri || len(ev.Jobs) != 1 || ev.Jobs[0].State != "delivered" {
			t.Errorf("%s answered 200 with id %s; GET /api/events/%s: %d %+v, want it delivered", uri, id, id, status, ev)
		}
	}
	ok, r := counts()
	t.Logf("%d callbacks accepted, %d refused, %d deliveries", ok, r, len(rc.calls()))
}
