package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oklog/ulid/v2"
)

// Retries that arrive while the first copy is being written wait for its
// outcome: told its id once it is written, or one of them takes over the
// claim when it failed.
func TestDedupeRetriesWaitForTheFirstWrite(t *testing.T) {
	now := time.Unix(1714564803, 0)
	for _, written := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) { retriesWaitForTheFirstWrite(t, now, written) })
	}
}

func retriesWaitForTheFirstWrite(t *testing.T, now time.Time, written bool) {
	d := newDedupe(func(string, string) bool { return true })
	first, _, dup, err := d.claim(context.Background(), "k", "first", now, now.Add(time.Hour))
	if err != nil || dup || first == nil {
		t.Fatalf("first claim: %v, dup %v", err, dup)
	}
	const retries = 5
	type outcome struct {
		mine *claim
		id   string
		dup  bool
	}
	got := make(chan outcome, retries)
	var wg sync.WaitGroup
	for range retries {
		wg.Go(func() {
			mine, id, dup, err := d.claim(context.Background(), "k", "retry", now, now.Add(time.Hour))
			if err != nil {
				t.Error(err)
			}
			if mine != nil {
				d.settle("k", mine, true) // the retry that took over writes its copy
			}
			got <- outcome{mine, id, dup}
		})
	}
	synctest.Wait() // every retry now waits on the first copy's claim
	d.settle("k", first, written)
	wg.Wait()
	close(got)
	takers, dups := 0, 0
	for o := range got {
		switch {
		case o.mine != nil:
			takers++
		case o.dup && o.id == map[bool]string{true: "first", false: "retry"}[written]:
			dups++
		default:
			t.Errorf("written=%v: a retry got %+v", written, o)
		}
	}
	if want := map[bool]int{true: 0, false: 1}[written]; takers != want || dups != retries-want {
		t.Errorf("written=%v: %d retries took the claim and %d were told a duplicate; want %d and %d", written, takers, dups, want, retries-want)
	}
	// Settled claims are remembered as a hash and an id, not as claims
	// with a channel each.
	d.mu.Lock()
	if _, ok := d.writing["k"]; ok || len(d.written) != 1 {
		t.Errorf("written=%v: %d claims still held, %d identities remembered; want none and 1", written, len(d.writing), len(d.written))
	}
	d.mu.Unlock()
}

// Two keys that share a hash: the second is not taken for a retry of the
// first, because a hit is confirmed against the first event's own key.
func TestDedupeHashCollisionIsConfirmed(t *testing.T) {
	accepted := map[string]string{} // event id → its key
	d := newDedupe(func(key, id string) bool { return accepted[id] == key })
	now := time.Unix(1714564803, 0)
	first := ulid.Make().String()
	accepted[first] = "key-a"
	// As if "key-b" hashed like "key-a".
	d.written[d.hash("key-b")] = remembered{id: ulid.MustParse(first), expires: now.Add(time.Hour).UnixNano()}
	mine, id, dup, err := d.claim(context.Background(), "key-b", "second", now, now.Add(time.Hour))
	if err != nil || dup || mine == nil {
		t.Fatalf("claim of the colliding key: %q dup=%v err=%v; want it claimed as new", id, dup, err)
	}
	d.settle("key-b", mine, true)
	accepted["second"] = "key-b"
	if _, id, dup, _ := d.claim(context.Background(), "key-b", "third", now, now.Add(time.Hour)); !dup || id != "second" {
		t.Errorf("a retry of key-b: %q dup=%v, want a duplicate of second", id, dup)
	}
}

// BenchmarkDedupeHeap measures the Go heap a day of remembered callbacks
// takes: 1,000,000 identities inside the window.
//
//	go test -run '^$' -bench DedupeHeap -benchtime 1x ./engine/store/
func BenchmarkDedupeHeap(b *testing.B) {
	const n = 1_000_000
	var perKey float64
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		d := newDedupe(func(string, string) bool { return true })
		exp := time.Now().Add(24 * time.Hour)
		for i := range n {
			d.restore(fmt.Sprintf("file\x00play.example.com\x00live\x00room%d\x00record/live/room%d/%d.flv", i%5000, i%5000, i), ulid.Make().String(), exp)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		perKey = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(d)
	}
	b.ReportMetric(perKey, "heap_bytes/identity")
	b.ReportMetric(perKey*n/(1<<20), "heap_MiB/1M")
}
