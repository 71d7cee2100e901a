package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store/postgres/pgtest"

	"github.com/livehook/livehook/internal/testwait"
)

// TestTwoReplicasOnePostgres runs two real daemons on one database behind
// the test's own client: the same callback sent to both at once is one
// event and one delivery; a stream of callbacks spread over both survives
// one of them being killed mid-stream, every callback answered 200
// delivered at least once, and twice only for deliveries in flight at the
// kill.
func TestTwoReplicasOnePostgres(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.DSN(t)
	rc := newReceiver(t)
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, webhookRules(rc.URL, "{ concurrency: 4, backoff: 50ms, max_backoff: 500ms }"))
	replica := func() binaryDaemon {
		return startBinary(t, bin, "--rules", rulesPath, "--data", t.TempDir(), "--store", dsn)
	}
	a, b := replica(), replica()
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(d binaryDaemon, uri string) (int, string) {
		resp, err := client.Post("http://"+d.listen+"/callbacks/record", "application/json", bytes.NewReader(fileCallback(uri)))
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		var reply struct{ ID string }
		_ = json.NewDecoder(resp.Body).Decode(&reply)
		return resp.StatusCode, reply.ID
	}

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
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
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
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = b.cmd.Wait()
	pw := dsnPassword(t, dsn)
	for name, d := range map[string]binaryDaemon{"a": a, "b": b} {
		if strings.Contains(d.logs.String(), pw) {
			t.Errorf("replica %s logged the DSN's password", name)
		}
	}
	t.Logf("%d callbacks accepted over two replicas, one killed mid-stream; all delivered, %d duplicates", want, dups)
}
