package store

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
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
	d := newDedupe()
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
	// Settled claims share one closed channel: the index keeps no
	// channel per remembered callback.
	d.mu.Lock()
	if c := d.entries["k"]; c == nil || c.done != settled {
		t.Errorf("written=%v: the remembered claim still holds its own channel", written)
	}
	d.mu.Unlock()
}
